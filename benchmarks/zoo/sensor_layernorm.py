"""Temperature-trend classifier whose hand-written standardisation takes the
variance as ``E[x^2] - E[x]^2``.

Bug: each window of readings is standardised with a one-pass variance,
``mean(x * x) - mean(x) ** 2``, in float32. The readings are in kelvin
(about 290), so both terms are about 84,000 and their rounding errors about
0.01: on a nearly flat window (a stuck sensor) the difference rounds below
zero, ``sqrt`` of it is NaN, and so is every logit. The epsilon under the
square root guards an exactly zero variance only. Measured on windows of
pure noise: NaN for 26% of perfectly flat ones, 9% at a spread (standard
deviation) of 0.1 K, 0.06% at 0.2 K, none from 0.3 K.

Why random search misses it: the seeds spread 0.36 to 2.7 K (noise and
trend); uniform windows and noise around the seeds spread tens of kelvin,
and one contrast step at most halves the spread: flattening a window takes
a chain of them, and then luck in the rounding.

    nnfuzz run benchmarks/zoo/sensor_layernorm.py --stop-on-failure
"""

import torch
from torch import nn

from _zoo import SENSOR_BOUNDS, SENSOR_CLASSES, SENSOR_LENGTH, load_seeds, load_weights

BOUNDS = SENSOR_BOUNDS


class OnePassStandardize(nn.Module):
    """(x - mean) / std per window, with the variance computed in one pass."""

    def __init__(self, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.epsilon = epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)  # (B, 1)
        variance = (x * x).mean(1, keepdim=True) - mean * mean  # the bug: may round below 0
        return (x - mean) / torch.sqrt(variance + self.epsilon)


class SensorTrendMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.standardize = OnePassStandardize()
        self.hidden = nn.Linear(SENSOR_LENGTH, 32)
        self.relu = nn.ReLU()
        self.head = nn.Linear(32, SENSOR_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.hidden(self.standardize(x))))  # (B, 3)


def model() -> nn.Module:
    return load_weights(SensorTrendMLP(), "sensor_layernorm")


def seeds() -> torch.Tensor:
    return load_seeds("sensor")  # (N, 32) float32, kelvin
