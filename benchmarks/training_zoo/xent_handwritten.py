"""A bag-of-words topic classifier (softmax regression on the counts of 32 words, 4 topics)
whose cross-entropy is written by hand: ``-(onehot(y) * log(softmax(z))).sum(1)``.

The real pattern: softmax, then log, then the label's negative log-likelihood, each as the
textbook writes it. It trains cleanly: 64 steps of Adam at lr 0.01 on batches of 16 never
break (10 of 10 shuffles), and the largest logit gap on the training documents stays about 10.
But the weights keep growing, and a document that repeats words (a count up to 30 per word,
inside BOUNDS) gets a much larger gap: the largest gap a document inside the bounds can give
passes 104 around step 40 (128 at step 64). There softmax rounds the smallest probability to
exactly 0 in float32, its log is -inf, and ``onehot * log(p)`` is -inf for the label (an Inf
loss) or ``0 * -inf = NaN`` for any other class.

Witness (tests/unit/test_training_zoo.py): 40 plain steps, then each batch moved twice by half
the bounds' width along the sign of the loss's gradient (every count at 0 or 30): the loss is
non-finite at step 41 (9 of 10 shuffles). The fix is ``F.cross_entropy`` (log_softmax
inside, which never takes the log of a rounded 0): the same trajectories stay clean (10 of 10).
``NNFUZZ_ZOO_FIXED=1`` in the environment switches the fix on (FIXED, read when the file is
loaded: tests/integration/test_train_zoo.py).
"""

import os

import torch
from torch import nn

BOUNDS = (0.0, 30.0)
BREAKS = "nonfinite"
FIXED = os.environ.get("NNFUZZ_ZOO_FIXED") == "1"  # the fix below, for the zoo's test
LR = 0.01
WORDS, TOPICS, DOCUMENTS = 32, 4, 128

_generator = torch.Generator().manual_seed(0)
_TOPIC = torch.arange(DOCUMENTS) % TOPICS
#: Each topic has a few frequent words (rate 2.3) among rare ones (0.3): about 24 words a document.
_RATES = 0.3 + 2.0 * (torch.rand(TOPICS, WORDS, generator=_generator) < 0.2).float()
_COUNTS = torch.poisson(_RATES[_TOPIC], generator=_generator).clamp(max=BOUNDS[1])


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(WORDS, TOPICS))


def seeds():
    return _COUNTS


def targets():
    return _TOPIC


def loss(output, target):
    if FIXED:
        return nn.functional.cross_entropy(output, target, reduction="none")
    onehot = nn.functional.one_hot(target, output.shape[1]).float()
    return -(onehot * torch.log(torch.softmax(output, 1))).sum(1)


def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=LR)
