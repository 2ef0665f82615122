"""Small CNN on 28x28 digits that first crops each image to its ink's bounding box.

Bug: in the spirit of MNIST's preprocessing (each digit's bounding box fit
into 20x20), the model crops each image to the rows and columns that hold
ink (pixels above INK) and resizes the crop to 20x20. It reads the first
and last inked rows as ``rows[0]`` and ``rows[-1]``: on a blank image, one
with no pixel above INK, there are none, and indexing raises IndexError.

Why random search misses it: the seeds are scikit-learn digits upsampled
to 28x28 (brightest pixel 15 to 16); uniform images and noise around the
seeds are full of ink, and one brightness step darkens by at most 4.8:
blanking all 784 pixels takes a chain of them.

    nnfuzz run benchmarks/zoo/digits28_crop.py --stop-on-failure
"""

import torch
import torch.nn.functional as F
from torch import nn

from _zoo import load_seeds, load_weights

BOUNDS = (0.0, 16.0)
#: The intensity above which a pixel counts as ink.
INK = 4.0
#: Side of the square each crop is resized to.
CROP = 20


def crop_to_ink(images: torch.Tensor) -> torch.Tensor:
    """Each image (B, 1, 28, 28) cropped to its ink's bounding box, resized to (B, 1, 20, 20)."""
    crops = []
    for image in images:
        ink = image[0] > INK  # (28, 28)
        rows, columns = ink.any(1).nonzero().flatten(), ink.any(0).nonzero().flatten()
        box = image[:, rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]  # the bug: no ink, no rows
        crops.append(F.interpolate(box.unsqueeze(0), size=(CROP, CROP), mode="bilinear",
                                   align_corners=False))
    return torch.cat(crops)


class Digits28CropCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2),  # (B, 8, 9, 9)
            nn.Conv2d(8, 16, 3), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 3, 3)
        )
        self.head = nn.Linear(16 * 3 * 3, 10)

    def classify(self, crops: torch.Tensor) -> torch.Tensor:
        """Logits (B, 10) of crops that are already cut and resized (training uses this)."""
        return self.head(self.features(crops / 16).flatten(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(crop_to_ink(images))


def model() -> nn.Module:
    return load_weights(Digits28CropCNN(), "digits28_crop")


def seeds() -> torch.Tensor:
    return load_seeds("digits28")  # (N, 1, 28, 28) float32
