"""The one interface every localization method implements, so training, evaluation, localize
and distillation never special-case a method.

    model = build_localizer(params.baselines["ccvpe"], camera_height_m=2.0)
    loss = model.loss(Batch(pano, sat, sat_mpp, gt_px, yaw_deg))   # a scalar to minimise
    pred = model.predict(pano, sat, sat_mpp)                        # Prediction, below
    row, col = locate(pred.heatmap)[0]                              # sub-cell peak of a score map
    maps = model.score_maps(pano, sat, sat_mpp, column_mask)        # what distillation matches
    pred = model.predict(image, sat, sat_mpp, camera=camera)        # a pinhole image (KITTI), below
    feat = model.ground_features(pano)                              # (B, C, h, w) panorama features

A method also carries `train_yaw_deg`: training panoramas are turned by a random yaw in
[-it, it) (0 = never). A weakly supervised method's loss ignores `gt_px`. Wherever a
`column_mask` (B, W) is taken (0 = occluded panorama column), the method keeps the occluded
columns out of its ground features, so its scores use the visible field of view only.
Wherever a `camera` (B, 5) is taken, the ground view is a pinhole image, not a panorama: its
intrinsics fx, fy, cx, cy in input pixels and its heading (degrees clockwise from north, the
turn already applied); None means an equirectangular panorama with north at its centre column.
A method that reads panoramas only (CCVPE) refuses a camera.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from geodistill.config import CCVPEParams, G2SParams


@dataclass
class Batch:
    pano: torch.Tensor        # (B, H, W, 3) uint8, turned by yaw_deg
    sat: torch.Tensor         # (B, S, S, 3) uint8
    sat_mpp: torch.Tensor     # (B,) metres per satellite input pixel
    gt_px: torch.Tensor       # (B, 2) true camera (row, col) in satellite input pixels (centres at integers)
    yaw_deg: torch.Tensor     # (B,) turn applied to each panorama (roll_panorama convention)
    column_mask: torch.Tensor | None = None   # (B, W) 1 = visible panorama column, or None (all)
    camera: torch.Tensor | None = None        # (B, 5) pinhole fx, fy, cx, cy, heading_deg, or None (panorama)

    def rows(self, rows: slice) -> "Batch":
        """The samples `rows` of the batch (a distributed rank's share)."""
        pick = lambda t: None if t is None else t[rows]
        return Batch(self.pano[rows], self.sat[rows], self.sat_mpp[rows], self.gt_px[rows], self.yaw_deg[rows],
                     pick(self.column_mask), pick(self.camera))


@dataclass
class Prediction:
    pixel: torch.Tensor               # (B, 2) camera (row, col) in satellite input pixels
    yaw_deg: torch.Tensor | None      # (B,) the panorama's turn, for methods that predict it
    heatmap: torch.Tensor             # (B, h, w) scores over candidate positions (higher = likelier)
    extent: tuple[float, float, float, float]   # (top, left, bottom, right) input px the heatmap covers


class Localizer(Protocol):
    train_yaw_deg: float

    def loss(self, batch: Batch) -> torch.Tensor: ...

    def predict(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
                column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None) -> Prediction: ...

    def score_maps(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
                   column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None
                   ) -> list[torch.Tensor]:
        """Per level (B, ...) cosine scores over the candidate poses; a softmax over all but
        the batch dimension makes each a distribution (GeoDistill's teacher and student maps)."""

    def ground_features(self, pano: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) the panorama's coarsest ground features (max-activation occlusion)."""


def gaussian_target(centre_px: torch.Tensor, size: int, sigma_px: float) -> torch.Tensor:
    """(B, 2) (row, col) pixel centres -> (B, size, size) Gaussians of width sigma_px, each summing to 1."""
    grid = torch.arange(size, dtype=centre_px.dtype, device=centre_px.device)
    dr = (grid[None, :] - centre_px[:, :1]).square()                   # (B, size)
    dc = (grid[None, :] - centre_px[:, 1:]).square()                   # (B, size)
    g = torch.exp(-(dr[:, :, None] + dc[:, None, :]) / (2 * sigma_px ** 2))   # (B, size, size)
    return g / g.sum((1, 2), keepdim=True)


def locate(scores: torch.Tensor) -> torch.Tensor:
    """(B, P, P) score maps -> (B, 2) sub-cell peak (row, col) in map cells: the argmax refined
    by a parabola through it and its two neighbours along each axis (exact for a quadratic peak;
    at the border, or where the fit is not a maximum, the argmax is kept on that axis)."""
    B, P, Q = scores.shape
    flat = scores.flatten(1).argmax(dim=1)
    r, c = flat // Q, flat % Q
    peak = torch.stack([r, c], dim=1).to(scores.dtype)
    b = torch.arange(B, device=scores.device)
    for axis, (n, here) in enumerate([(P, r), (Q, c)]):
        lo, hi = (here - 1).clamp(min=0), (here + 1).clamp(max=n - 1)
        at = (lambda k: scores[b, k, c]) if axis == 0 else (lambda k: scores[b, r, k])
        s0, s1, s2 = at(lo), at(here), at(hi)
        curvature = s0 - 2 * s1 + s2
        ok = (here > 0) & (here < n - 1) & (curvature < 0)
        shift = torch.where(ok, 0.5 * (s0 - s2) / torch.where(ok, curvature, -1.0), 0.0)
        peak[:, axis] += shift.clamp(-0.5, 0.5)
    return peak


def input_to_tile_pixel(xy: torch.Tensor, input_px: int, tile_px: torch.Tensor | int) -> torch.Tensor:
    """Satellite input pixel coordinates -> pixel coordinates of the tile as stored (resized from
    tile_px to input_px; pixel centres at integers on both sides)."""
    scale = torch.as_tensor(tile_px, dtype=xy.dtype, device=xy.device).reshape(-1, 1) / input_px
    return (xy + 0.5) * scale - 0.5


def predict_tile_pixels(model: Localizer, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
                        tile_px: torch.Tensor, camera: torch.Tensor | None = None) -> tuple[torch.Tensor, Prediction]:
    """Camera position (B, 2) (row, col) in pixels of the tiles as stored (tile_px (B,) sides),
    and the model's Prediction (in satellite input pixels)."""
    pred = model.predict(pano, sat, sat_mpp, camera=camera)
    return input_to_tile_pixel(pred.pixel, sat.shape[1], tile_px), pred


def build_localizer(p: G2SParams | CCVPEParams, camera_height_m: float) -> nn.Module:
    """A freshly initialised model of the method `p` describes (its `kind`)."""
    if isinstance(p, CCVPEParams):
        from geodistill.models.ccvpe import CCVPE
        return CCVPE(p, camera_height_m)
    from geodistill.models.g2s import G2SWeakly
    return G2SWeakly(p, camera_height_m)
