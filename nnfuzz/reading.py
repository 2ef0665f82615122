"""Reading what a model or a module returned, however it comes.

A model returns a tensor, a tuple, a dict or a Hugging Face ``ModelOutput``; a
module inside it may return nested tensors, a PackedSequence, sequence-first
tensors or ``(N,)`` ones. These functions find in any of them the primary
output (the README's *The target file*), every tensor, and one row per example; the executor, the
objectives and the doctor read outputs only through them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def primary_output(output: Any) -> torch.Tensor | None:
    """The ``logits`` entry of a mapping, else the first tensor (the README's *The target file*)."""
    if isinstance(output, Mapping) and isinstance(output.get("logits"), torch.Tensor):
        return output["logits"]
    tensors = output_tensors(output)
    return tensors[0] if tensors else None


def same_outputs(first: Any, second: Any) -> bool:
    """Two outputs hold the same tensors, bit for bit (NaN where the other has NaN)."""
    ours, theirs = output_tensors(first), output_tensors(second)
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        a = a.to_padded_tensor(0.0) if a.is_nested else a
        b = b.to_padded_tensor(0.0) if b.is_nested else b
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if not bool(((a == b) | (a.isnan() & b.isnan()) if a.is_floating_point() else a == b).all()):
            return False
    return True


def output_tensors(output: Any) -> list[torch.Tensor]:
    """Every tensor inside a (nested) output, in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        return [tensor for item in output for tensor in output_tensors(item)]
    return []


def batch_rows(output: Any, size: int) -> torch.Tensor | None:
    """The first float tensor of a module's output as (size, -1) rows, one per example.

    Reads what modules return: tensors batch-first or sequence-first (the batch
    in dim 1, as nn.LSTM's and nn.GRU's outputs and hidden states), ``(N,)``
    tensors, nested tensors (padded with zeros), a PackedSequence (unpacked in
    the batch's own order), and tuples, lists and mappings of these. None when
    nothing in it has a batch dimension.
    """
    if isinstance(output, PackedSequence):
        output = pad_packed_sequence(output, batch_first=True)[0]  # (B, T, H), original order
    if isinstance(output, torch.Tensor):
        return _as_batch(output, size) if output.dtype.is_floating_point else None
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            if (rows := batch_rows(item, size)) is not None:
                return rows
    return None


def _as_batch(tensor: torch.Tensor, size: int) -> torch.Tensor | None:
    """A tensor as (size, -1) rows: batch-first, (N,), nested or sequence-first; else None."""
    first = batch_first(tensor, size)
    return first.reshape(size, -1) if first is not None else None


def batch_first(tensor: torch.Tensor, size: int) -> torch.Tensor | None:
    """The tensor with its batch dimension first and its other dimensions kept: nested
    tensors padded with zeros, sequence-first ones (T, B, ...) transposed; else None."""
    if tensor.is_nested:
        if tensor.size(0) != size:
            return None
        tensor = tensor.to_padded_tensor(0.0)
    if tensor.dim() >= 1 and tensor.shape[0] == size:
        return tensor
    if tensor.dim() >= 2 and tensor.shape[1] == size:
        return tensor.transpose(0, 1)
    return None
