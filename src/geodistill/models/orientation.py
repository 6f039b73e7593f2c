"""Orientation networks: yaw of a panorama from its BEV and the satellite image
(docs/paper-reference.md#orientation-network).

Both return one logit per angle bin and train with soft Gaussian labels over the bins:

- ConcatOrientationNet, the authors' head: two encoders' last stride-32 features concatenated ->
  conv3x3 + BN + ReLU -> MLP. It has to discover the cross-view comparison by itself, which it
  does from pretrained weights on VIGOR but not from scratch within a CPU budget.
- CorrelationOrientationNet, this project's: the BEV features are rotated to every bin centre
  and slid over the satellite features at the same metres per cell; a bin's logit is its best
  match over positions. The comparison is built in, so it learns from scratch in minutes.

    model = build_orientation_net(params.orientation, bev_px=64)
    logits = model(sat, bev)                  # (B, S, S, 3), (B, s, s, 3) uint8 -> (B, bins)
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from geodistill.config import ConcatHead, CorrelateHead, OrientationParams
from geodistill.geometry import bev_disc, rotate_bev_features
from geodistill.models.angles import AngleBins
from geodistill.models.backbones import Encoder, normalize


class ConcatOrientationNet(nn.Module):
    def __init__(self, backbone: str, input_size: int, bins: int, head: ConcatHead,
                 pretrained: bool = False, weights: str | None = None):
        super().__init__()
        self.sat_encoder = Encoder(backbone, (-1,), pretrained, weights)
        self.bev_encoder = Encoder(backbone, (-1,), pretrained, weights)
        channels, reduction = self.sat_encoder.channels[-1], self.sat_encoder.reductions[-1]
        cells = (input_size // reduction) ** 2
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, 256, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(256), nn.ReLU(inplace=True))
        layers, width = [], 256 * cells
        for h in head.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.head = nn.Sequential(*layers, nn.Linear(width, bins))

    def forward(self, sat: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 satellite and BEV images -> (B, bins) logits."""
        fs = self.sat_encoder(normalize(sat))[-1]             # (B, C, S/32, S/32)
        fb = self.bev_encoder(normalize(bev))[-1]             # (B, C, S/32, S/32)
        x = self.fuse(torch.cat([fs, fb], dim=1))             # (B, 256, S/32, S/32)
        return self.head(x.flatten(1))                        # (B, bins)


class CorrelationOrientationNet(nn.Module):
    """Logit of bin k = scale * max over positions of the confidence-weighted mean cosine between
    the BEV features rotated by -angle_k (undoing a yaw of angle_k) and the satellite features."""

    def __init__(self, backbone: str, head: CorrelateHead, bev_px: int, angles_deg: torch.Tensor,
                 pretrained: bool = False, weights: str | None = None):
        super().__init__()
        self.sat_encoder = Encoder(backbone, (head.level,), pretrained, weights, "head.level")
        self.bev_encoder = Encoder(backbone, (head.level,), pretrained, weights, "head.level")
        width, stride = self.sat_encoder.channels[-1], self.sat_encoder.reductions[-1]
        if bev_px % stride:
            raise ValueError(f"the BEV input ({bev_px} px = bev extent / head.input_mpp) must be "
                             f"a multiple of the encoder stride {stride} at head.level {head.level}")
        self.sat_proj = nn.Conv2d(width, head.channels, 1)
        self.bev_proj = nn.Conv2d(width, head.channels, 1)
        self.bev_confidence = nn.Conv2d(width, 1, 1)
        self.log_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        disc = torch.from_numpy(bev_disc(bev_px // stride)).float()             # (h, h) about the camera cell
        self.register_buffer("disc", disc[None, None], persistent=False)        # (1, 1, h, h)
        self.register_buffer("angles", angles_deg.float(), persistent=False)    # (K,)

    def forward(self, sat: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) satellite and (B, s, s, 3) BEV uint8 images at one scale -> (B, K) logits."""
        fs = F.normalize(self.sat_proj(self.sat_encoder(normalize(sat))[-1]), dim=1)   # (B, D, H, H)
        raw = self.bev_encoder(normalize(bev))[-1]                                     # (B, C, h, h)
        fb = F.normalize(self.bev_proj(raw), dim=1)                                    # (B, D, h, h)
        weight = torch.sigmoid(self.bev_confidence(raw)) * self.disc                  # (B, 1, h, h)
        return self.log_scale.exp() * rotation_scores(fs, fb * weight, weight, self.angles)


def rotation_scores(sat: torch.Tensor, bev: torch.Tensor, weight: torch.Tensor,
                    angles_deg: torch.Tensor) -> torch.Tensor:
    """Best weighted cosine over positions for every candidate yaw.

    sat: (B, D, H, W) satellite features with unit cells; bev: (B, D, h, w) BEV features already
    multiplied by their weights (B, 1, h, w), camera at cell (h/2, w/2); angles_deg: (K,)
    candidate yaws, each undone by rotating the BEV by -yaw. For the rotated t = weight * bev
    and weight w, the score at a position is the cosine between w * sat and t there,
        sum(w * t . sat) / (|t| * sqrt(sum(w^2))),
    a normalised cross-correlation in which interpolation blur of the rotated template cancels.
    Returns (B, K): the best score over the (H-h+1) x (W-w+1) positions where the BEV lies
    inside the satellite map.
    """
    B, D, h, w = bev.shape
    K = angles_deg.numel()
    stacked = torch.cat([bev, weight], dim=1).repeat_interleave(K, dim=0)       # (B*K, D+1, h, w)
    rotated = rotate_bev_features(stacked, (-angles_deg).repeat(B))              # (B*K, D+1, h, w)
    t, wk = rotated[:, :D], rotated[:, D:]                                       # (B*K, D, h, w), (B*K, 1, h, w)
    norm = t.square().sum(dim=(1, 2, 3)).sqrt() * wk.square().sum(dim=(1, 2, 3)).sqrt()   # (B*K,)
    H, W = sat.shape[-2:]
    corr = F.conv2d(sat.reshape(1, B * D, H, W), t * wk, groups=B)              # (1, B*K, H-h+1, W-w+1)
    best = corr.reshape(B, K, -1).amax(dim=2)                                    # (B, K)
    return best / norm.reshape(B, K).clamp_min(1e-6)


def build_orientation_net(p: OrientationParams, bev_px: int) -> nn.Module:
    """The orientation network the params ask for; bev_px is the BEV input side (pixels)."""
    if isinstance(p.head, ConcatHead):
        return ConcatOrientationNet(p.backbone, p.input_size, p.bins, p.head, p.pretrained, p.weights)
    bins = AngleBins(p.range_deg, p.bins, p.label_sigma_bins)
    return CorrelationOrientationNet(p.backbone, p.head, bev_px, bins.centres, p.pretrained, p.weights)
