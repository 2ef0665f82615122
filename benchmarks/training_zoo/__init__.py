"""The training-bug zoo: small target files for ``nnfuzz train``, one bug each, in the pattern
a practitioner writes it.

Every file keeps the target contract (``model()`` seeded, ``seeds()``, ``targets()``,
``loss()``, ``BOUNDS``, ``optimizer()``, and ``HYPERPARAMETERS`` where the bug lies in a
hyperparameter's range) and names in ``BREAKS`` the training objective its bug fires first:
``nonfinite`` (a NaN/Inf loss, gradient, parameter or optimizer state), ``exploding`` (a
global gradient norm above 1e5), ``dead`` (a ReLU module with >= 90% of its units <= 0 on all
of the probe batch, the first 64 training examples) or ``diverge`` (the probe loss above 10x
its start). Each docstring says the pattern, why it trains cleanly, how it breaks, the fix, and
what was measured.

tests/unit/test_training_zoo.py holds the zoo to two promises: 64 steps of plain training
(batches of 16, 10 shuffles) break nothing, and a witness trajectory inside the bounds and the
declared ranges breaks ``BREAKS`` within 64 steps.

- xent_handwritten.py: ``-(onehot * log(softmax(z)))`` on word counts; a document of
  repeated words rounds a probability to 0 (nonfinite).
- vae_kl.py: a document VAE's ``logvar.exp()`` in the KL term; counts at the bounds make its
  gradient explode (exploding).
- std_norm.py: per-batch standardisation without epsilon; a batch whose zero-inflated
  feature is 0 throughout divides 0 by 0 (nonfinite).
- sigmoid_bce.py: hand-written sigmoid and binary cross-entropy; a confident logit past ~17
  makes ``log(1 - p)`` -inf (nonfinite).
- lr_diverges.py: SGD whose declared lr range passes the edge of stability (diverge).
- dead_relu.py: a negative bias init and an lr at the top of its range kill the ReLU layer
  (dead).
"""

TARGETS = (
    "xent_handwritten.py",
    "vae_kl.py",
    "std_norm.py",
    "sigmoid_bce.py",
    "lr_diverges.py",
    "dead_relu.py",
)
