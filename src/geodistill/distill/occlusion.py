"""Occlusions of the student's panorama (GeoDistill, REFERENCE.md §2).

    rng = np.random.default_rng(seed)
    masks, draws = fov_batch(rng, batch=8, width=W)          # (B, W) 1 = kept, 0 = occluded
    student_pano = apply_fov(pano, draws[0])                 # occluded columns zeroed
    bev_mask = fov_bev_mask(draws[0], W, H, size, mpp, cam_h)  # the same cells in the BEV

FoV occlusion (the authors' code): the kept field of view is an integer number of degrees drawn
uniformly in [low, high) (180-240 by default); the occluded block of 360 - kept degrees starts at
an integer degree drawn uniformly in [0, kept), measured from the panorama's left edge (column 0),
so it never wraps around the seam. Occluded columns are zeroed, not cropped, and the same mask is
projected into the BEV so the correlation only uses cells the student can see. Every draw comes
from the generator passed in: same generator state, same draws.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from geodistill.geometry import bev_maps


@dataclass(frozen=True)
class FovDraw:
    """One FoV occlusion: the block [start_deg, start_deg + 360 - kept_deg) degrees from column 0."""

    kept_deg: int
    start_deg: int

    @property
    def occluded_deg(self) -> int:
        return 360 - self.kept_deg


def draw_fov(rng: np.random.Generator, low: int = 180, high: int = 240) -> FovDraw:
    """Kept FoV uniform in [low, high) degrees; occluded block start uniform in [0, kept)."""
    if not 0 < low < high <= 361:
        raise ValueError(f"FoV range must satisfy 0 < low < high <= 361 degrees, got low={low}, high={high}")
    kept = int(rng.integers(low, high))
    return FovDraw(kept_deg=kept, start_deg=int(rng.integers(0, kept)))


def occluded_columns(draw: FovDraw, width: int) -> tuple[int, int]:
    """[first, last) occluded columns: start and end degrees scaled by width/360, rounded half up."""
    to_col = lambda deg: int(np.floor(deg * width / 360 + 0.5))
    return to_col(draw.start_deg), to_col(draw.start_deg + draw.occluded_deg)


def fov_column_mask(draw: FovDraw, width: int) -> np.ndarray:
    """(width,) float32, 1 = kept column, 0 = occluded.

    The kept width in columns is width - (last - first) of occluded_columns: exactly
    kept_deg * width / 360 when width is a multiple of 360, within one column otherwise.
    """
    first, last = occluded_columns(draw, width)
    mask = np.ones(width, np.float32)
    mask[first:last] = 0
    return mask


def apply_fov(pano, draw: FovDraw):
    """Copy of a panorama with the occluded columns zeroed (same shape and dtype).

    numpy: (H, W) or (H, W, C); torch: (..., H, W) (differentiable where kept).
    """
    if isinstance(pano, torch.Tensor):
        keep = torch.from_numpy(fov_column_mask(draw, pano.shape[-1]) > 0).to(pano.device)   # (W,)
        return torch.where(keep, pano, pano.new_zeros(()))
    out = np.array(pano, copy=True)
    first, last = occluded_columns(draw, out.shape[1])
    out[:, first:last] = 0
    return out


def fov_bev_mask(draw: FovDraw, width: int, height: int, size: int, mpp: float, cam_h: float,
                 yaw_deg: float = 0.0) -> np.ndarray:
    """(size, size) float32: 1 where the BEV cell's panorama pixel is kept, 0 where occluded.

    The column mask is broadcast to a (height, width) image and projected with the BEV's own lookup
    table (geometry.bev_maps, nearest pixel, columns wrapping), so it marks exactly the BEV cells
    whose panorama pixel the student sees. width, height: of the panorama or of a feature map.
    """
    image = np.ascontiguousarray(np.broadcast_to(fov_column_mask(draw, width), (height, width)))
    map_x, map_y = bev_maps(size, float(mpp), float(cam_h), width, height, float(yaw_deg))
    return cv2.remap(image, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_WRAP)


def fov_batch(rng: np.random.Generator, batch: int, width: int, low: int = 180,
              high: int = 240) -> tuple[torch.Tensor, list[FovDraw]]:
    """B independent draws: (B, width) float32 column masks and the draws themselves."""
    draws = [draw_fov(rng, low, high) for _ in range(batch)]
    masks = np.stack([fov_column_mask(d, width) for d in draws]) if draws else np.zeros((0, width), np.float32)
    return torch.from_numpy(masks), draws
