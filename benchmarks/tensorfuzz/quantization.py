"""(b) Disagreements between a float32 digits MLP and its int8 and fp16 copies."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

import nnfuzz
from benchmarks.tensorfuzz.common import (
    Search,
    accuracy,
    cached,
    command,
    digits,
    guides_by_default,
    provenance,
    search,
    sign_test,
    split,
    spread,
    train,
    write,
)
from benchmarks.tensorfuzz.nans import DigitsMLP

# --- (b) quantization: float32 against int8 and fp16 copies ---------------------------

#: Adam steps (lr 1e-3, batch 100, the stable cross-entropy) for the quantization model.
QUANT_STEPS = 3000
RADIUS = 0.4


def quantization_model() -> tuple[nn.Module, bool]:
    images, labels, _, _ = split(*digits())

    def fit(model: nn.Module) -> None:
        train(model, images / 8 - 1, labels, steps=QUANT_STEPS, batch=100, unstable=False,
              optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), seed=2)

    return cached(f"quantization-digits-64-64-10-adam-{QUANT_STEPS}",
                  lambda: DigitsMLP(hidden=64, scale=1.0), fit, init_seed=2)


def quant_searchers() -> dict[str, dict[str, bool]]:
    """Explicit options (the default of objective_guidance has changed between commits)."""
    default = guides_by_default("disagree")
    searchers = {
        f"nnfuzz, `objective_guidance={guidance}`{' (default)' if guidance == default else ''}":
            {"objective_guidance": guidance} for guidance in (True, False)}
    searchers["random search (`feedback=False`)"] = {"feedback": False}
    return searchers


def quantization(quick: bool) -> None:
    started = time.perf_counter()
    count, budget, max_time = (10, 5_000, 30.0) if quick else (100, 5_000, 30.0)
    model, trained = quantization_model()
    _, _, test_images, test_labels = split(*digits())
    test_images = test_images / 8 - 1  # [0, 16] -> [-1, 1], as TensorFuzz's inputs
    seeds = test_images[:count]
    from nnfuzz.references import build_reference

    searchers = quant_searchers()
    sections = []
    for kind in ("int8", "fp16"):
        reference = build_reference(model, kind)
        with torch.no_grad():
            ref_accuracy = float(torch.cat([reference.run((test_images[i:i + 1],)).argmax(-1)
                                            for i in range(len(test_images))]).eq(test_labels)
                                 .float().mean())
        found: dict[str, list[Search | None]] = {name: [] for name in searchers}
        seconds = dict.fromkeys(searchers, 0.0)
        skipped: list[int] = []
        for index in range(count):
            row: dict[str, Search] = {}
            for name, extra in searchers.items():
                clock = time.perf_counter()
                try:
                    row[name] = search(
                        model, seeds[index:index + 1], budget=budget, max_time=max_time,
                        seed=index, reference=kind, objectives=["disagree"], bounds=(-1.0, 1.0),
                        radius=RADIUS, norm="linf", **extra)
                except nnfuzz.TargetError as error:
                    # The seed already disagrees: nnfuzz refuses failing seeds.
                    if row or "already fails" not in str(error):
                        raise
                    break
                seconds[name] += time.perf_counter() - clock
            if not row:
                skipped.append(index)
            for name in searchers:
                found[name].append(row.get(name))
            print(f"quantization {kind} seed {index}: " + (
                "; ".join(f"{name}: {result.execs if result.execs is not None else 'not found'}"
                          for name, result in row.items()) or "skipped (already disagrees)"),
                  flush=True)
        usable = count - len(skipped)
        ran = {name: [r for r in results if r is not None] for name, results in found.items()}
        hit = {name: [r for r in results if r.execs is not None] for name, results in ran.items()}
        hit_sets = {name: {i for i, r in enumerate(results) if r is not None and r.execs is not None}
                    for name, results in found.items()}
        names = list(searchers)

        def only(name: str) -> int:
            return len(hit_sets[name] - set().union(*(hit_sets[o] for o in names if o != name)))

        lines = [
            f"### float32 against {kind}",
            "",
            f"{kind} copy: test accuracy {ref_accuracy:.3f} (each image run alone); "
            f"{len(skipped)} of {count} seeds already disagree and are skipped "
            f"({', '.join(map(str, skipped)) or 'none'}); {usable} seeds fuzzed.",
            "",
            "| | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
            "| seeds with a disagreement found | "
            + " | ".join(f"{len(hit[n])}/{len(ran[n])}" for n in names) + " |",
            "| execs to it, median over found seeds (min–max) | "
            + " | ".join(spread([r.execs for r in hit[n]]) if hit[n] else "—" for n in names)
            + " |",
            "| execs, median over all seeds (not found = budget) | "
            + " | ".join(f"{statistics.median(r.cost(budget) for r in ran[n]):,.0f}"
                         if ran[n] else "—" for n in names) + " |",
            "| seeds found by this searcher alone | " + " | ".join(str(only(n)) for n in names)
            + " |",
            "| wall-clock seconds, all seeds | " + " | ".join(f"{seconds[n]:.1f}" for n in names)
            + " |",
        ]
        guided, unguided = names[0], names[1]
        both = [i for i in range(count) if i not in skipped]
        wins = sum(1 for i in both if i in hit_sets[guided] and i not in hit_sets[unguided])
        losses = sum(1 for i in both if i in hit_sets[unguided] and i not in hit_sets[guided])
        lines += ["", f"Does the guidance help? On the {len(both)} seeds both ran, the guided run "
                      f"found a disagreement the unguided one missed on {wins}, and missed one it "
                      f"found on {losses} (two-sided sign test p = {sign_test(wins, losses):.2f})."]
        sections.append("\n".join(lines))
        print(sections[-1], flush=True)
    elapsed = time.perf_counter() - started
    header = [
        "## TensorFuzz (b): disagreements between a float32 model and its int8 / fp16 copy",
        "",
        f"`{command('quantization', quick)}` — {elapsed:.0f} s wall-clock "
        f"({'trained the model first' if trained else 'weights from the cache'}); "
        f"{provenance()}.",
        "",
        "A 64-64-10 ReLU MLP trained normally (stable cross-entropy, "
        f"{QUANT_STEPS:,} Adam steps, lr 1e-3, batch 100) on scikit-learn digits scaled to "
        "[-1, 1] in the data, as TensorFuzz's inputs were (float32 test accuracy "
        f"{accuracy(model, test_images, test_labels):.3f}), against the copy nnfuzz builds for "
        "`reference=\"int8\"` (dynamic int8 quantization of the Linear layers) and, in the "
        f"second table, `reference=\"fp16\"`. Each of the first {count} held-out test images is "
        "fuzzed alone (a single-example seed tensor, run seed = its index) with "
        f"`objectives=[\"disagree\"]`, `radius={RADIUS}`, `norm=\"linf\"`, `BOUNDS = (-1, 1)` "
        f"(TensorFuzz's L∞ ball of 0.4 on [-1, 1] inputs), `stop_on_failure=True` and "
        f"{budget:,} executions per seed (or {max_time:.0f} s): nnfuzz with "
        "`objective_guidance=True` (the disagree objective's guidance: inputs that set a new low "
        "of the top-two margin or a new high of the gap to the reference are kept, and half the "
        "guided mutations step down the gradient of the top-two margin); nnfuzz "
        "with `objective_guidance=False` (without it); and random search "
        "(`feedback=False`: the same operators, always applied to the seed, projected into "
        "the same ball). A disagreement counts only when it holds with the example run alone "
        "(nnfuzz re-checks it so: dynamic quantization depends on the batch). A seed on which "
        "the model already disagrees with its copy is refused by nnfuzz (`TargetError`: seeds "
        "must pass) and counted apart. (default) marks nnfuzz's default for the disagree "
        "objective.",
        "",
    ]
    text = "\n".join(header) + "\n" + "\n\n".join(sections) + "\n"
    print(text)
    write("quantization", text, quick)
