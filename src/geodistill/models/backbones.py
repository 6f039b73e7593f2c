"""Backbones from timm, created one way everywhere.

    encoder = create_encoder("efficientnet_b0", pretrained=False)      # last feature level only
    feats = encoder(images)[-1]                                          # (B, C, H/32, W/32)

`pretrained=True` loads timm's weights from the hub; `weights="/path/file.safetensors"` loads
them from a local file instead (offline machines). Tests use pretrained=False.
"""
from __future__ import annotations

from pathlib import Path

import timm
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_encoder(name: str, pretrained: bool = False, weights: str | None = None,
                   out_indices: tuple[int, ...] = (-1,)) -> torch.nn.Module:
    """timm model with `features_only=True`; `encoder.feature_info.channels()` gives the widths."""
    kwargs = dict(features_only=True, out_indices=out_indices)
    if weights:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"backbone weights file not found: {weights}")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(weights))
        pretrained = True
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise ValueError(f"unknown timm backbone {name!r}") from None
        raise


def normalize(images_uint8: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float, ImageNet-normalised."""
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std
