"""A variational autoencoder of documents (NVDM-style: an MLP encoder of the counts of 32
words into a 4-d Gaussian posterior, with mu and logvar heads, and a softmax decoder over the
words) whose KL term is the textbook closed form
``-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)``.

The decoder reads mu rather than a sample ``mu + exp(logvar / 2) * eps``, so that training is
deterministic; the KL term, where the bug is, is the one every VAE writes. The model's output
is the decoder's logits, mu and logvar side by side; targets() are the documents' own counts.

It trains cleanly: 64 steps of Adam at lr 0.003 on batches of 16 never break (10 of 10
shuffles), and logvar stays within about +-1.5 on the training documents. But the encoder is
piecewise linear in the counts and exp is not: a document whose counts sit at the bounds (0 or
30) drives logvar to about 21, where the KL's gradient, ``0.5 * exp(logvar)``, is about 1e9,
and the global gradient norm jumps from 8 to 1.2e10 (exploding). Past logvar 88.7 (counts
beyond these bounds) exp overflows to Inf and the loss with it; a gradient above ~1e19
overflows Adam's second moment even before that.

Witness (tests/unit/test_training_zoo.py): 20 plain steps, then each batch moved twice by half
the bounds' width along the sign of the loss's gradient: exploding at step 21 (10 of 10
shuffles). The fix is a variance that grows at most linearly, ``var = softplus(s) + 1e-4`` and
``-0.5 * (1 + log(var) - mu**2 - var)``: the same trajectories stay clean (10 of 10), where
clamping logvar to [-10, 10] still explodes in 5 of 10. ``NNFUZZ_ZOO_FIXED=1`` in the
environment switches the fix on, the logvar head's output read as ``s`` (FIXED, read when the
file is loaded: tests/integration/test_train_zoo.py).
"""

import os

import torch
from torch import nn

BOUNDS = (0.0, 30.0)
BREAKS = "exploding"
FIXED = os.environ.get("NNFUZZ_ZOO_FIXED") == "1"  # the fix below, for the zoo's test
LR = 0.003
WORDS, HIDDEN, LATENT, DOCUMENTS = 32, 32, 4, 128

_generator = torch.Generator().manual_seed(0)
_TOPIC = torch.arange(DOCUMENTS) % 4
#: Each of 4 topics has a few frequent words (rate 2.3) among rare ones (0.3).
_RATES = 0.3 + 2.0 * (torch.rand(4, WORDS, generator=_generator) < 0.2).float()
_COUNTS = torch.poisson(_RATES[_TOPIC], generator=_generator).clamp(max=BOUNDS[1])


class DocumentVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(WORDS, HIDDEN), nn.ReLU())
        self.mu = nn.Linear(HIDDEN, LATENT)
        self.logvar = nn.Linear(HIDDEN, LATENT)
        self.decoder = nn.Linear(LATENT, WORDS)

    def forward(self, counts):
        hidden = self.encoder(counts)
        mu, logvar = self.mu(hidden), self.logvar(hidden)
        return torch.cat([self.decoder(mu), mu, logvar], 1)


def model():
    torch.manual_seed(0)
    return DocumentVAE()


def seeds():
    return _COUNTS


def targets():
    return _COUNTS


def loss(output, target):
    logits = output[:, :WORDS]
    mu, logvar = output[:, WORDS:WORDS + LATENT], output[:, WORDS + LATENT:]
    reconstruction = -(target * torch.log_softmax(logits, 1)).sum(1)
    if FIXED:  # the logvar head's output read as s, var = softplus(s) + 1e-4
        var = nn.functional.softplus(logvar) + 1e-4
        kl = -0.5 * (1 + var.log() - mu ** 2 - var).sum(1)
    else:
        kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)
    return reconstruction + kl


def optimizer(parameters):
    return torch.optim.Adam(parameters, lr=LR)
