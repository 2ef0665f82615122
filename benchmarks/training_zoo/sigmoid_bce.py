"""A logistic classifier whose binary cross-entropy is written by hand,
``-(y log p + (1 - y) log(1 - p))`` with ``p = sigmoid(z)`` (examples/train_bce.py,
loaded from there: one file to keep).

It trains cleanly on its own data: 64 steps of SGD at lr 12 on batches of 16 never break (10
of 10 shuffles). But once training has made the classifier confident, a batch whose inputs sit
nearer the bounds gives some example a logit past ~17, where sigmoid rounds to exactly 1 in
float32: ``log(1 - p)`` is ``log(0) = -inf``, and the loss is Inf (a negative example) or
``0 * -inf = NaN`` (a positive one).

Witness (tests/unit/test_training_zoo.py): 40 plain steps, then each batch moved once by half
the bounds' width along the sign of the gradient of the outputs' magnitude: the loss is
non-finite at step 41 or 42 (10 of 10 shuffles). The fix is torch's
``binary_cross_entropy_with_logits``: the same trajectories stay finite (10 of 10), though in
5 of 10 the probe loss then passes 10x its start (training at lr 12 on moved inputs unlearns).
``NNFUZZ_ZOO_FIXED=1`` in the environment switches the fix on (FIXED, read when the file is
loaded: tests/integration/test_train_zoo.py), in this file's loss(): the example keeps its bug.
"""

import importlib.util
import os
from pathlib import Path

from torch import nn

BREAKS = "nonfinite"
FIXED = os.environ.get("NNFUZZ_ZOO_FIXED") == "1"  # the fix below, for the zoo's test

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_bce.py"
_spec = importlib.util.spec_from_file_location("nnfuzz_example_train_bce", _EXAMPLE)
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)

BOUNDS, LR = _example.BOUNDS, _example.LR
model, seeds, targets = _example.model, _example.seeds, _example.targets
optimizer = _example.optimizer


def loss(output, target):
    """The example's hand-written loss; fixed: torch's, from the logit."""
    if FIXED:
        return nn.functional.binary_cross_entropy_with_logits(output[:, 0], target,
                                                              reduction="none")
    return _example.loss(output, target)
