"""What the throughput section says besides its measurements: issue #29's before and after, and
what its profiles showed, measured once and kept here so that a rerun of the section keeps the
comparison it was judged by (benchmarks/throughput.py puts them in)."""

#: Issue #29's before and after, measured once (2026-12-06, under the load of other jobs):
#: kept here so that a rerun of the section keeps the comparison it was judged by.
BEFORE = """### Before and after issue #29

Before (commit 43041d9, `python -m benchmarks.throughput`, load average 0.59 at the start and
4.01 at the end): tiny MLP 32.14 µs overhead per input at batch 100 (its default) and 6.40 at
batch 1000; small CNN ratio 0.413 at batch 100 and 0.626 at batch 1000.

Side by side in one process (43041d9's package imported under another name, `nnfuzz_before`,
against f0fa204's; each repetition runs raw, before, raw, after; 5 repetitions, medians of the
paired ratios; load average 9.1 at the start, 10.5 at the end, so every time is about twice an
idle machine's and only the comparison holds):

| model | batch | ratio before | ratio after | overhead µs/input before | after |
|---|---|---|---|---|---|
| tiny MLP 64-32-10 | 100 | 0.008 | 0.009 | 43.15 | 41.73 |
| tiny MLP 64-32-10 | 1000 | 0.015 | 0.016 | 7.02 | 6.98 |
| tiny MLP 64-32-10 | default: 100 before, auto (256) after | 0.008 | 0.010 | 43.57 | **18.98** |
| small CNN 28x28 | 100 | 0.340 | 0.334 | 154.67 | 157.34 |
| small CNN 28x28 | 1000 | 0.564 | 0.587 | 77.67 | 81.84 |
| small CNN 28x28 | default: 100 before, auto (256) after | 0.344 | **0.431** | 146.52 | 99.65 |

At a fixed batch size the loop is as fast as before (within the noise): what the changes to the
instrumented forward save (below) is a few percent of a step. The default settings gain from
`--batch-size auto`: 2.3x less overhead per input on the tiny MLP, 1.25x the ratio on the CNN.

The instrumented forward alone, before and after, in one process (CPU ms per batch of 100 of
the small CNN, one torch thread, median of 15 interleaved repetitions of 20 passes, load 9):
the model 4.743; with a global hook that returns at once 4.853 (+0.110); with nnfuzz's hook
5.875 before, 5.785 after (+1.132, +1.042); with the batch's statistics (`Executor.run`) 6.126
before, 5.966 after (+1.383, +1.223): 0.774 of the model's speed before, 0.795 after."""


#: What the forward profile below says, and what issue #29 changed there (measured once).
FORWARD_EXPLAINED = """The issue's 10.8 ms instrumented forward against 7.7 ms raw came from pyinstrument, which
inflates every Python call; measured on the CPU clock without a profiler the gap is about 1.2
to 1.4 ms on a 4.7-5.6 ms batch. It is, in order: the statistics' reductions of every module
output (four memory-bound passes over each output, about 50 µs each over the first conv's
(100, 5408) output: 0.5-0.7 ms in all, the torch profiler's 10-13%); the cache those passes take
from the model's own next op; nnfuzz's hook in Python (about 10 µs a module: reading the output,
two dict lookups; 0.1 ms for the nine modules); PyTorch's dispatch of a process-wide hook (0.1
ms, the `+ a global hook` row); and the batch's statistics from the reductions (a dozen torch
calls, 0.1-0.2 ms). There are no copies: a float32 output is reduced in place. Issue #29 removed
what was computed twice: a container's output (the Sequential's is its Linear's tensor) and a
view (Flatten's) reuse the reductions of the tensor they are, and a ReLU takes its largest and
smallest values from its input's (`max(relu(x)) = max(max(x), 0)`, exactly), which leaves 24 of
the 36 reductions per batch; the statistics and every corpus file stay bit-identical. The counts
tensor is kept with the events' layout instead of being built (and copied to the device) every
batch. What is left of the hook is the reductions that carry the records' signal."""

#: The host transfers before issue #29 (same run, same trajectory: 289 steps).
TRANSFERS_NOTE = """Before issue #29: 23.16 per step; after: 21.52. Removed: building the statistics' counts
tensor from a host list every batch (1.00 per step, now kept with the events' layout) and
`bool(execution.ran.any())` before coverage (0.64, now `Execution.none_ran`, known on the host).
Inherent: one `nonzero` for how many mutants are kept (the corpus grows by that many), faiss's
copy to numpy (it runs on the CPU). Avoidable, in modules outside this issue's part: the corpus
hashes each kept input with its own `.cpu().numpy()` (3.04 per step: one copy of all the kept
rows would do), `edge_values` copies three scalars to the host (1.91), `operators._per_example`
builds a tensor from a host list (1.91), the guidance's `.item()` calls (1.30), and the
`nonfinite` objective's `nonzero` (1.00; needed only when something is non-finite)."""

#: What stands between the loop and issue #29's targets, from the profiles (measured once).
IN_THE_WAY = """### What stands in the way of the targets

Small CNN (0.80 of raw asked; 0.44-0.48 measured here at batch 100 and auto): in pyinstrument's
profile of 20,000 executions at batch 100 (`results/profile-small-cnn.txt`), executing the
batches takes 43% of the loop (the model itself 37%, nnfuzz's hook and statistics 6%), the
descent walks 25% and the mutations 22%, most of those two the guided gradient passes (about
three forward passes' worth per guided row), coverage 6%. The instrumented forward alone is at
0.80 of the model's speed; the gradient passes are what keep the loop at half of it (issue #29's
item 2, how much of each batch is guided, is where that is decided). Tiny MLP (5 µs per input
asked): the loop's own work per batch (mutation, coverage lookups, judging, the walks) is about
3-4 ms whatever the batch; at 1000 the overhead is 5.4 µs, at auto's 256 it is 19-26 µs: auto
stops at 256 because larger batches found the zoo's bugs no sooner (README, `--batch-size`)."""
