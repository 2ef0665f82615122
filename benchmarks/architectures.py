"""Real architectures, random weights, nothing downloaded: what the real-architectures
section fuzzes.

torchvision's models would be the obvious source, but the torchvision on the index
for torch 2.13 is a CUDA build whose C ops do not load beside the CPU torch. So:
ResNet-18 and a ViT from a `transformers` config (the same layers and shapes as
torchvision's resnet18 and vit; the ViT's head zero-initialised as torchvision
does it), MobileNetV3-small written here from torch.nn after torchvision's layer
table, a tiny GPT-2 from a `transformers` config, an LSTM over packed sequences
and an nn.TransformerEncoder classifier with its defaults.

Each entry gives a model and its seeds (as a target's seeds(): a tensor, a tuple
or a dict), and the BOUNDS it is fuzzed under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

#: Image side for the image models: 64, not 224, so that a 2-core machine runs a batch
#: in a fraction of a second (the networks are size-agnostic up to their pooling).
IMAGE = 64
VOCAB, LENGTH = 1000, 24


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[], nn.Module]
    seeds: Callable[[], Any]
    bounds: Any = None
    #: What it is, for the results table.
    what: str = ""


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(count: int = 16) -> torch.Tensor:
    return torch.rand(count, 3, IMAGE, IMAGE, generator=_generator())


def padded_ids(count: int = 16, pad: int = 0) -> torch.Tensor:
    ids = torch.randint(1, VOCAB, (count, LENGTH), generator=_generator(1))
    lengths = torch.randint(4, LENGTH + 1, (count, 1), generator=_generator(2))
    ids[torch.arange(LENGTH).view(1, -1) >= lengths] = pad
    return ids


# --- MobileNetV3-small (Howard et al. 2019; torchvision's mobilenet_v3_small table) -------

class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = max(8, (channels // 4 + 4) // 8 * 8)
        self.fc1, self.fc2 = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(scale))))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, kernel: int, expanded: int, cout: int, se: bool, hswish: bool,
                 stride: int) -> None:
        super().__init__()
        act: type[nn.Module] = nn.Hardswish if hswish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != cin:
            layers += [nn.Conv2d(cin, expanded, 1, bias=False), nn.BatchNorm2d(expanded), act()]
        layers += [nn.Conv2d(expanded, expanded, kernel, stride, kernel // 2, groups=expanded,
                             bias=False), nn.BatchNorm2d(expanded), act()]
        if se:
            layers.append(_SqueezeExcite(expanded))
        layers += [nn.Conv2d(expanded, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


#: (input channels, kernel, expanded, output channels, squeeze-excite, hardswish, stride).
MOBILENET_V3_SMALL = [
    (16, 3, 16, 16, True, False, 2), (16, 3, 72, 24, False, False, 2),
    (24, 3, 88, 24, False, False, 1), (24, 5, 96, 40, True, True, 2),
    (40, 5, 240, 40, True, True, 1), (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1), (48, 5, 144, 48, True, True, 1),
    (48, 5, 288, 96, True, True, 2), (96, 5, 576, 96, True, True, 1),
    (96, 5, 576, 96, True, True, 1),
]


class MobileNetV3Small(nn.Module):
    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        self.blocks = nn.Sequential(*[_InvertedResidual(*row) for row in MOBILENET_V3_SMALL])
        self.last = nn.Sequential(nn.Conv2d(96, 576, 1, bias=False), nn.BatchNorm2d(576),
                                  nn.Hardswish(), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Sequential(nn.Linear(576, 1024), nn.Hardswish(), nn.Dropout(0.2),
                                        nn.Linear(1024, classes))
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.last(self.blocks(self.stem(x))).flatten(1))


# --- sequence models ------------------------------------------------------------------------

class PackedLSTMClassifier(nn.Module):
    """Embeddings packed by length, a 2-layer LSTM, the last hidden state classified."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64, padding_idx=0)
        self.lstm = nn.LSTM(64, 128, num_layers=2, batch_first=True)
        self.head = nn.Linear(128, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(self.embed(ids), lengths, batch_first=True,
                                      enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        return self.head(hidden[-1])


class EncoderClassifier(nn.Module):
    """nn.TransformerEncoder with its defaults (nested tensors between layers, the fused
    fast path in eval mode) over a padding mask, masked mean pooling, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(64, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        padding = ids == 0
        hidden = self.encoder(self.embed(ids), src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).float()
        return self.head((hidden * keep).sum(1) / keep.sum(1).clamp(min=1))


# --- from transformers configs ------------------------------------------------------------

def resnet18() -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    return ResNetForImageClassification(ResNetConfig(
        layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512],
        embedding_size=64, num_labels=1000))


def small_vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    model = ViTForImageClassification(ViTConfig(
        image_size=IMAGE, patch_size=8, hidden_size=192, num_hidden_layers=4, num_attention_heads=3,
        intermediate_size=768, num_labels=1000))
    nn.init.zeros_(model.classifier.weight)  # as torchvision's vit_b_16 starts
    nn.init.zeros_(model.classifier.bias)
    return model


def tiny_gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=128, n_layer=2,
                                      n_head=4, pad_token_id=0, bos_token_id=1,
                                      eos_token_id=2))


def _seeded(build: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def seeded() -> nn.Module:
        torch.manual_seed(0)
        return build()
    return seeded


ARCHITECTURES = [
    Architecture("resnet18", _seeded(resnet18), lambda: {"pixel_values": images()}, (0.0, 1.0),
                 "transformers ResNet-18 (basic blocks 2-2-2-2), 1,000 classes, 3x64x64"),
    Architecture("mobilenet_v3_small", _seeded(MobileNetV3Small), images, (0.0, 1.0),
                 "MobileNetV3-small from torch.nn (torchvision's table), 1,000 classes, 3x64x64"),
    Architecture("vit", _seeded(small_vit), lambda: {"pixel_values": images()}, (0.0, 1.0),
                 "transformers ViT, 4 layers of 192, patch 8, zero-initialised head, 3x64x64"),
    Architecture("gpt2", _seeded(tiny_gpt2),
                 lambda: {"input_ids": padded_ids(), "attention_mask": (padded_ids() != 0).long()},
                 None, "transformers GPT-2, 2 layers of 128, 1,000 tokens, 24 positions"),
    Architecture("lstm", _seeded(PackedLSTMClassifier), padded_ids, (0, VOCAB - 1),
                 "embedding + 2-layer LSTM over packed sequences, 24 tokens"),
    Architecture("transformer_encoder", _seeded(EncoderClassifier), padded_ids, (0, VOCAB - 1),
                 "nn.TransformerEncoder (defaults: nested tensors, fast path), 2 layers of 64"),
]
