"""Temperature-trend classifier deployed in half precision: float32 against float16.

Bug: ``reference()`` is the same network with its weights and inputs cast
to float16, as a half-precision accelerator would run it. float16 keeps 11
significant bits: readings near 290 K are rounded to 0.25 K, about the
seeds' noise, and every layer rounds again, so near a decision boundary the
two argmaxes differ: the ``disagree`` objective reports it. Both classify
every seed the same.

Random search finds it too: this is one of the zoo's two controls, rarer
than the int8 one (uniform windows: about one in 50,000 disagrees), so it
shows what the objective's guidance, toward a small top-two margin, adds.

    nnfuzz run benchmarks/zoo/sensor_fp16.py --stop-on-failure

(``--reference fp16`` builds a copy like ``reference()`` for a target without one.)
"""

import copy

import torch
from torch import nn

from _zoo import SENSOR_BOUNDS, SENSOR_CLASSES, SENSOR_LENGTH, load_seeds, load_weights

BOUNDS = SENSOR_BOUNDS


class SensorTrendMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(SENSOR_LENGTH, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, SENSOR_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - x.mean(1, keepdim=True)
        standardized = centred / (centred.std(1, keepdim=True) + 1e-3)
        return self.head(self.relu(self.hidden(standardized)))  # (B, 3)


class HalfPrecision(nn.Module):
    """A float16 copy of a module: inputs cast down, outputs cast back to float32."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(module).half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.half()).float()


def model() -> nn.Module:
    return load_weights(SensorTrendMLP(), "sensor_fp16")


def reference() -> nn.Module:
    return HalfPrecision(model())


def seeds() -> torch.Tensor:
    return load_seeds("sensor")
