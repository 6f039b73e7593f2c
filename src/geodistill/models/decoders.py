"""Multi-level feature extractors of G2SWeakly: (features, confidence) pairs, coarse to fine.

    encoder = UnetEncoder("vgg16", channels=[256, 64, 16])   # or DptEncoder(..., image_size=(H, W))
    levels = encoder(images)                                  # images: (B, H, W, 3) uint8 RGB
    feats, conf = levels[0]                                   # (B, 256, H/8, W/8), (B, 1, H/8, W/8)

Level k is at stride 8 / 2^k of the input image, so H and W must be multiples of 8 (and of the
ViT patch size for DptEncoder); the caller resizes images to fit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geodistill.models.backbones import create_timm, normalize

STRIDES = (8, 4, 2)


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class _Levels(nn.Module):
    """Shared output contract: `channels[k]` features at `strides[k]`, each with a confidence head."""

    def __init__(self, channels: list[int]):
        super().__init__()
        if not 1 <= len(channels) <= len(STRIDES) or any(c <= 0 for c in channels):
            raise ValueError(f"channels must be 1..{len(STRIDES)} positive widths (strides "
                             f"{list(STRIDES)}); got {list(channels)}")
        self.channels = list(channels)
        self.strides = list(STRIDES[:len(channels)])
        self.confidence = nn.ModuleList(nn.Conv2d(c, 1, 1) for c in channels)

    def _with_confidence(self, feats: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(f, torch.sigmoid(head(f))) for f, head in zip(feats, self.confidence)]  # (B, 1, h, w)


class UnetEncoder(_Levels):
    """A timm CNN cut at stride 8 plus a U-Net decoder that climbs back through its stride-4 and
    stride-2 skip features (the deepest backbone feature at each stride)."""

    def __init__(self, backbone: str, channels: list[int], pretrained: bool = False,
                 weights: str | None = None):
        super().__init__(channels)
        self.net = create_timm(backbone, pretrained, weights, num_classes=0)
        by_stride = {f["reduction"]: i for i, f in enumerate(self.net.feature_info)}
        missing = [s for s in self.strides if s not in by_stride]
        if missing:
            raise ValueError(f"backbone {backbone!r} has feature strides {sorted(by_stride)}, "
                             f"none at {missing}; pass fewer channels")
        self.indices = [by_stride[s] for s in reversed(self.strides)]  # fine to coarse, as timm lists
        skip_chs = [self.net.feature_info[i]["num_chs"] for i in self.indices[::-1]]
        self.net.prune_intermediate_layers(indices=self.indices, prune_head=True)
        self.decoder = nn.ModuleList([conv_bn_relu(skip_chs[0], channels[0])])
        self.decoder.extend(nn.Sequential(conv_bn_relu(prev + skip, c), conv_bn_relu(c, c))
                            for prev, skip, c in zip(channels, skip_chs[1:], channels[1:]))

    def forward(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        skips = self.net.forward_intermediates(normalize(images), indices=self.indices,
                                               intermediates_only=True)[::-1]  # coarse to fine
        x = self.decoder[0](skips[0])  # (B, C0, H/8, W/8)
        feats = [x]
        for skip, block in zip(skips[1:], self.decoder[1:]):
            x = block(torch.cat([resize(x, skip.shape[-2:]), skip], dim=1))  # (B, Ck, H/s, W/s)
            feats.append(x)
        return self._with_confidence(feats)


class _ResidualConvUnit(nn.Module):
    """DPT's residual unit: x + conv(relu(conv(relu(x))))."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Fusion(nn.Module):
    """DPT fusion stage: refine a reassembled block map, add the coarser stage (projected to this
    width and upsampled), refine again."""

    def __init__(self, c: int, coarser: int | None):
        super().__init__()
        self.refine_skip, self.refine = _ResidualConvUnit(c), _ResidualConvUnit(c)
        self.project = nn.Conv2d(coarser, c, 1) if coarser else None

    def forward(self, x: torch.Tensor, coarser: torch.Tensor | None) -> torch.Tensor:
        x = self.refine_skip(x)
        if self.project is not None:
            x = x + resize(self.project(coarser), x.shape[-2:])
        return self.refine(x)


class DptEncoder(_Levels):
    """A timm ViT (frozen unless freeze=False) whose `blocks` token maps are reassembled into a
    pyramid, deepest block coarsest, ending at the finest output stride (for 4 blocks and 3 levels:
    strides 16, 8, 4, 2), then fused coarse to fine; the last len(channels) stages are the levels.
    patch_size overrides the backbone's (timm resamples pretrained patch-embedding weights)."""

    def __init__(self, backbone: str, blocks: list[int], channels: list[int],
                 image_size: tuple[int, int], pretrained: bool = False, weights: str | None = None,
                 freeze: bool = True, patch_size: int | None = None):
        super().__init__(channels)
        self.image_size, self.freeze = tuple(image_size), freeze
        size = {} if patch_size is None else {"patch_size": patch_size}  # timm resamples pretrained patch weights
        self.net = create_timm(backbone, pretrained, weights, num_classes=0, img_size=self.image_size, **size)
        patch = self.net.patch_embed.patch_size[0]
        if any(n % patch or n % 8 for n in self.image_size):
            raise ValueError(f"image_size must be multiples of 8 and of the patch size {patch}; "
                             f"got {self.image_size}")
        depth = len(self.net.blocks)
        self.indices = sorted(set(blocks))
        if len(self.indices) < len(channels) or not 0 <= self.indices[0] <= self.indices[-1] < depth:
            raise ValueError(f"blocks must be >= {len(channels)} distinct indices in 0..{depth - 1}; "
                             f"got {list(blocks)}")
        self.net.prune_intermediate_layers(indices=self.indices, prune_head=True)
        if freeze:
            self.net.requires_grad_(False)
            self.net.eval()
        extra = len(self.indices) - len(channels)  # stages coarser than stride 8, at channels[0] wide
        widths = [channels[0]] * extra + list(channels)  # deepest block first
        finest = self.strides[-1]
        self.pyramid_strides = [finest << (len(widths) - 1 - j) for j in range(len(widths))]
        self.reassemble = nn.ModuleList(nn.Conv2d(self.net.embed_dim, w, 1) for w in widths)
        self.fusions = nn.ModuleList(_Fusion(w, prev) for w, prev in zip(widths, [None, *widths]))

    def train(self, mode: bool = True) -> DptEncoder:
        super().train(mode)
        if self.freeze:
            self.net.eval()
        return self

    def forward(self, images: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        h, w = images.shape[1:3]
        if (h, w) != self.image_size:
            raise ValueError(f"DptEncoder was built for {self.image_size} images; got {(h, w)}")
        tokens = self.net.forward_intermediates(normalize(images), indices=self.indices, norm=True,
                                                intermediates_only=True)[::-1]  # (B, D, H/p, W/p)
        x, stages = None, []
        for t, s, reassemble, fusion in zip(tokens, self.pyramid_strides, self.reassemble, self.fusions):
            t = resize(reassemble(t), (max(1, h // s), max(1, w // s)))  # (B, Cj, H/s, W/s)
            x = fusion(t, x)
            stages.append(x)
        return self._with_confidence(stages[-len(self.channels):])
