"""Training augmentation of localization batches (params `baselines.<method>.augment`). Every
draw is made per sample and applied alike to its panorama and its tile, so the pair stays a true
match with exact labels; evaluation never augments.

    batch = augment_batch(batch, p.augment, np.random.default_rng([seed, epoch, 3]))

- `mirror`: for each sample with probability 1/2, the world mirrored east-west. The tile is
  flipped left to right (camera column c -> S - 1 - c), the panorama's columns are reversed about
  its centre column (azimuth phi -> -phi, geometry.py: north stays at the centre) and its turn
  t -> -t. A mirrored world is a valid world: a street grid at +28 degrees becomes one at -28.
  A pinhole image (KITTI) is flipped left to right, its cx -> W - 1 - cx and heading h -> -h.
- `rotate90`: for each sample, the world turned clockwise by k quarter turns, k drawn in 0..3.
  The tile is rotated (camera pixel (r, c) -> (c, S - 1 - r) per turn), the panorama rolled by
  k W/4 columns (what lay at azimuth phi now lies at phi + 90 k degrees; north stays at the
  centre column) and its turn kept; a pinhole image keeps its pixels and its heading turns by
  90 k degrees. The weak loss cannot tell a translation of one view's features against the
  other's, and a network trained from scratch learns one (measured on the synthetic default:
  0.2-1.4 m, a different one per run); with the world's four turns in training, no fixed
  translation fits them all.
- `permute_channels`: one random order of the three colour channels per sample, on both views.
- `gain`: per sample and channel one factor drawn in [1 - gain, 1 + gain], on both views.
Colour draws teach a network to match colours across the views rather than to remember the
training cities' palettes. A disabled augmentation draws nothing from the generator.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from geodistill.config import AugmentParams
from geodistill.models.localizer import Batch


def mirror(batch: Batch, flip: torch.Tensor) -> Batch:
    """The samples where flip (B,) bool is set, mirrored east-west (module docstring)."""
    S = batch.sat.shape[2]
    image = flip[:, None, None, None]                                    # (B, 1, 1, 1)
    gt = torch.stack([batch.gt_px[:, 0], S - 1 - batch.gt_px[:, 1]], dim=1)
    mask, camera = batch.column_mask, batch.camera
    if mask is not None:
        mask = torch.where(flip[:, None], mask.flip(1), mask)
    if camera is not None:                      # pinhole: cx -> W - 1 - cx, heading h -> -h
        W = batch.pano.shape[2]
        mirrored = torch.stack([camera[:, 0], camera[:, 1], W - 1 - camera[:, 2], camera[:, 3], -camera[:, 4]], 1)
        camera = torch.where(flip[:, None], mirrored, camera)
    return Batch(pano=torch.where(image, batch.pano.flip(2), batch.pano),
                 sat=torch.where(image, batch.sat.flip(2), batch.sat), sat_mpp=batch.sat_mpp,
                 gt_px=torch.where(flip[:, None], gt, batch.gt_px),
                 yaw_deg=torch.where(flip, -batch.yaw_deg, batch.yaw_deg), column_mask=mask, camera=camera)


def rotate90(batch: Batch, turns: torch.Tensor) -> Batch:
    """Each sample's world turned clockwise by turns (B,) int in 0..3 quarter turns (module docstring)."""
    S, W = batch.sat.shape[2], batch.pano.shape[2]
    if batch.camera is None and W % 4:
        raise ValueError(f"rotate90 needs a panorama width divisible by 4 (a quarter turn in whole columns), got {W}")
    pano, sat, gt = batch.pano.clone(), batch.sat.clone(), batch.gt_px.clone()
    mask = None if batch.column_mask is None else batch.column_mask.clone()
    camera = None if batch.camera is None else batch.camera.clone()
    for k in range(1, 4):
        at = turns == k
        if not at.any():
            continue
        sat[at] = torch.rot90(batch.sat[at], k=-k, dims=(1, 2))            # clockwise
        row, col = batch.gt_px[at, 0], batch.gt_px[at, 1]
        gt[at] = torch.stack([[col, S - 1 - row], [S - 1 - row, S - 1 - col], [S - 1 - col, row]][k - 1], dim=1)
        if camera is not None:                                             # pinhole: only the heading turns
            camera[at, 4] = batch.camera[at, 4] + 90.0 * k
        else:
            pano[at] = torch.roll(batch.pano[at], shifts=k * W // 4, dims=2)
            if mask is not None:
                mask[at] = torch.roll(batch.column_mask[at], shifts=k * W // 4, dims=1)
    return Batch(pano=pano, sat=sat, sat_mpp=batch.sat_mpp, gt_px=gt, yaw_deg=batch.yaw_deg,
                 column_mask=mask, camera=camera)


def recolour(images: torch.Tensor, order: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> the same with channel c taken from channel order[b, c] and scaled by
    gain[b, c] (both (B, 3)), rounded and clipped to [0, 255]."""
    B, H, W, _ = images.shape
    picked = torch.gather(images, 3, order[:, None, None, :].expand(B, H, W, 3))
    return (picked.float() * gain[:, None, None, :]).round_().clamp_(0, 255).to(torch.uint8)


def augment_batch(batch: Batch, a: AugmentParams, rng: np.random.Generator) -> Batch:
    """The batch with the enabled augmentations of `a` drawn from rng (module docstring)."""
    B = len(batch.pano)
    if a.mirror:
        batch = mirror(batch, torch.from_numpy(rng.random(B) < 0.5))
    if a.rotate90:
        batch = rotate90(batch, torch.from_numpy(rng.integers(0, 4, B)))
    if a.permute_channels or a.gain:
        order = np.tile(np.arange(3), (B, 1))                           # (B, 3) source channel of each
        if a.permute_channels:
            order = np.stack([rng.permutation(3) for _ in range(B)])
        gain = rng.uniform(1 - a.gain, 1 + a.gain, (B, 3)) if a.gain else np.ones((B, 3))
        order, gain = torch.from_numpy(order), torch.from_numpy(gain.astype(np.float32))
        batch = replace(batch, pano=recolour(batch.pano, order, gain), sat=recolour(batch.sat, order, gain))
    return batch
