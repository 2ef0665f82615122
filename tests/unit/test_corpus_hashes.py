"""The corpus hashes a batch's rows from one copy per tensor (Corpus._hashes_of): the names
must be storage.content_hash's, row by row, whatever the dtype, shape or layout."""

from __future__ import annotations

import pytest
import torch

from nnfuzz.corpus import Corpus
from nnfuzz.storage import content_hash


def _batches() -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 4, 4, generator=g)
    return [
        (torch.rand(6, 64, generator=g),),
        (images.permute(0, 2, 3, 1),),  # not contiguous
        (torch.randint(0, 9, (4, 7), generator=g), torch.rand(4, 7, generator=g) < 0.5),
        (torch.rand(3, 2, generator=g).half(), torch.rand(3, generator=g).double()),  # (B,) rows
        (torch.rand(3, 0, generator=g), torch.rand(3, 2, generator=g)),  # empty rows
        (torch.rand(0, 4, generator=g),),  # no rows
        (torch.randint(0, 255, (4, 3), generator=g).to(torch.uint8),),
    ]


@pytest.mark.parametrize("inputs", _batches())
def test_row_hashes_are_content_hashes(inputs: tuple[torch.Tensor, ...]) -> None:
    expected = [content_hash(tuple(t[row] for t in inputs)) for row in range(inputs[0].shape[0])]
    assert Corpus._hashes_of(inputs) == expected
