"""Occlusions of the student's panorama (GeoDistill, docs/paper-reference.md#geodistill).

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

The paper's two other occlusions (its ablation), and the one entry point for all three:

    mask = random_patch_mask(rng, H, W, block_px=14, ratio=(1/3, 1/2))   # (H, W) 1 = kept
    masks = max_activation_mask(features, fraction=0.2, size=(H, W))    # (B, H, W) from (B, C, h, w)
    student_pano, column_mask = occlude(p, pano, rng, teacher.ground_features)   # p: params occlusion
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from geodistill.config import FovOcclusion, MaxActivationOcclusion, Occlusion, RandomPatchOcclusion
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


def random_patch_mask(rng: np.random.Generator, height: int, width: int, block_px: int,
                      ratio: tuple[float, float]) -> np.ndarray:
    """(height, width) float32, 1 = kept: blocks of a block_px grid (edge blocks clipped) zeroed
    in random order until the covered share reaches a ratio drawn uniformly in [low, high); the
    share then lies in [drawn, drawn + one block)."""
    goal = rng.uniform(*ratio) * height * width
    rows, cols = -(-height // block_px), -(-width // block_px)
    mask = np.ones((height, width), np.float32)
    covered = 0
    for cell in rng.permutation(rows * cols):
        if covered >= goal:
            break
        r, c = divmod(int(cell), cols)
        block = mask[r * block_px:(r + 1) * block_px, c * block_px:(c + 1) * block_px]
        covered += block.size
        block[:] = 0
    return mask


def max_activation_mask(features: torch.Tensor, fraction: float, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, h, w) panorama features -> (B, H, W) float mask, 0 on the round(fraction * h * w)
    feature locations of highest channel mean (each covering its share of the image), 1 elsewhere."""
    B, _, h, w = features.shape
    energy = features.detach().mean(dim=1).flatten(1)                     # (B, h * w)
    k = round(fraction * h * w)
    mask = torch.ones_like(energy)
    if k:
        mask.scatter_(1, energy.topk(k, dim=1).indices, 0.0)
    return F.interpolate(mask.view(B, 1, h, w), size=size, mode="nearest")[:, 0]


def occlude(p: Occlusion, pano: torch.Tensor, rng: np.random.Generator,
            ground_features: Callable[[torch.Tensor], torch.Tensor] | None = None, rows: slice = slice(None)
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The student's panorama (B, H, W, 3) (same dtype, occluded pixels zeroed) and, for FoV, the
    (B, W) column mask the model also applies to its ground features (None for the others).
    ground_features: the teacher's, needed by max_activation. rows: return only these samples
    (a distributed rank's share); the draws are still made for every sample of `pano`, so each
    sample gets the draws it gets in one process."""
    B, H, W, _ = pano.shape
    if isinstance(p, FovOcclusion):
        columns = fov_batch(rng, B, W, *p.fov_deg)[0][rows].to(pano.device)   # (b, W)
        return pano[rows] * columns[:, None, :, None].to(pano.dtype), columns
    if isinstance(p, RandomPatchOcclusion):
        masks = np.stack([random_patch_mask(rng, H, W, p.block_px, p.ratio) for _ in range(B)])
        mask = torch.from_numpy(masks)[rows].to(pano.device)                    # (b, H, W)
    elif isinstance(p, MaxActivationOcclusion):
        if ground_features is None:
            raise ValueError("max_activation occlusion needs the teacher's ground features")
        with torch.no_grad():
            mask = max_activation_mask(ground_features(pano[rows]), p.fraction, (H, W))
    else:
        raise ValueError(f"unknown occlusion {p!r}")
    return pano[rows] * mask[..., None].to(pano.dtype), None
