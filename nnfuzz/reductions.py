"""Each module output reduced to per-example statistics as it is made, and a batch's
module statistics from those reductions (nnfuzz.execution's hook fills a
:class:`Reducer` per forward pass).

The reductions run on every module of every batch, so they must cost little next
to the model: four reductions per output and nothing else, computed once per tensor
(a container's output, or a ``Flatten``'s view, is the tensor its last module made,
and is not reduced again), with the largest and smallest values of a ``ReLU``'s
output taken from its input's (``max(relu(x)) = max(max(x), 0)``, exactly). What
they mean (mean, spread, largest magnitude) is worked out once per batch for all
modules together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from nnfuzz.execution_record import STATS

ABSMAX = STATS.index("absmax")
#: Per example (each (B,)): the sum, L2 norm, largest and smallest value of an output.
Reductions = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
#: (module index, values per example, its reductions) of one module output.
Event = tuple[int, int, Reductions]


def reduce(flat: torch.Tensor) -> Reductions:
    """Per example: the sum, L2 norm, largest and smallest value of ``flat`` (B, D).

    About 5 us of fixed cost each on a small output and memory-bound on a large one
    (about 50 us each on a (100, 5408) conv output; 2 cores, one thread): torch.std_mean
    took 8.4 ms there, torch.aminmax was 7x slower than amax and amin, and a row-wise
    dot product for the norm (bmm) 25x slower. NaN and Inf pass through to the largest
    and smallest values.
    """
    return (flat.sum(1), torch.linalg.vector_norm(flat, 2, dim=1), flat.amax(1), flat.amin(1))


def _version(tensor: torch.Tensor) -> int | None:
    """The tensor's in-place write counter (shared with its views); None for inference
    tensors, which keep none."""
    try:
        return tensor._version
    except RuntimeError:
        return None


def _layout(tensor: torch.Tensor) -> tuple[Any, ...]:
    """What makes two tensors the same values while the first is held (so that its memory
    is not reused): the same memory, shape, strides and type, not written in between."""
    return (tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype, tensor.device,
            _version(tensor))


@dataclass
class Reducer:
    """The reductions of one forward pass's module outputs, in forward order."""

    events: list[Event] = field(default_factory=list)
    #: The last output reduced (held, so that its memory is not reused during the pass), its
    #: layout when it was reduced, and its reductions.
    _last: tuple[torch.Tensor, tuple[Any, ...], Reductions] | None = None

    def add(self, index: int, module: torch.nn.Module, args: Any, rows: torch.Tensor) -> None:
        """Module ``index``'s output, as (B, D) rows (D > 0), made from ``args``."""
        self.events.append((index, rows.shape[1], self._reduced(module, args, rows)))

    def _reduced(self, module: torch.nn.Module, args: Any, rows: torch.Tensor) -> Reductions:
        last = self._last
        layout = _layout(rows)
        if last is not None and last[1] == layout:
            return last[2]  # the tensor the last module made (a container's, a view's)
        values = rows.detach().float()
        if last is not None and type(module) is torch.nn.ReLU and _made_from(module, args, last):
            sums, norms = values.sum(1), torch.linalg.vector_norm(values, 2, dim=1)
            reduced: Reductions = (sums, norms, last[2][2].clamp(min=0), last[2][3].clamp(min=0))
        else:
            reduced = reduce(values)
        self._last = (rows, layout, reduced)
        return reduced


def _made_from(module: torch.nn.ReLU, args: Any, last: tuple[torch.Tensor, tuple[Any, ...],
                                                            Reductions]) -> bool:
    """Whether the ReLU's input is the last output reduced, unchanged since (but for the ReLU's
    own write when in place)."""
    if len(args) != 1 or not isinstance(args[0], torch.Tensor):
        return False
    source, (pointer, shape, strides, dtype, device, version) = args[0], last[1]
    written = _version(source)
    return (version is not None and written == version + int(module.inplace)
            and source.data_ptr() == pointer and source.dtype == dtype
            and source.device == device and source.numel() == shape.numel()
            and source.is_contiguous() and strides == (shape[1], 1))


def statistics(events: list[Event], counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std, largest magnitude) (B, E, STATS) and the largest magnitude (B, E) of each
    event's output, from its reductions and its values per example (``counts``, (E,)): a
    dozen torch calls per batch however many modules ran (one stack of every reduction). The
    spread from E[x^2] - E[x]^2 loses precision when the mean dwarfs it; as a coverage
    signal that is fine."""
    reduced = torch.stack([r for _, _, reductions in events for r in reductions], 1)
    sums, norms, highs, lows = reduced.view(reduced.shape[0], len(events), 4).unbind(2)
    mean = sums / counts
    std = (norms.square() / counts - mean.square()).clamp(min=0).sqrt()
    absmax = torch.maximum(highs.abs(), lows.abs())
    return torch.stack((mean, std, absmax), 2), absmax


@dataclass(frozen=True)
class EventLayout:
    """For the events of a forward pass, in order: the modules that ran (each once), the
    position of each one's first event (None when no module ran twice), the (module,
    position) of every later event, each event's values per example, and, when every
    module ran exactly once, the event of each module in module order (else None)."""

    modules: torch.Tensor
    firsts: torch.Tensor | None
    repeats: list[tuple[int, int]]
    counts: torch.Tensor
    in_module_order: torch.Tensor | None = None

    @classmethod
    def of(cls, events: list[Event], device: torch.device, modules: int = -1) -> "EventLayout":
        first: dict[int, int] = {}
        for position, (module, _, _) in enumerate(events):
            first.setdefault(module, position)
        repeats = [(module, position) for position, (module, _, _) in enumerate(events)
                   if first[module] != position]
        every_once = not repeats and sorted(first) == list(range(modules))
        return cls(torch.tensor(list(first), device=device),
                   torch.tensor(list(first.values()), device=device) if repeats else None,
                   repeats, torch.tensor([count for _, count, _ in events], dtype=torch.float32,
                                         device=device),
                   torch.tensor([first[m] for m in range(modules)], device=device)
                   if every_once else None)


class ModuleStatistics:
    """Each module's statistics for a batch from its events' reductions; the events' layout
    is the same from batch to batch, so it is worked out (and sent to the device) once."""

    def __init__(self, modules: int) -> None:
        self.modules = modules
        self._layout: tuple[tuple[tuple[int, int], ...], EventLayout] | None = None

    def __call__(self, events: list[Event], size: int, device: torch.device
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, M, STATS), NaN where a module did not run: mean and std of its first output,
        the largest magnitude over all of them; and each event's largest magnitude (B, E)."""
        if not events:
            return self._none_ran(size, device), torch.zeros(size, 0, device=device)
        layout = self._layout_of(events, device)
        values, absmax = statistics(events, layout.counts)  # (B, E, STATS)
        if layout.in_module_order is not None:  # every module once: no NaN left to fill
            return values.index_select(1, layout.in_module_order), absmax
        stats = self._none_ran(size, device)
        if layout.firsts is not None:
            values = values.index_select(1, layout.firsts)
        stats.index_copy_(1, layout.modules, values)
        for module, position in layout.repeats:
            stats[:, module, ABSMAX] = torch.fmax(stats[:, module, ABSMAX], absmax[:, position])
        return stats, absmax

    def _none_ran(self, size: int, device: torch.device) -> torch.Tensor:
        return torch.full((size, self.modules, len(STATS)), float("nan"), device=device)

    def _layout_of(self, events: list[Event], device: torch.device) -> EventLayout:
        key = tuple((module, count) for module, count, _ in events)
        if self._layout is None or self._layout[0] != key or \
                self._layout[1].counts.device != device:
            self._layout = (key, EventLayout.of(events, device, self.modules))
        return self._layout[1]
