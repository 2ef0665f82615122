"""ModuleStatistics takes a shortcut when every module ran once (its events, put in module
order, are the statistics): it must give what filling a NaN tensor module by module gives."""

from __future__ import annotations

from dataclasses import replace

import torch

from nnfuzz.reductions import EventLayout, ModuleStatistics, reduce


def test_every_module_once_is_the_filled_statistics() -> None:
    g = torch.Generator().manual_seed(0)
    outputs = [torch.randn(5, width, generator=g) * scale for width, scale in ((7, 1.0), (3, 1e3), (1, 0.1))]
    outputs[1][2, 0] = float("inf")
    order = [2, 0, 1]  # hooks fire as modules finish: children before the model
    events = [(module, outputs[module].shape[1], reduce(outputs[module])) for module in order]
    statistics = ModuleStatistics(3)
    fast, fast_absmax = statistics(events, 5, torch.device("cpu"))
    layout = EventLayout.of(events, torch.device("cpu"), 3)
    assert layout.in_module_order is not None
    statistics._layout = (tuple((m, c) for m, c, _ in events), replace(layout, in_module_order=None))
    filled, absmax = statistics(events, 5, torch.device("cpu"))
    assert torch.equal(fast_absmax, absmax)
    assert torch.equal(fast.isnan(), filled.isnan()) and not fast.isnan().all(2).any()
    assert torch.equal(torch.nan_to_num(fast), torch.nan_to_num(filled))


def test_a_module_that_did_not_run_takes_the_filled_path() -> None:
    events = [(1, 2, reduce(torch.ones(3, 2)))]
    assert EventLayout.of(events, torch.device("cpu"), 2).in_module_order is None
    stats, _ = ModuleStatistics(2)(events, 3, torch.device("cpu"))
    assert stats[:, 0].isnan().all() and not stats[:, 1].isnan().any()
