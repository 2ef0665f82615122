"""The doctor's report for people: a table for the terminal, plots, an HTML page.

The table has one row per check, its status first (coloured where the
terminal allows) and its hint on the line below. The plots show what the
table sums up: the gradient norm of every parameter, the histogram of every
layer's activations, and the loss curves of the overfit check.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy

from nnfuzz.doctor.diagnosis import Diagnosis
from nnfuzz.doctor.gradients import evenly_spread
from nnfuzz.doctor.result import CheckResult, Status
from nnfuzz.report import png_bytes, pyplot
from nnfuzz.errors import UsageError
from nnfuzz.storage import atomic_write, ensure_folder
from nnfuzz.tracking import Tracker

COLOURS = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "red", Status.SKIP: "blue"}
#: Activation histograms drawn at most, one panel each, spread over the layers.
HISTOGRAM_PANELS = 12
HEADER = ("STATUS", "CHECK", "TIME", "VALUE", "THRESHOLD")

Style = Callable[[str, Status], str]


def plain(text: str, status: Status) -> str:
    return text


def heading(diagnosis: Diagnosis) -> str:
    target = diagnosis.target
    return (f"nnfuzz doctor: {target.path or target.origin} (sha256 {target.sha256[:12] or '-'}, "
            f"{diagnosis.seeds} seeds, {diagnosis.device}, {diagnosis.config.optimizer} "
            f"lr {diagnosis.config.lr:g})")


def table(diagnosis: Diagnosis, style: Style = plain) -> list[str]:
    """One row per check: status, check, value and threshold, then its hint, indented."""
    rows = [HEADER] + [(r.status.value.upper(), r.check, f"{r.seconds:.1f}s", r.value, r.threshold)
                       for r in diagnosis.results]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER) - 1)]
    lines = ["  ".join([cell.ljust(width) for cell, width in zip(HEADER, widths)] + [HEADER[-1]])]
    indent = " " * (widths[0] + 2)
    for result, row in zip(diagnosis.results, rows[1:]):
        cells = [style(row[0], result.status) + " " * (widths[0] - len(row[0]))]
        cells += [cell.ljust(width) for cell, width in zip(row[1:-1], widths[1:])]
        lines.append("  ".join(cells) + "  " + row[-1])
        lines.append(f"{indent}{result.hint}")
    return lines


def summary(diagnosis: Diagnosis) -> str:
    counts = diagnosis.counts()
    said = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    checks = "check" if len(diagnosis.results) == 1 else "checks"
    return f"{len(diagnosis.results)} {checks}: {said} ({diagnosis.elapsed_s:.1f}s)"


# --- plots -------------------------------------------------------------------------------

def write_plots(diagnosis: Diagnosis, folder: Path) -> list[Path]:
    """One PNG per plot the checks that ran have data for, in ``folder``."""
    ensure_folder(folder)
    written = []
    for name, figure in _figures(diagnosis):
        path = folder / f"{name}.png"
        atomic_write(path, png_bytes(figure))
        written.append(path)
    return written


def write_html(diagnosis: Diagnosis, path: Path) -> Path:
    """A single page: the table (with every hint) and the plots, embedded."""
    images = [(name, base64.b64encode(png_bytes(figure)).decode())
              for name, figure in _figures(diagnosis)]
    rows = "\n".join(_html_row(result) for result in diagnosis.results)
    plots = "\n".join(f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" '
                      f'src="data:image/png;base64,{data}">' for name, data in images)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>nnfuzz doctor</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.3em .6em;text-align:left;
vertical-align:top;border-bottom:1px solid #ddd}} .pass{{color:#080}} .warn{{color:#a60}}
.fail{{color:#c00}} .skip{{color:#06c}} img{{max-width:100%}}</style></head><body>
<h1>{html.escape(heading(diagnosis))}</h1>
<p>{html.escape(summary(diagnosis))}</p>
<table><tr>{''.join(f'<th>{h.lower()}</th>' for h in HEADER)}<th>hint</th></tr>
{rows}
</table>
{plots}
</body></html>
"""
    atomic_write(path, page.encode())
    return path


def _html_row(result: CheckResult) -> str:
    cells = [result.check, result.value, result.threshold, result.hint]
    return (f'<tr><td class="{result.status.value}"><b>{result.status.value.upper()}</b></td>'
            + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>")


def _figures(diagnosis: Diagnosis) -> list[tuple[str, Any]]:
    data = {result.check: result.data for result in diagnosis.results}
    drawers = [("gradient-norms", "gradient-flow", _gradient_norms),
               ("activations", "activations", _activation_histograms),
               ("overfit", "overfit", _overfit_curves)]
    figures = []
    for name, check, draw in drawers:
        if data.get(check):
            figures.append((name, draw(data[check])))
    return figures


def _gradient_norms(data: dict[str, Any]) -> Any:
    """A bar per trainable parameter, log scale; those with no or a zero gradient named in red."""
    plt = pyplot()
    norms: dict[str, float] = data.get("norms", {})
    names = list(norms) + list(data.get("unreached", []))
    drawn = [norms.get(name, 0.0) for name in names]
    drawn = [value if 0 < value < math.inf else math.nan for value in drawn]
    figure, axis = plt.subplots(figsize=(8, 1.5 + 0.3 * len(names)))
    axis.barh(range(len(names)), [0 if math.isnan(v) else v for v in drawn])
    axis.set_yticks(range(len(names)), names)
    for tick, value in zip(axis.get_yticklabels(), drawn):
        if math.isnan(value):
            tick.set_color("tab:red")
    axis.invert_yaxis()
    if any(not math.isnan(value) for value in drawn):
        axis.set_xscale("log")
    axis.set_xlabel("gradient norm after one backward (red: no gradient, zero or not finite)")
    axis.set_title("gradient norm by parameter")
    figure.tight_layout()
    return figure


def _activation_histograms(data: dict[str, Any]) -> Any:
    plt = pyplot()
    layers = evenly_spread(data.get("layers", []), HISTOGRAM_PANELS)
    columns = min(3, max(1, len(layers)))
    rows = max(1, math.ceil(len(layers) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.4 * rows), squeeze=False)
    for axis, layer in zip(axes.flat, layers):
        histogram = layer["histogram"]
        if histogram["counts"]:
            axis.stairs(histogram["counts"], histogram["edges"], fill=True)
        what = "dead" if layer["kind"].startswith("ReLU") else "saturated"
        stuck = f", {layer['stuck']:.0%} {what}" if layer.get("stuck") is not None else ""
        axis.set_title(f"{layer['name']} ({layer['kind']}): mean {layer['mean']:.2g}, "
                       f"std {layer['std']:.2g}{stuck}", fontsize=8)
        axis.tick_params(labelsize=7)
    for axis in list(axes.flat)[len(layers):]:
        axis.axis("off")
    figure.suptitle("activations by layer over the seeds")
    figure.tight_layout()
    return figure


def _overfit_curves(data: dict[str, Any]) -> Any:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    for seeds, losses in data.get("curves", {}).items():
        axis.plot(range(len(losses)), losses, label=f"{seeds} seeds")
    if all(value > 0 for losses in data.get("curves", {}).values() for value in losses):
        axis.set_yscale("log")
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("mean loss")
    axis.set_title("overfitting a tiny batch")
    axis.legend()
    figure.tight_layout()
    return figure


# --- trackers (--mlflow, --tensorboard) -----------------------------------------------------

def track(diagnosis: Diagnosis, tracker: Tracker, record: Path, html_path: Path | None) -> None:
    """The checks for an experiment tracker: each check's number and status, the activation
    histograms and gradient norms by layer, doctor.json and the HTML page (drawn for it
    when matplotlib is there and --html was not given)."""
    if not tracker.active:
        return
    data = {result.check: result.data for result in diagnosis.results}
    norms: dict[str, float] = data.get("gradient-flow", {}).get("norms", {})
    metrics = {f"check/{r.check}": r.measured for r in diagnosis.results if r.measured is not None}
    metrics.update({f"checks/{status}": count for status, count in diagnosis.counts().items()})
    metrics.update({f"gradient_norm/{name}": norm for name, norm in norms.items()})
    histograms = {f"activations/{layer['name']}": (layer["histogram"]["counts"],
                                                   layer["histogram"]["edges"])
                  for layer in data.get("activations", {}).get("layers", [])}
    finite = [norm for norm in norms.values() if math.isfinite(norm)]
    if finite:
        counts, edges = numpy.histogram(finite, bins=min(30, len(finite)))
        histograms["gradient_norms"] = (counts.tolist(), edges.tolist())
    tracker.start({"device": diagnosis.device, "seeds": diagnosis.seeds,
                   "seeds_sha256": diagnosis.target.seeds_sha256})
    tracker.results(metrics, {f"check/{r.check}": r.status.value for r in diagnosis.results},
                    histograms)
    tracker.artifact(record)
    with tempfile.TemporaryDirectory(prefix="nnfuzz-doctor-") as folder:
        tracker.artifact(html_path if html_path is not None else _drawn(diagnosis, folder))


def _drawn(diagnosis: Diagnosis, folder: str) -> Path:
    """The HTML page in ``folder``, or a path that is not there when nothing can draw it."""
    path = Path(folder) / "doctor.html"
    try:
        write_html(diagnosis, path)
    except UsageError:  # no matplotlib
        pass
    return path
