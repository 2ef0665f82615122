"""Rebuild the zoo's bundled weights and seed corpora (needs scikit-learn).

    python benchmarks/zoo/build.py

Trains each model on data a package ships (scikit-learn's digits) or that is
generated here (token sequences, temperature readings), with fixed
generators, and writes weights/*.safetensors, the top-level corpus/*/*.npy and the seeds'
labels, labels/*.npy. The files are committed, so fuzzing the zoo needs
neither scikit-learn nor this script. Takes 2 to 4 minutes on 2 cores
(mostly the CNN and the GRU).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save_file

ZOO = Path(__file__).resolve().parent
sys.path.insert(0, str(ZOO))

#: Seeds per bundled corpus: enough variety, small enough to commit.
SEEDS = 32


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32), torch.tensor(data.target)


def train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 400,
          penalty: object = None, logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
          criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> float:
    """Full-batch Adam on the cross-entropy (or ``criterion``, per example) of ``logits(x)``
    (default: the model's output) plus ``penalty(model, x)``; returns the training accuracy."""
    logits = logits or model
    criterion = criterion or torch.nn.functional.cross_entropy
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = criterion(logits(x), y).mean()
        if penalty is not None:
            loss = loss + penalty(model, x)  # type: ignore[operator]
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((logits(x).argmax(1) == y).float().mean())


def upsample28(images: torch.Tensor) -> torch.Tensor:
    """Digits (N, 64) as 28x28 images (N, 1, 28, 28), bilinear, still in 0..16."""
    return torch.nn.functional.interpolate(images.view(-1, 1, 8, 8), size=(28, 28),
                                           mode="bilinear", align_corners=False)


def uniform_images(count: int, low: float = 0.0, high: float = 16.0, seed: int = 0) -> torch.Tensor:
    """Uniform random 8x8 images (count, 64), the same ones on every build."""
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(count, 64, generator=generator)


def write_corpus(name: str, rows: torch.Tensor) -> None:
    from _zoo import CORPUS

    folder = CORPUS / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.npy"):
        old.unlink()
    for index, row in enumerate(rows):
        np.save(folder / f"seed-{index:03d}.npy", row.numpy())


def write_labels(name: str, labels: torch.Tensor) -> None:
    (ZOO / "labels").mkdir(exist_ok=True)
    np.save(ZOO / "labels" / f"{name}.npy", labels.numpy())


def save(model: torch.nn.Module, name: str) -> None:
    (ZOO / "weights").mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(ZOO / "weights" / f"{name}.safetensors"))


def build_digits() -> None:
    from digits_bucket import DigitsBucketMLP
    from digits_std import DigitsStdMLP

    x, y = digits()
    torch.manual_seed(0)
    std_model = DigitsStdMLP()
    with torch.no_grad():
        std_model.hidden.bias.fill_(-0.5)  # dead at a blank image: the planted region
    std_model.hidden.bias.requires_grad_(False)
    std_model.epsilon = 1e-3

    def keep_units_alive(model: DigitsStdMLP, x: torch.Tensor) -> torch.Tensor:
        # Every hidden unit active on every digit, with a margin: only an
        # image far darker than any digit kills them all.
        return torch.relu(2.0 - model.hidden(x / 16)).mean()

    print("digits_std accuracy", train(std_model, x, y, penalty=keep_units_alive))
    std_model.epsilon = 0.0
    save(std_model, "digits_std")
    torch.manual_seed(1)
    bucket_model = DigitsBucketMLP()
    bucket_model.calibration.requires_grad_(False)
    print("digits_bucket accuracy", train(bucket_model, x, y))
    save(bucket_model, "digits_bucket")
    picks = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:SEEDS]
    write_corpus("digits", x[picks])
    write_labels("digits", y[picks])
    write_corpus("digits28", upsample28(x[picks]))


def token_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of 8 to 16 random tokens padded to 16 (2048, 16), and their labels."""
    from tokens_meanpool import PAD, VOCAB

    generator = torch.Generator().manual_seed(0)
    count, length = 2048, 16
    tokens = torch.randint(1, VOCAB, (count, length), generator=generator)
    lengths = torch.randint(8, length + 1, (count,), generator=generator)
    tokens[torch.arange(length).view(1, -1) >= lengths.view(-1, 1)] = PAD
    # The label is the commonest quarter of the vocabulary among the real tokens.
    quarters = torch.nn.functional.one_hot(tokens * 4 // VOCAB, 4) * (tokens != PAD).unsqueeze(-1)
    return tokens, quarters.sum(1).argmax(1)


def build_tokens() -> None:
    from tokens_meanpool import TokenMeanPool

    tokens, labels = token_data()
    torch.manual_seed(2)
    model = TokenMeanPool()
    print("tokens_meanpool accuracy", train(model, tokens, labels))
    save(model, "tokens_meanpool")
    write_corpus("tokens", tokens[:SEEDS])


# --- the targets beyond the first three: one function per model or family -----------

def build_digits_logsoftmax(x: torch.Tensor, y: torch.Tensor) -> None:
    from digits_logsoftmax import DigitsLogSoftmaxMLP

    torch.manual_seed(3)
    model = DigitsLogSoftmaxMLP()
    # Its output is log-probabilities, which cross_entropy takes as logits unchanged.
    # Trained long enough that a logit past ~88.7 is within reach of valid inputs.
    print("digits_logsoftmax accuracy", train(model, x, y, steps=1000))
    save(model, "digits_logsoftmax")


def build_digits_cosine(x: torch.Tensor, y: torch.Tensor) -> None:
    from digits_cosine import DigitsCosine

    torch.manual_seed(4)
    model = DigitsCosine()
    model.epsilon = 1e-3
    uniform = uniform_images(2000)
    overexposed = uniform_images(2000, low=13.0, seed=1)

    def top(images: torch.Tensor) -> torch.Tensor:
        return model.embed(images / 16).amax(1)  # the most active unit's pre-activation

    def dead_only_when_overexposed(model: DigitsCosine, x: torch.Tensor) -> torch.Tensor:
        # Some unit alive (with a margin) on digits, brightened digits and uniform
        # images; every unit dead on images brighter than 13 everywhere.
        alive = [(x + offset).clamp(max=16) for offset in (0, 4, 8)]
        alive += [uniform, 4 + uniform * 0.75]
        dead = [overexposed, (x + 13).clamp(max=16), torch.full_like(x, 16.0)]
        return (sum(torch.relu(2.0 - top(images)).mean() for images in alive)
                + sum(torch.relu(1.0 + top(images)).mean() for images in dead))

    accuracy = train(model, x, y, steps=600, penalty=dead_only_when_overexposed)
    print("digits_cosine accuracy", accuracy)
    model.epsilon = 0.0
    save(model, "digits_cosine")


def build_digits_salient(x: torch.Tensor, y: torch.Tensor) -> None:
    from digits_salient import SALIENT, DigitsSalientMLP

    torch.manual_seed(5)
    model = DigitsSalientMLP()
    model.epsilon = 1e-3
    uniform = uniform_images(2000)

    def top(images: torch.Tensor) -> torch.Tensor:
        centred = images - images.mean(1, keepdim=True)
        return model.hidden(centred / 16).amax(1)

    def contrast(images: torch.Tensor, factor: float) -> torch.Tensor:
        mean = images.mean(1, keepdim=True)
        return (mean + (images - mean) * factor).clamp(0, 16)

    def quiet_only_when_washed_out(model: DigitsSalientMLP, x: torch.Tensor) -> torch.Tensor:
        # Some unit salient (with a margin) on digits down to 0.3 of their contrast
        # and on uniform images; none at 0.15 of the digits' contrast or below.
        alive = sum(torch.relu(SALIENT + 1 - top(contrast(x, f))).mean() for f in (1.0, 0.5, 0.3))
        alive = (alive + torch.relu(SALIENT + 3 - top(uniform)).mean()
                 + torch.relu(SALIENT + 1 - top(4 + uniform / 2)).mean())
        quiet = sum(torch.relu(top(contrast(x, f)) - SALIENT + 0.5).mean() for f in (0.15, 0.0))
        return alive + quiet

    accuracy = train(model, x, y, steps=600, penalty=quiet_only_when_washed_out)
    print("digits_salient accuracy", accuracy)
    model.epsilon = 0.0
    save(model, "digits_salient")


def build_plain_digits(x: torch.Tensor, y: torch.Tensor) -> None:
    """The digits targets trained as they are: their bugs need no shaping."""
    from _zoo import DigitsMLP
    from digits_safesqrt import DigitsInkMLP
    from digits_softplus import DigitsSoftplusMLP

    # digits_xent's bug is its loss, digits_int8's its reference: both use the plain MLP.
    for name, make, seed in (("digits_softplus", DigitsSoftplusMLP, 7),
                             ("digits_xent", DigitsMLP, 11),
                             ("digits_safesqrt", DigitsInkMLP, 12),
                             ("digits_int8", DigitsMLP, 14)):
        torch.manual_seed(seed)
        model = make()
        print(f"{name} accuracy", train(model, x, y))
        save(model, name)


def build_digits28_crop(x: torch.Tensor, y: torch.Tensor) -> None:
    from digits28_crop import Digits28CropCNN, crop_to_ink

    torch.manual_seed(8)
    model = Digits28CropCNN()
    # Cropping has no parameters: crop once, then train the CNN on the crops.
    crops = crop_to_ink(upsample28(x))
    print("digits28_crop accuracy", train(model, crops, y, steps=200, logits=model.classify))
    save(model, "digits28_crop")


def build_chains(x: torch.Tensor, y: torch.Tensor) -> None:
    """The guided chains group: trained as a user trains, nothing shaped toward the bug."""
    from chain_std import ChainStdMLP
    from chain_xent import ChainXentCNN, loss

    torch.manual_seed(2)
    model = ChainStdMLP()
    print("chain_std accuracy", train(model, x, y, steps=300))
    save(model, "chain_std")
    torch.manual_seed(0)
    cnn = ChainXentCNN()
    print("chain_xent accuracy", train(cnn, x, y, steps=100, criterion=loss))  # its own loss
    save(cnn, "chain_xent")


def build_tokens_attention() -> None:
    from tokens_attention import TokenAttentionGRU

    tokens, labels = token_data()
    torch.manual_seed(9)
    model = TokenAttentionGRU()
    print("tokens_attention accuracy", train(model, tokens, labels, steps=200))
    save(model, "tokens_attention")


def sensor_windows(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of temperature readings in kelvin (count, SENSOR_LENGTH) and their trend:
    0 falling, 1 steady, 2 rising. Each has its own level, slope and noise."""
    from _zoo import SENSOR_LENGTH

    generator = torch.Generator().manual_seed(0)
    level = 270 + 40 * torch.rand(count, 1, generator=generator)
    labels = torch.randint(3, (count,), generator=generator)
    # A trend moves the reading 4 to 8 K over the window; noise is 0.3 to 1 K.
    slope = (labels - 1).float().unsqueeze(1) * (4 + 4 * torch.rand(count, 1, generator=generator))
    noise = (0.3 + 0.7 * torch.rand(count, 1, generator=generator)) * torch.randn(
        count, SENSOR_LENGTH, generator=generator)
    return level + slope * torch.arange(SENSOR_LENGTH).float() / SENSOR_LENGTH + noise, labels


def build_sensor() -> None:
    from sensor_fp16 import SensorTrendMLP as HalfDeployedMLP
    from sensor_layernorm import SensorTrendMLP

    windows, labels = sensor_windows(4096)
    torch.manual_seed(6)
    model = SensorTrendMLP()
    # Trained in float64, where the one-pass variance of the training windows is
    # still accurate; the bug is float32's.
    accuracy = train(model.double(), windows.double(), labels)
    print("sensor_layernorm accuracy", accuracy)
    save(model.float(), "sensor_layernorm")
    torch.manual_seed(16)
    half_deployed = HalfDeployedMLP()
    print("sensor_fp16 accuracy", train(half_deployed, windows, labels))
    save(half_deployed, "sensor_fp16")
    write_corpus("sensor", windows[:SEEDS])


if __name__ == "__main__":
    build_digits()
    build_tokens()
    digit_images, digit_labels = digits()
    for build in (build_digits_logsoftmax, build_digits_cosine, build_digits_salient,
                  build_plain_digits, build_digits28_crop, build_chains):
        build(digit_images, digit_labels)
    build_tokens_attention()
    build_sensor()
