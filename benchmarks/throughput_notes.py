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
| tiny MLP 64-32-10 | 100 before, auto (256) after | 0.008 | 0.010 | 43.57 | **18.98** |
| small CNN 28x28 | 100 | 0.340 | 0.334 | 154.67 | 157.34 |
| small CNN 28x28 | 1000 | 0.564 | 0.587 | 77.67 | 81.84 |
| small CNN 28x28 | 100 before, auto (256) after | 0.344 | **0.431** | 146.52 | 99.65 |

At a fixed batch size the loop was as fast as before (within the noise): what the changes to the
instrumented forward save (below) is a few percent of a step. `--batch-size auto` ran 2.3x less
overhead per input on the tiny MLP and 1.25x the ratio on the CNN, but it is an option, not the
default: larger batches do not find bugs sooner (the batch-sizes section).

The instrumented forward alone, before and after, in one process (CPU ms per batch of 100 of
the small CNN, one torch thread, median of 15 interleaved repetitions of 20 passes, load 9):
the model 4.743; with a global hook that returns at once 4.853 (+0.110); with nnfuzz's hook
5.875 before, 5.785 after (+1.132, +1.042); with the batch's statistics (`Executor.run`) 6.126
before, 5.966 after (+1.383, +1.223): 0.774 of the model's speed before, 0.795 after.

The second session on issue #29 (8da0bac against 619a31c's loop, side by side in one process
as above, 5 repetitions, load average 0.7 at the start and 0.9 at the end):

| model | batch | ratio before | ratio after | overhead µs/input before | after |
|---|---|---|---|---|---|
| tiny MLP 64-32-10 | 100 (the default) | 0.008 | 0.010 | 36.10 | **29.71** |
| tiny MLP 64-32-10 | 1000 | 0.015 | 0.008 | 5.47 | 11.33 |
| small CNN 28x28 | 100 (the default) | 0.321 | **0.343** | 144.37 | 126.95 |
| small CNN 28x28 | 1000 | 0.634 | 0.553 | 48.27 | 64.26 |

At batch 100 a step does less of its own work: 18% less overhead per input on the MLP, 1.07x
the ratio on the CNN, with the same results (23 fixed-seed runs on the MLP, the CNN, the chains
and zoo targets, the schedule, random search, a radius, the caps and output folders gave the
same executions, failures, corpus, records and generator state as 8da0bac). A step makes fewer
torch calls (counted with a `TorchFunctionMode` over the same 305 and 289 steps: MLP 446 -> 381,
CNN 597 -> 515): a guided step computes only the statistic it pushes; records, their bars and
the columns a guided step may push are worked out when the records change, not per batch; a
batch that keeps nothing adds and credits nothing; kept inputs are hashed from one copy per
tensor; the module statistics are one stack; nonfinite reads each output's finiteness once and
builds row masks only when something is not finite; a walk's progress is one pass over its
batch. At batch 1000 the loop is slower, because descent walks now have 16 starts at every batch
size: between batches of 1,000, a walk's step of 16 inputs costs a step's fixed work, and on the
MLP walk steps are two of every three steps. It was traded for finding: with walks an eighth of
the batch wide, `chain_xent` was found in 4 of 10 runs of 20,000 executions at batch 1,000,
with 16 starts in 9 of 10 (median 1,632 executions, 0.34 CPU s); keeping walks wide but giving
the first one as many steps (its head start counted in steps) found it in 10 of 10 but later
(3,160 executions, 0.46 CPU s) and `chain_std` in 5 of 10 (median 11,100) against 6 of 10
(2,848)."""


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
TRANSFERS_NOTE = """Before issue #29: 23.16 per step; after its first session: 21.52; now 12.85. The first session
removed building the statistics' counts tensor from a host list every batch (1.00 per step) and
`bool(execution.ran.any())` before coverage (0.64). The second removed: the corpus's hashing of
each kept input with its own `.cpu().numpy()` (3.04 per step; now one copy per tensor of the kept
rows, 0.58), `operators._per_example`'s tensor built from a host list (1.91; the scale tables are
made once), the corpus add and credit of a batch that keeps nothing, the `nonfinite` objective's
`nonzero` (1.00; it reads each output's finiteness once, 2.00 `__bool__` calls, and builds row
masks only when something is not finite), and a walk's pushed columns made at every step (made
once per walk). Inherent: how many mutants are kept (the corpus grows by that many) and faiss's
copy to numpy (it runs on the CPU). Left: the guidance's random draws read with `.item()` (1.30).
The table above was counted at 619a31c; since, `edge_values` builds its constants on the inputs'
device instead of copying three tensors to the host (1.91 per step): 10.94 per step."""

#: What stands between the loop and issue #29's targets, from the profiles (measured once).
IN_THE_WAY = """### What stands in the way of the targets

Small CNN (0.80 of raw asked): 0.42 at batch 100, the default (0.41 at auto's 256, 0.57 at 1000).
Without descent walks the loop runs at 0.52, and with no gradient pass at all (no walks, no
guided mutations) at 0.61 (0.78 at 1000), so even a loop without guidance stays under 0.8: the
instrumented forward alone runs at 0.80 of the model (the forward profile above) and the rest of
a step (mutation, judging, coverage, corpus) takes the difference. The gradient passes are the
largest part (from 0.61 to 0.42); the guided chains need them (`chain_std` was found in 0 of 5
runs without walks). In pyinstrument's profile at batch 100 (`results/profile-small-cnn.txt`),
executing the batches takes 44% of the loop, the walks 25% (their gradient passes 16%), the
mutations 23% (the guided gradient 12%), coverage 5%.

Tiny MLP (5 µs per input asked): 23.2 µs at batch 100, 13 µs with no gradient pass. A step makes
381 torch calls, each 3-10 µs on tensors this small: about 1.8 ms of CPU per step. 5 µs per input
at batch 100 is 0.5 ms per step, about 100 calls: a quarter of what one step's data flow (sample,
mutate with seven operators, the instrumented forward and its reductions, judge, the novelty
lookup, records, corpus) makes now. Larger batches spread a step's cost (4.4-5.5 µs at 1000
before the walks' width was fixed, 9-12 now), but on the zoo and the chains they did not find
bugs sooner (the batch-sizes section), so 100 stays the default."""
