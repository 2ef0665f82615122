"""Rebuild the zoo's bundled weights and seed corpora (needs scikit-learn).

    python benchmarks/zoo/build.py

Trains each model on data a package ships (scikit-learn's digits) or that is
generated here, with fixed generators, and writes weights/*.safetensors and
corpus/*/*.npy. The files are committed, so fuzzing the zoo needs neither
scikit-learn nor this script.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
          penalty: object = None) -> float:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        if penalty is not None:
            loss = loss + penalty(model, x)  # type: ignore[operator]
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def write_corpus(name: str, rows: torch.Tensor) -> None:
    folder = ZOO / "corpus" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.npy"):
        old.unlink()
    for index, row in enumerate(rows):
        np.save(folder / f"seed-{index:03d}.npy", row.numpy())


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


def build_tokens() -> None:
    from tokens_meanpool import PAD, VOCAB, TokenMeanPool

    generator = torch.Generator().manual_seed(0)
    count, length = 2048, 16
    tokens = torch.randint(1, VOCAB, (count, length), generator=generator)
    lengths = torch.randint(8, length + 1, (count,), generator=generator)
    tokens[torch.arange(length).view(1, -1) >= lengths.view(-1, 1)] = PAD
    # The label is the commonest quarter of the vocabulary among the real tokens.
    quarters = torch.nn.functional.one_hot(tokens * 4 // VOCAB, 4) * (tokens != PAD).unsqueeze(-1)
    labels = quarters.sum(1).argmax(1)
    torch.manual_seed(2)
    model = TokenMeanPool()
    print("tokens_meanpool accuracy", train(model, tokens, labels))
    save(model, "tokens_meanpool")
    write_corpus("tokens", tokens[:SEEDS])


if __name__ == "__main__":
    build_digits()
    build_tokens()
