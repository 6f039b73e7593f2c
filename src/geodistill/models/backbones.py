"""Backbones from timm, created one way everywhere.

    encoder = Encoder("efficientnet_b0", levels=(1,))        # pruned after its stride-4 stage
    feats = encoder(images)[-1]                               # (B, 24, H/4, W/4)

`pretrained=True` loads timm's weights from the hub; `weights="/path/file.safetensors"` loads
them from a local file instead (offline machines). Tests use pretrained=False.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Encoder(nn.Module):
    """A timm backbone cut after its deepest requested feature level (timm's feature_info order,
    negative = from the end); forward returns those levels' maps, shallowest first."""

    def __init__(self, name: str, levels: tuple[int, ...] = (-1,), pretrained: bool = False,
                 weights: str | None = None, key: str = "feature levels"):
        super().__init__()
        self.net = create_timm(name, pretrained, weights, num_classes=0)
        n = len(self.net.feature_info)
        if any(not -n <= k < n for k in levels):
            shown = levels[0] if len(levels) == 1 else list(levels)
            raise ValueError(f"{key} {shown}: backbone {name!r} has feature levels 0..{n - 1} (or -{n}..-1)")
        self.levels = sorted(k % n for k in levels)
        self.channels = [self.net.feature_info[k]["num_chs"] for k in self.levels]
        self.reductions = [self.net.feature_info[k]["reduction"] for k in self.levels]
        self.net.prune_intermediate_layers(indices=self.levels, prune_head=True)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(images, indices=self.levels, intermediates_only=True)


def create_timm(name: str, pretrained: bool, weights: str | None, **kwargs) -> torch.nn.Module:
    """timm.create_model with weights from the hub (pretrained) or a local file (weights); an
    unknown name is a ValueError that names it."""
    if weights:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"backbone weights file not found: {weights}")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(weights))
        pretrained = True
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"unknown timm backbone {name!r} (timm.list_models() lists the names)") from None
        raise


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float, ImageNet-normalised."""
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
