"""Orientation network: yaw of a panorama from its BEV and the satellite image (REFERENCE.md §3).

Two separate encoders (satellite, BEV) -> last stride-32 features, concatenated -> conv3x3 + BN
+ ReLU -> MLP -> one logit per angle bin. Trained with soft Gaussian labels over the bins.
"""
from __future__ import annotations

import torch
from torch import nn

from geodistill.models.backbones import create_encoder, normalize


class OrientationNet(nn.Module):
    def __init__(self, backbone: str, input_size: int, bins: int, hidden: list[int],
                 pretrained: bool = False, weights: str | None = None):
        super().__init__()
        self.sat_encoder = create_encoder(backbone, pretrained, weights)
        self.bev_encoder = create_encoder(backbone, pretrained, weights)
        channels = self.sat_encoder.feature_info.channels()[-1]
        reduction = self.sat_encoder.feature_info.reduction()[-1]
        cells = (input_size // reduction) ** 2
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, 256, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(256), nn.ReLU(inplace=True))
        layers, width = [], 256 * cells
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.head = nn.Sequential(*layers, nn.Linear(width, bins))

    def forward(self, sat: torch.Tensor, bev: torch.Tensor) -> torch.Tensor:
        """(B, S, S, 3) uint8 satellite and BEV images -> (B, bins) logits."""
        fs = self.sat_encoder(normalize(sat))[-1]             # (B, C, S/32, S/32)
        fb = self.bev_encoder(normalize(bev))[-1]             # (B, C, S/32, S/32)
        x = self.fuse(torch.cat([fs, fb], dim=1))             # (B, 256, S/32, S/32)
        return self.head(x.flatten(1))                        # (B, bins)


class AngleBins:
    """Yaw <-> bins over [-range, range) degrees; circular when the range is the full circle."""

    def __init__(self, range_deg: float, bins: int, sigma_bins: float):
        self.range, self.bins, self.sigma = float(range_deg), bins, sigma_bins
        self.width = 2 * self.range / bins
        self.centres = -self.range + (torch.arange(bins, dtype=torch.float64) + 0.5) * self.width
        self.circular = self.range >= 180.0

    def _delta(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = a - b
        return (d + 180.0) % 360.0 - 180.0 if self.circular else d

    def soft_labels(self, yaw_deg: torch.Tensor) -> torch.Tensor:
        """(B,) degrees -> (B, bins) Gaussian targets (sigma in bins), each summing to 1."""
        d = self._delta(self.centres[None, :], yaw_deg.double()[:, None]) / self.width
        t = torch.exp(-0.5 * (d / self.sigma) ** 2)
        return (t / t.sum(dim=1, keepdim=True)).float()

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, bins) logits -> (B,) degrees: the argmax bin refined by a parabola through the
        log-probabilities of it and its two neighbours (exact for Gaussian-shaped outputs)."""
        logp = logits.double().log_softmax(dim=1)
        k = logp.argmax(dim=1)
        left, right = k - 1, k + 1
        if self.circular:
            left, right = left % self.bins, right % self.bins
        inside = (left >= 0) & (right < self.bins)
        lc, rc = left.clamp(0, self.bins - 1), right.clamp(0, self.bins - 1)
        l0, l1, l2 = logp.gather(1, lc[:, None])[:, 0], logp.gather(1, k[:, None])[:, 0], logp.gather(1, rc[:, None])[:, 0]
        curvature = l0 - 2 * l1 + l2
        offset = torch.where(inside & (curvature < 0), 0.5 * (l0 - l2) / curvature.clamp(max=-1e-12), 0.0)
        yaw = self.centres[k] + offset.clamp(-0.5, 0.5) * self.width
        return self._delta(yaw, torch.zeros_like(yaw)) if self.circular else yaw
