"""Localize one panorama in one satellite image with a trained checkpoint.

    geodistill localize --checkpoint data/baselines/g2s_vgg-cross/seed2023/best.pt \
        --pano pano.jpg --sat tile.png --mpp 0.114 [--yaw 30] [--heatmap scores.png]

Prints the camera's pixel (row, col) in the satellite image as given, its offset from the image
centre in metres (east, north), and the yaw: the one the panorama was turned back by, plus the
method's own estimate of what was left for methods that predict orientation (CCVPE).
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from geodistill.data.bev import read_panorama, read_tile
from geodistill.geometry import roll_panorama
from geodistill.models.localizer import input_to_tile_pixel, predict_tile_pixels
from geodistill.training.baseline import load_checkpoint


def localize_pair(checkpoint: Path, pano_path: Path, sat_path: Path, mpp: float, yaw_deg: float = 0.0,
                  heatmap: Path | None = None) -> dict:
    if not 0 < mpp < math.inf:
        raise ValueError(f"--mpp must be a positive number, got {mpp}")
    model, state = load_checkpoint(checkpoint)
    (W, H), S_in = state["method_params"]["pano_size"], state["method_params"]["sat_size"]
    pano = roll_panorama(read_panorama(pano_path), -yaw_deg)                  # north at the centre column
    sat = read_tile(sat_path)                                                  # (S, S, 3) RGB
    S = sat.shape[0]
    pano_in = cv2.resize(np.ascontiguousarray(pano), (W, H), interpolation=cv2.INTER_AREA)[None]   # (1, H, W, 3)
    sat_in = cv2.resize(sat, (S_in, S_in), interpolation=cv2.INTER_AREA)[None]                    # (1, S, S, 3)
    pixel, pred = predict_tile_pixels(model, torch.from_numpy(pano_in), torch.from_numpy(sat_in),
                                      torch.tensor([S * mpp / S_in]), torch.tensor([S]))
    row, col = (float(v) for v in pixel[0])
    if heatmap is not None:
        extent = input_to_tile_pixel(torch.tensor(pred.extent).view(2, 2), S_in, S).round().int().tolist()
        _save_heatmap(heatmap, np.ascontiguousarray(sat[..., ::-1]), pred.heatmap[0].numpy(), extent, (row, col))
    own = None if pred.yaw_deg is None else float(pred.yaw_deg[0])
    return {"pixel": {"row": row, "col": col}, "offset_m": {"east": (col - S / 2) * mpp, "north": (S / 2 - row) * mpp},
            "yaw_deg": yaw_deg if own is None else yaw_deg + own, "predicted_turn_deg": own,
            "method": state["method"], "checkpoint": str(checkpoint)}


def _save_heatmap(path: Path, sat_bgr: np.ndarray, scores: np.ndarray, extent: list[list[int]],
                  peak: tuple[float, float]) -> None:
    """The score map (h, w) coloured over the satellite image where it lies (extent: tile pixels
    [[top, left], [bottom, right]]), the peak marked."""
    S = sat_bgr.shape[0]
    (top, left), (bottom, right) = extent
    norm = (scores - scores.min()) / max(float(np.ptp(scores)), 1e-8)
    heat = cv2.applyColorMap((255 * norm).astype(np.uint8), cv2.COLORMAP_JET)
    out = sat_bgr.copy()
    box = np.s_[max(top, 0):min(bottom, S), max(left, 0):min(right, S)]
    patch = cv2.resize(heat, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
    patch = patch[max(-top, 0):, max(-left, 0):][: box[0].stop - box[0].start, : box[1].stop - box[1].start]
    out[box] = cv2.addWeighted(out[box], 0.5, patch, 0.5, 0)
    cv2.circle(out, (round(peak[1]), round(peak[0])), max(2, S // 100), (255, 255, 255), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), out):
        raise ValueError(f"cannot write {path} (unknown image extension?)")
