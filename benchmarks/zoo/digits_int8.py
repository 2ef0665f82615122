"""Digits MLP against its dynamically int8-quantized copy.

Bug: ``reference()`` is the model after dynamic int8 quantization
(``nnfuzz.references.quantize_int8``, torch's ``quantize_dynamic``):
weights rounded to 8 bits per tensor, activations to 8 bits by each input's
own range. The logits move by up to ~0.3 (0.18 at the median seed), so
where the model's top two classes are closer than that, the two argmaxes
differ: the ``disagree`` objective reports it. Both classify every seed the
same.

Random search finds it too: this is one of the zoo's two controls. Near a
decision boundary such a flip is common (uniform images: about one in
160), so it measures what nnfuzz costs, not what it adds.

    nnfuzz run benchmarks/zoo/digits_int8.py --stop-on-failure

(``--reference int8`` builds the same copy for a target without ``reference()``.)
"""

import torch
from torch import nn

from _zoo import DigitsMLP, load_seeds, load_weights
from nnfuzz.references import quantize_int8

BOUNDS = (0.0, 16.0)


def model() -> nn.Module:
    return load_weights(DigitsMLP(), "digits_int8")


def reference() -> nn.Module:
    return quantize_int8(model())


def seeds() -> torch.Tensor:
    return load_seeds("digits")
