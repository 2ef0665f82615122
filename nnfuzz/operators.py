"""Mutation operators: one mutant per row of one input, for each kind of input.

Continuous operators move an input by noise at several scales, shift or
stretch its values (brightness, contrast), push parts of it to a bound, splice
it with another input, or take a signed-gradient step. Token operators
replace, insert and delete values, padding the way the seeds pad. Flags are
flipped. Every kind also jumps to its structural edges, where real bugs
cluster: an all-zero or constant input, every value at a bound; an
all-padding, one-token or full-length sequence; flags all on or all off.

Each operator is a pure function ``(x (B, ...), field, rng) -> mutant`` of the
same shape; which row gets which operator, and clipping the mutants into the
domain afterwards, is the Mutator's job (nnfuzz.mutation).
"""

from __future__ import annotations

from typing import Callable

import torch

from nnfuzz.domain import CONTINUOUS, FLAGS, TOKENS, Field

#: Noise scales, as fractions of the bounds' width: small steps refine, large
#: ones jump; no single scale suits every model.
NOISE_SCALES = (0.003, 0.03, 0.1, 0.3)
#: Share of the elements a sparse operator touches.
DENSITIES = (1.0, 0.1, 0.01)
#: Share of the elements pushed to a bound at once by ``saturate``: the whole
#: input at a bound is the ``edge`` operator's job.
SATURATION_DENSITIES = (0.3, 0.1, 0.01)
#: Share of the flags one flip changes (besides one flag it always flips).
FLIP_DENSITIES = (0.5, 0.1, 0.0)
#: Largest brightness offset, as a fraction of the width.
MAX_OFFSET = 0.3
#: Contrast factors are drawn log-uniformly in [exp(-MAX_LOG_CONTRAST), exp(+...)].
MAX_LOG_CONTRAST = 0.7
#: Longest run of tokens one insertion or deletion moves.
MAX_TOKEN_RUN = 4


# --- float operators: (x (B, ...), field, rng) -> mutant of the same shape ---------

def _uniform(shape: tuple[int, ...], rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=rng, device=rng.device).to(like.device, like.dtype)


def _per_example(values: tuple[float, ...], x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """One of ``values`` for each example, shaped to broadcast against x."""
    picks = torch.randint(len(values), (x.shape[0],), generator=rng, device=rng.device)
    return table_of(values, rng.device)[picks].to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))


_TABLES: dict[tuple[tuple[float, ...], torch.device, torch.dtype], torch.Tensor] = {}


def table_of(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """``torch.tensor(values, device=device)``, made once: the operators' constants (scales,
    densities) were made anew for every batch. Nobody writes to it."""
    key = (values, torch.device(device), torch.get_default_dtype())
    if key not in _TABLES:
        _TABLES[key] = torch.tensor(values, device=device)
    return _TABLES[key]


def _sparse_mask(x: torch.Tensor, rng: torch.Generator,
                 densities: tuple[float, ...] = DENSITIES) -> torch.Tensor:
    density = _per_example(densities, x, rng)
    return _uniform(tuple(x.shape), rng, x) < density


def add_noise(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    scale = _per_example(NOISE_SCALES, x, rng) * field.width
    noise = torch.randn(tuple(x.shape), generator=rng, device=rng.device).to(x.device, x.dtype)
    return x + noise * scale * _sparse_mask(x, rng)


def shift_brightness(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    offset = (_uniform((x.shape[0],), rng, x) * 2 - 1) * MAX_OFFSET * field.width
    return x + offset.view(-1, *([1] * (x.dim() - 1)))


def stretch_contrast(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    log_factor = (_uniform((x.shape[0],), rng, x) * 2 - 1) * MAX_LOG_CONTRAST
    factor = log_factor.exp().view(-1, *([1] * (x.dim() - 1)))
    mean = x.reshape(x.shape[0], -1).mean(1).view_as(factor)
    return mean + (x - mean) * factor


def saturate(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    high = _uniform((x.shape[0],), rng, x).view(-1, *([1] * (x.dim() - 1))) < 0.5
    bound = torch.where(high, field.high, field.low).to(x.dtype)
    return torch.where(_sparse_mask(x, rng, SATURATION_DENSITIES), bound, x)


def crossover(x: torch.Tensor, partner: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Splice two inputs: each element from one or the other."""
    return torch.where(_uniform(tuple(x.shape), rng, x) < 0.5, x, partner)


def guided_step(x: torch.Tensor, direction: torch.Tensor, field: Field,
                scales: torch.Tensor) -> torch.Tensor:
    """A signed-gradient step (as in FGSM) of each example, at its scale (B,) of the width."""
    scale = (scales * field.width).to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return x + direction.sign().to(x.dtype) * scale


VALUE_OPERATORS = {
    "noise": add_noise,
    "brightness": shift_brightness,
    "contrast": stretch_contrast,
    "saturate": saturate,
}


# --- token operators: along the last dimension, shape kept -------------------------

def _positions(x: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A position (B, 1) per example along the last dim, and the index row (1, L)."""
    flat = x.reshape(x.shape[0], -1)
    length = flat.shape[1]
    where = torch.randint(length, (x.shape[0], 1), generator=rng, device=rng.device).to(x.device)
    return where, torch.arange(length, device=x.device).view(1, -1)


def _random_tokens(shape: tuple[int, ...], field: Field, rng: torch.Generator,
                   like: torch.Tensor) -> torch.Tensor:
    values = torch.randint(int(field.low), int(field.high) + 1, shape, generator=rng,
                           device=rng.device)
    return values.to(like.device, like.dtype)


def replace_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1).clone()
    where, _ = _positions(x, rng)
    flat.scatter_(1, where, _random_tokens(tuple(where.shape), field, rng, x))
    return flat.view_as(x)


def insert_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Insert a run of random tokens; what is pushed past the end is dropped."""
    flat = x.reshape(x.shape[0], -1)
    where, index = _positions(x, rng)
    run = torch.randint(1, MAX_TOKEN_RUN + 1, (x.shape[0], 1), generator=rng,
                        device=rng.device).to(x.device)
    source = torch.where(index < where, index, (index - run).clamp(min=0))
    shifted = flat.gather(1, source)
    fresh = _random_tokens(tuple(flat.shape), field, rng, x)
    inserted = (index >= where) & (index < where + run)
    return torch.where(inserted, fresh, shifted).view_as(x)


def delete_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Delete a run of tokens; the end is filled with padding, as the seeds pad."""
    flat = x.reshape(x.shape[0], -1)
    length = flat.shape[1]
    where, index = _positions(x, rng)
    run = torch.randint(1, MAX_TOKEN_RUN + 1, (x.shape[0], 1), generator=rng,
                        device=rng.device).to(x.device)
    source = torch.where(index < where, index, index + run)
    shifted = flat.gather(1, source.clamp(max=length - 1))
    if field.pad is not None:
        filler = torch.full_like(flat, field.pad)
    else:
        filler = _random_tokens(tuple(flat.shape), field, rng, x)
    return torch.where(source >= length, filler, shifted).view_as(x)


TOKEN_OPERATORS = {
    "replace": replace_tokens,
    "insert": insert_tokens,
    "delete": delete_tokens,
}


# --- edges: whole inputs at the structural extremes ------------------------------

def _constant(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value (B,) per example, filling the example's whole shape."""
    return values.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1))).expand_as(like).clone()


def edge_values(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """A constant input: all zero (or the bound nearest zero), all low, all high, a random
    constant, or the example's own mean (silence, a blank image, a flat signal)."""
    size, device = x.shape[0], x.device
    zero = min(max(0.0, field.low), field.high)
    # On the inputs' device: a copy to the host here was three synchronisations per batch on a
    # GPU. The constants are float32 (torch.full's default), then all five are float64.
    choices = torch.stack((
        torch.full((size,), zero, device=device), torch.full((size,), field.low, device=device),
        torch.full((size,), field.high, device=device),
        field.low + field.width * torch.rand(size, generator=rng, device=rng.device).to(device),
        x.reshape(size, -1).double().mean(1) if x[0].numel() else torch.zeros(size, device=device),
    ), 1).double()  # (B, 5)
    variant = torch.randint(choices.shape[1], (size,), generator=rng, device=rng.device).to(device)
    return _constant(choices[torch.arange(size, device=device), variant], x)


def _non_pad_tokens(shape: tuple[int, ...], field: Field, rng: torch.Generator,
                    like: torch.Tensor) -> torch.Tensor:
    tokens = _random_tokens(shape, field, rng, like)
    if field.pad is None or field.high <= field.low:
        return tokens
    span = int(field.high) - int(field.low) + 1
    shifted = (tokens - int(field.low) + 1) % span + int(field.low)
    return torch.where(tokens == field.pad, shifted, tokens)


def edge_tokens(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """An all-padding sequence, a single token, a full-length one, or one token repeated."""
    flat = x.reshape(x.shape[0], -1)
    pad = field.pad if field.pad is not None else int(field.low)
    index = torch.arange(flat.shape[1], device=x.device).view(1, -1)
    fresh = _non_pad_tokens(tuple(flat.shape), field, rng, x)
    first = torch.where(flat[:, :1] == pad, fresh[:, :1], flat[:, :1])
    choices = torch.stack((
        torch.full_like(flat, pad),
        torch.where(index == 0, first, pad),
        torch.where(flat == pad, fresh, flat) if field.pad is not None else fresh,
        fresh[:, :1].expand_as(flat),
    ), 0)  # (4, B, L)
    variant = torch.randint(choices.shape[0], (flat.shape[0],), generator=rng,
                            device=rng.device).to(x.device)
    return choices[variant, torch.arange(flat.shape[0], device=x.device)].view_as(x)


def flip_flags(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Flip one flag, and a share of the others."""
    flat = x.reshape(x.shape[0], -1)
    where, index = _positions(x, rng)
    flips = (index == where) | _sparse_mask(flat.float(), rng, FLIP_DENSITIES)
    return torch.where(flips, (flat == 0).to(x.dtype), flat).view_as(x)


def edge_flags(x: torch.Tensor, field: Field, rng: torch.Generator) -> torch.Tensor:
    """Every flag on, or every flag off."""
    on = torch.randint(2, (x.shape[0],), generator=rng, device=rng.device)
    return _constant(on, x)


#: The operators of each kind by name; crossover and guided steps are the Mutator's own.
KIND_OPERATORS: dict[str, dict[str, Callable[[torch.Tensor, Field, torch.Generator], torch.Tensor]]] = {
    CONTINUOUS: {**VALUE_OPERATORS, "edge": edge_values},
    TOKENS: {**TOKEN_OPERATORS, "edge": edge_tokens},
    FLAGS: {"flip": flip_flags, "edge": edge_flags},
}
