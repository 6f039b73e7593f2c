"""Angle classes for yaw: bin centres, soft Gaussian labels and sub-bin decoding.

    bins = AngleBins(range_deg=45, bins=90, sigma_bins=2)
    loss = -(bins.soft_labels(yaw) * logits.log_softmax(1)).sum(1).mean()
    yaw_hat = bins.decode(logits)                                   # (B,) degrees
"""
from __future__ import annotations

import torch


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
