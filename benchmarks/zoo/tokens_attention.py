"""Token classifier (embedding, GRU, attention pooling) that attends to content tokens only.

Bug: the pooled state is an attention-weighted sum of the GRU's states,
with padding and stop words (ids below FIRST_CONTENT) masked out by setting
their scores to -Inf before the softmax. A sequence with no content token
has only -Inf scores; the softmax of such a row is ``0 / 0``, NaN, and so
are the logits.

Why random search misses it: the seeds hold 5 to 13 content tokens; 16
random tokens are all stop words or padding with probability 0.2 ** 16,
about 7e-12, and one edit of a seed removes at most 4: it takes a chain of
deletions and replacements.

    nnfuzz run benchmarks/zoo/tokens_attention.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import load_seeds, load_weights

VOCAB = 50
PAD = 0
#: Ids 1..9 are stop words ("the", "a", ...): real tokens that carry no content.
FIRST_CONTENT = 10
BOUNDS = (0, VOCAB - 1)
WIDTH = 16


class TokenAttentionGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH, padding_idx=PAD)
        self.gru = nn.GRU(WIDTH, WIDTH, batch_first=True)
        self.query = nn.Parameter(torch.randn(WIDTH) / 4)
        self.head = nn.Linear(WIDTH, 4)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        states, _ = self.gru(self.embed(tokens))  # (B, L, WIDTH)
        scores = states @ self.query  # (B, L)
        scores = scores.masked_fill(tokens < FIRST_CONTENT, float("-inf"))
        weights = torch.softmax(scores, 1)  # the bug: a row of -Inf only gives NaN
        return self.head((weights.unsqueeze(-1) * states).sum(1))  # (B, 4)


def model() -> nn.Module:
    return load_weights(TokenAttentionGRU(), "tokens_attention")


def seeds() -> torch.Tensor:
    return load_seeds("tokens")  # (N, 16) int64
