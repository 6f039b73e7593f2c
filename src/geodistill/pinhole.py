"""Pinhole ground-plane geometry: a perspective camera (KITTI's front camera) over a flat ground,
the counterpart of geometry.py's equirectangular panorama. Facts: docs/kitti-reference.md section 4.

    K = np.array([[582.98, 0, 496.24], [0, 482.71, 125.00], [0, 0, 1]])   # 1024 x 256 image
    col, row, ahead = ground_to_image(east_m=2.0, north_m=10.0, cam_h=1.65, K=K)
    east, north = image_to_ground(col, row, cam_h=1.65, K=K)                 # back to (2, 10)
    map_x, map_y, seen = pinhole_bev_maps(size=128, mpp=0.25, cam_h=1.65, K=K, width=1024, height=256)
    bev = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR) * seen[..., None]    # = render_pinhole_bev
    feats, seen = sample_pinhole_bev(feat, 64, cell_m, 1.65, camera, (1024, 256))   # torch, per sample K

Camera axes as KITTI's: x right, y down, z forward; the camera looks along `yaw_deg` (degrees
clockwise from north) and sits `cam_h` metres above the ground. Pixels are K's: (col, row) with
pixel centres at whole numbers. Ground metres are (east, north) from the camera, and the BEV
grid is geometry.bev_ground_coords' (camera at pixel (size/2, size/2), rows south, columns east).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from geodistill.geometry import bev_ground_coords

MIN_DEPTH_M = 1e-6          # a ground point this close to the image plane or behind it is not seen


def _camera_axes(east_m, north_m, yaw_deg: float):
    """(right, forward) metres of ground points relative to a camera looking along yaw_deg."""
    east, north, yaw = np.asarray(east_m, np.float64), np.asarray(north_m, np.float64), np.radians(yaw_deg)
    return east * np.cos(yaw) - north * np.sin(yaw), east * np.sin(yaw) + north * np.cos(yaw)


def ground_to_image(east_m, north_m, cam_h: float, K: np.ndarray, yaw_deg: float = 0.0):
    """(col, row, in_front) of the ground points (east, north) metres from the camera: col =
    fx x / z + cx, row = fy h / z + cy in camera coordinates (x right, y = h down, z forward);
    col and row are NaN where the point is not in front of the camera (in_front False)."""
    right, forward = _camera_axes(east_m, north_m, yaw_deg)
    in_front = forward > MIN_DEPTH_M
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(in_front, forward, np.nan)
        col = K[0, 0] * right / z + K[0, 2]
        row = K[1, 1] * cam_h / z + K[1, 2]
    return col, row, in_front


def image_to_ground(col, row, cam_h: float, K: np.ndarray, yaw_deg: float = 0.0):
    """(east, north) metres of the ground point seen by pixel (col, row): the ray K^-1 (col, row, 1)
    scaled to reach y = cam_h; NaN for pixels on or above the horizon (row <= cy)."""
    x = (np.asarray(col, np.float64) - K[0, 2]) / K[0, 0]
    y = (np.asarray(row, np.float64) - K[1, 2]) / K[1, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(y > 0, cam_h / y, np.nan)
    right, forward = x * scale, scale
    yaw = np.radians(yaw_deg)
    return right * np.cos(yaw) + forward * np.sin(yaw), -right * np.sin(yaw) + forward * np.cos(yaw)


@lru_cache(maxsize=32)
def _cached_maps(size: int, mpp: float, cam_h: float, K: tuple, width: int, height: int, yaw_deg: float):
    east, north = bev_ground_coords(size, mpp)
    col, row, in_front = ground_to_image(east, north, cam_h, np.array(K).reshape(3, 3), yaw_deg)
    seen = in_front & (col >= -0.5) & (col <= width - 0.5) & (row >= -0.5) & (row <= height - 0.5)
    maps = (np.where(seen, col, -1.0).astype(np.float32), np.where(seen, row, -1.0).astype(np.float32), seen)
    for a in maps:
        a.flags.writeable = False
    return maps


def pinhole_bev_maps(size: int, mpp: float, cam_h: float, K: np.ndarray, width: int, height: int,
                     yaw_deg: float = 0.0):
    """Lookup table BEV pixel -> image pixel for cv2.remap, and the (size, size) mask of BEV cells
    the camera sees (in front of it and inside the width x height image); unseen cells map to
    (-1, -1). Cached, read-only."""
    if size <= 0 or mpp <= 0 or cam_h <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"BEV needs positive size, mpp, camera height and image size, got size={size}, "
                         f"mpp={mpp}, camera_height={cam_h}, image={width}x{height}")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"K must be a 3x3 intrinsic matrix with positive focal lengths, got {K.tolist()}")
    return _cached_maps(size, float(mpp), float(cam_h), tuple(K.ravel()), width, height, float(yaw_deg))


# -- torch: features of a batch of pinhole images onto the ground plane -----------------------

def sample_pinhole_bev(feat, size: int, cell_m, cam_h: float, camera, image_size: tuple[int, int]):
    """Bird's-eye view (B, C, size, size) of pinhole feature maps (B, C, h, w), bilinear, and the
    (B, 1, size, size) mask of the cells the camera sees (zero elsewhere, features too).

    cell_m: (B,) metres per BEV cell; camera: (B, 5) fx, fy, cx, cy in pixels of the input image
    of image_size = (W, H) (the feature map covers that image, so one normalised coordinate
    serves every level) and the heading in degrees clockwise from north. Same lookup as
    pinhole_bev_maps. Differentiable w.r.t. feat.
    """
    import torch
    import torch.nn.functional as F
    W, H = image_size
    work = torch.float32 if feat.dtype in (torch.float16, torch.bfloat16) else feat.dtype
    east, north = (torch.from_numpy(np.ascontiguousarray(a)).to(feat.device, work) for a in bev_ground_coords(size, 1.0))
    cam = camera.to(feat.device, work)
    fx, fy, cx, cy = (cam[:, k].view(-1, 1, 1) for k in range(4))          # (B, 1, 1)
    yaw = torch.deg2rad(cam[:, 4]).view(-1, 1, 1)
    east, north = east * cell_m.to(work).view(-1, 1, 1), north * cell_m.to(work).view(-1, 1, 1)   # (B, S, S)
    right = east * torch.cos(yaw) - north * torch.sin(yaw)
    forward = east * torch.sin(yaw) + north * torch.cos(yaw)
    in_front = forward > MIN_DEPTH_M
    z = torch.where(in_front, forward, torch.ones_like(forward))
    col, row = fx * right / z + cx, fy * cam_h / z + cy                       # (B, S, S) image pixels
    seen = in_front & (col >= -0.5) & (col <= W - 0.5) & (row >= -0.5) & (row <= H - 0.5)
    grid = torch.stack([(2 * col + 1) / W - 1, (2 * row + 1) / H - 1], dim=-1)   # (B, S, S, 2)
    grid = torch.where(seen[..., None], grid, torch.full_like(grid, -2.0))    # unseen: outside, zeros
    out = F.grid_sample(feat.to(work), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = seen[:, None].to(work)
    return (out * mask).to(feat.dtype), mask.to(feat.dtype)


def render_pinhole_bev(image: np.ndarray, size: int, mpp: float, cam_h: float, K: np.ndarray,
                       yaw_deg: float = 0.0) -> np.ndarray:
    """(size, size, C) metric BEV of a pinhole image (H, W, C), north up; unseen cells are 0."""
    import cv2
    h, w = image.shape[:2]
    map_x, map_y, seen = pinhole_bev_maps(size, mpp, cam_h, K, w, h, yaw_deg)
    bev = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return bev * seen.reshape(size, size, *([1] * (image.ndim - 2))).astype(image.dtype)
