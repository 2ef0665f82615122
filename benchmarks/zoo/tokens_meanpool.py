"""Token classifier whose masked mean pooling divides by the count of real tokens.

Bug: the pooled embedding is ``sum / count`` over the non-padding tokens,
with no guard for a count of zero: a sequence of padding only gives ``0 / 0``
and NaN logits. The seeds are sequences of 8 to 16 tokens padded with 0;
reaching an empty one takes several deletions in a row, which random
mutation of the seeds never chains.

    nnfuzz run benchmarks/zoo/tokens_meanpool.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

VOCAB = 50
PAD = 0
#: Token ids 0 (padding) .. VOCAB - 1.
BOUNDS = (0, VOCAB - 1)


class TokenMeanPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16, padding_idx=PAD)
        self.mix = nn.Linear(16, 16)
        self.act = nn.Tanh()
        self.head = nn.Linear(16, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != PAD).float()  # (B, L)
        summed = (self.act(self.mix(self.embed(tokens))) * mask.unsqueeze(-1)).sum(1)  # (B, 16)
        pooled = summed / mask.sum(1, keepdim=True)  # the bug: count may be 0
        return self.head(pooled)  # (B, 4)


def model() -> nn.Module:
    return load_weights(TokenMeanPool(), "tokens_meanpool")


def seeds() -> torch.Tensor:
    return load_seeds("tokens")  # (N, 16) int64
