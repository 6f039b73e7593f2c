"""Geometry conventions shared by every stage, defined once here.

Satellite tiles (VIGOR): a tile of side S pixels is centred on its file name's lat/lon. Pixel
indices are pixel CENTRES (OpenCV's convention): the tile centre is pixel (S/2, S/2), rows go
south and columns go east. A label line's deltas (dy, dx) put the camera at
    row = S/2 + dy,   col = S/2 - dx.

Panoramas (VIGOR): equirectangular, W = 2H. North is the centre column; azimuth phi grows
clockwise (east = +90 deg), so column c (centre) looks at
    phi(c) = 2*pi * (c + 0.5 - W/2) / W,
i.e. column 0 looks south, W/4 west, W/2 north, 3W/4 east. Row r (centre) has elevation
    elev(r) = pi * (H/2 - r - 0.5) / H     (zenith at the top, nadir at the bottom).

Metric frames: a city's local frame is x = east, y = SOUTH (metres), so it matches image rows and
columns. Latitude/longitude use a local equirectangular projection around the city's origin with
Earth radius EARTH_RADIUS_M (the convention of VIGOR's labels).

Headings and yaw: a heading is in degrees clockwise from north. `yaw_deg` is the heading of a
panorama's centre column (0 for VIGOR), so column c looks at heading
    column_heading(c, W, yaw) = degrees(phi(c)) + yaw   (mod 360).
Angle errors wrap around: angle_error_deg(359, 1) = 2.

Rolling: roll_panorama(pano, theta) is the panorama the same camera takes after turning theta
degrees clockwise: new[:, c] = old[:, c + theta*W/360] (circular; linear between columns for a
fractional shift). Its centre column then heads at yaw + theta, so rolling a panorama of yaw psi
by -psi puts north at the centre column, and render_bev(pano, yaw=psi) equals
render_bev(roll_panorama(pano, -psi), yaw=0). A whole-column roll is np.roll and is undone
exactly by the opposite roll; a fractional roll and its opposite leave a 3-tap blur
[f(1-f), f^2 + (1-f)^2, f(1-f)] (f = fractional part of the shift), as linear interpolation does.

Bird's-eye view (BEV): a (size, size) grid of metres-per-pixel mpp with the camera at pixel
(size/2, size/2) (pixel centres at integers), rows going south and columns east: pixel (i, j)
is the ground point east = (j - size/2)*mpp, north = (size/2 - i)*mpp, seen by the panorama
pixel ground_to_pano(east, north, cam_h, W, H, yaw). bev_maps is that lookup table for
cv2.remap (numpy images), bev_grid the same table as normalised grid_sample coordinates
(align_corners=False) and sample_bev the batched, differentiable torch version; both wrap
columns around the seam and clamp rows. With the tile's mpp, BEV pixel (i, j) lies over tile
pixel (gt_row + i - size/2, gt_col + j - size/2).

BEV rotation: the naive (north-at-centre) BEV of a panorama whose centre column heads at yaw psi
is the true BEV rotated COUNTER-clockwise by psi about the camera. rotate_bev(bev, a) rotates a
numpy BEV counter-clockwise by a degrees about pixel (size/2, size/2) (cv2's convention), and
rotate_bev_features does the same for a batch of torch maps (one angle per map), so
rotate_bev(naive_bev, -psi) is the true, north-up BEV.

Feature maps: a panorama of W x H pixels seen at stride s gives a feature map of W/s x H/s cells
covering the same sphere, so every formula above applies with width, height = the feature
map's size (that is why the torch functions take the feature size, not the image size).
"""
from __future__ import annotations

import math
from functools import lru_cache

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported inside the torch functions: the numpy paths start fast
    import torch

EARTH_RADIUS_M = 6371004.0


def column_azimuth(col, width: int):
    """Azimuth (radians, clockwise from north) seen by panorama column `col` (may be fractional)."""
    return 2 * np.pi * (np.asarray(col, dtype=np.float64) + 0.5 - width / 2) / width


def azimuth_column(phi, width: int):
    """Inverse of column_azimuth, wrapped into [-0.5, width - 0.5)."""
    col = np.asarray(phi, dtype=np.float64) / (2 * np.pi) * width + width / 2 - 0.5
    return (col + 0.5) % width - 0.5


def row_elevation(row, height: int):
    """Elevation (radians, up positive) seen by panorama row `row` (may be fractional)."""
    return np.pi * (height / 2 - np.asarray(row, dtype=np.float64) - 0.5) / height


def elevation_row(elev, height: int):
    """Inverse of row_elevation."""
    return height / 2 - 0.5 - np.asarray(elev, dtype=np.float64) / np.pi * height


def metres_to_latlon(east_m, north_m, origin: tuple[float, float]):
    """Local east/north offsets (metres) from `origin` = (lat, lon) to (lat, lon) in degrees."""
    lat0, lon0 = origin
    lat = lat0 + np.degrees(np.asarray(north_m, dtype=np.float64) / EARTH_RADIUS_M)
    lon = lon0 + np.degrees(np.asarray(east_m, dtype=np.float64) / (EARTH_RADIUS_M * np.cos(np.radians(lat0))))
    return lat, lon


def latlon_to_metres(lat, lon, origin: tuple[float, float]):
    """Inverse of metres_to_latlon: (east_m, north_m) of (lat, lon) relative to `origin`."""
    lat0, lon0 = origin
    north = np.radians(np.asarray(lat, dtype=np.float64) - lat0) * EARTH_RADIUS_M
    east = np.radians(np.asarray(lon, dtype=np.float64) - lon0) * EARTH_RADIUS_M * np.cos(np.radians(lat0))
    return east, north


def label_to_pixel(dy: float, dx: float, sat_size: int) -> tuple[float, float]:
    """VIGOR label deltas -> (row, col) of the camera in the tile as stored."""
    return sat_size / 2 + dy, sat_size / 2 - dx


def pixel_to_label(row: float, col: float, sat_size: int) -> tuple[float, float]:
    """Inverse of label_to_pixel: (dy, dx)."""
    return row - sat_size / 2, sat_size / 2 - col


# -- panorama <-> ground plane ---------------------------------------------------------------

def ground_to_pano(east_m, north_m, cam_h: float, width: int, height: int, yaw_deg: float = 0.0):
    """(col, row) of the ground point (east, north) metres from a camera at height cam_h.

    yaw_deg is the heading (degrees clockwise from north) of the panorama's centre column; VIGOR
    panoramas have yaw 0 (north at the centre column).
    """
    east, north = np.asarray(east_m, dtype=np.float64), np.asarray(north_m, dtype=np.float64)
    phi = np.arctan2(east, north) - np.radians(yaw_deg)
    elev = -np.arctan2(cam_h, np.hypot(east, north))
    return azimuth_column(phi, width), elevation_row(elev, height)


def pano_to_ground(col, row, cam_h: float, width: int, height: int, yaw_deg: float = 0.0):
    """(east, north) metres of the ground point seen by panorama pixel (col, row); NaN above the horizon."""
    phi = column_azimuth(col, width) + np.radians(yaw_deg)
    elev = row_elevation(row, height)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(elev < 0, cam_h / np.tan(-elev), np.nan)
    return dist * np.sin(phi), dist * np.cos(phi)


def bev_ground_coords(size: int, mpp: float):
    """(east, north) metres of the centres of a (size, size) bird's-eye-view grid.

    The camera sits at pixel (size/2, size/2) (pixel-centre coordinates, as satellite tiles),
    rows go south and columns east: pixel (i, j) is east = (j - size/2)*mpp,
    north = (size/2 - i)*mpp. With equal mpp, BEV pixel (i, j) lies over tile pixel
    (gt_row + i - size/2, gt_col + j - size/2).
    """
    offsets = (np.arange(size, dtype=np.float64) - size / 2) * mpp
    return np.broadcast_to(offsets[None, :], (size, size)), np.broadcast_to(-offsets[:, None], (size, size))


@lru_cache(maxsize=32)
def bev_maps(size: int, mpp: float, cam_h: float, width: int, height: int, yaw_deg: float = 0.0):
    """Lookup table BEV pixel -> panorama pixel for cv2.remap, cached (read-only float32 arrays).

    Use with `cv2.remap(pano, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)`:
    columns wrap around the seam; rows are clamped inside the image, so nothing wraps vertically.
    """
    if size <= 0 or mpp <= 0 or cam_h <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"BEV needs positive size, mpp, camera height and panorama size, got "
                         f"size={size}, mpp={mpp}, camera_height={cam_h}, panorama={width}x{height}")
    east, north = bev_ground_coords(size, mpp)
    col, row = ground_to_pano(east, north, cam_h, width, height, yaw_deg)
    map_x = np.mod(col, width).astype(np.float32)
    map_y = np.clip(row, 0, height - 1).astype(np.float32)
    map_x.flags.writeable = False
    map_y.flags.writeable = False
    return map_x, map_y


def render_bev(pano: np.ndarray, size: int, mpp: float, cam_h: float, yaw_deg: float = 0.0) -> np.ndarray:
    """Metric bird's-eye view (size, size, C) of an equirectangular panorama (H, W, C), W = 2H."""
    height, width = pano.shape[:2]
    if width != 2 * height:
        raise ValueError(f"panorama must be equirectangular (width = 2 x height), got {width}x{height}")
    map_x, map_y = bev_maps(size, float(mpp), float(cam_h), width, height, float(yaw_deg))
    return cv2.remap(pano, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)


# -- headings ---------------------------------------------------------------------------------

def rotate_bev(bev: np.ndarray, angle_deg: float) -> np.ndarray:
    """(S, S[, C]) BEV rotated counter-clockwise by angle_deg about the camera pixel (S/2, S/2);
    pixels from outside the image are 0."""
    size = bev.shape[0]
    m = cv2.getRotationMatrix2D((size / 2, size / 2), float(angle_deg), 1.0)
    return cv2.warpAffine(bev, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)


def bev_disc(size: int) -> np.ndarray:
    """(size, size) bool: pixels within size/2 - 1 of the camera pixel (size/2, size/2), the
    largest disc that stays inside the BEV under any rotation about the camera."""
    yy, xx = np.mgrid[0:size, 0:size]
    return np.hypot(yy - size / 2, xx - size / 2) <= size / 2 - 1


def column_heading(col, width: int, yaw_deg: float = 0.0):
    """Heading (degrees clockwise from north, in [0, 360)) seen by column `col` of a panorama whose
    centre column heads at yaw_deg."""
    return np.mod(np.degrees(column_azimuth(col, width)) + yaw_deg, 360.0)


def heading_column(heading_deg, width: int, yaw_deg: float = 0.0):
    """Inverse of column_heading: the (fractional) column, wrapped into [-0.5, width - 0.5)."""
    return azimuth_column(np.radians(np.asarray(heading_deg, dtype=np.float64) - yaw_deg), width)


def wrap_degrees(a):
    """Angles in degrees wrapped into (-180, 180]."""
    return 180.0 - np.mod(180.0 - np.asarray(a, dtype=np.float64), 360.0)


def angle_error_deg(pred, true):
    """Elementwise absolute angle error in degrees with wrap-around (359 vs 1 -> 2), in [0, 180]."""
    return np.abs(wrap_degrees(np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)))


# -- yaw roll ---------------------------------------------------------------------------------

def roll_panorama(pano: np.ndarray, yaw_deg: float) -> np.ndarray:
    """The panorama (H, W[, C]) the same camera takes after turning yaw_deg clockwise.

    new[:, c] = old[:, c + yaw_deg*W/360], circular. A whole number of columns is np.roll (exact);
    otherwise the two neighbouring columns are blended linearly (integer images are rounded back
    to their dtype).
    """
    width = pano.shape[1]
    shift = float(yaw_deg) / 360.0 * width
    whole = round(shift)
    if abs(shift - whole) < 1e-9:
        return np.roll(pano, -whole, axis=1)
    k = math.floor(shift)
    f = shift - k
    cols = (np.arange(width) + k) % width                      # (W,) left neighbour of c + shift
    work = pano.dtype if np.issubdtype(pano.dtype, np.floating) else np.float32
    out = pano[:, cols].astype(work) * (1 - f) + pano[:, (cols + 1) % width].astype(work) * f
    if np.issubdtype(pano.dtype, np.integer):
        info = np.iinfo(pano.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(pano.dtype)


def roll_features(feat: torch.Tensor, yaw_deg) -> torch.Tensor:
    """roll_panorama for a batch of feature maps (B, C, H, W), one shift per sample.

    yaw_deg: (B,) tensor (or a float shared by the batch) of clockwise turns in degrees. Linear
    interpolation between columns, circular; differentiable w.r.t. feat.
    """
    import torch
    B, C, H, W = feat.shape
    yaw = torch.as_tensor(yaw_deg, dtype=torch.float64, device=feat.device).reshape(-1).expand(B)
    shift = yaw / 360.0 * W                                        # (B,) columns
    k = torch.floor(shift)
    f = (shift - k).to(feat.dtype).view(B, 1, 1, 1)
    cols = (torch.arange(W, device=feat.device)[None, :] + k.long()[:, None]) % W   # (B, W)
    left = cols.view(B, 1, 1, W).expand(B, C, H, W)
    right = ((cols + 1) % W).view(B, 1, 1, W).expand(B, C, H, W)
    return feat.gather(3, left) * (1 - f) + feat.gather(3, right) * f


def rotate_bev_features(maps: torch.Tensor, angle_deg: torch.Tensor) -> torch.Tensor:
    """rotate_bev for a batch: (N, C, S, S) maps, (N,) angles in degrees -> (N, C, S, S).

    Counter-clockwise about the camera cell (S/2, S/2), bilinear, zeros from outside, and
    differentiable w.r.t. maps (for a stride-s feature map of a BEV the camera cell is
    approximately S/2 too; the sub-cell difference is a translation).
    """
    import torch
    import torch.nn.functional as F
    N, C, S, _ = maps.shape
    a = torch.deg2rad(angle_deg.to(device=maps.device, dtype=torch.float64)).reshape(N)
    cos, sin = torch.cos(a), torch.sin(a)
    centre = 1.0 / S                # pixel S/2 in grid_sample's normalised coordinates
    # output pixel p samples the input at R (p - centre) + centre, R = [[cos, -sin], [sin, cos]]
    theta = torch.stack([torch.stack([cos, -sin, centre - centre * (cos - sin)], dim=1),
                         torch.stack([sin, cos, centre - centre * (sin + cos)], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(maps.dtype), [N, C, S, S], align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# -- torch BEV sampling -----------------------------------------------------------------------

def _bev_pixels(size: int, mpp: float, cam_h: float, feat_w: int, feat_h: int, yaw_deg) -> torch.Tensor:
    """Panorama (col, row) of every BEV pixel, as bev_maps: (size, size, 2), or (B, size, size, 2)
    for a (B,) tensor of yaws. Columns in [0, feat_w), rows clamped to [0, feat_h - 1]."""
    import torch
    if isinstance(yaw_deg, torch.Tensor) and yaw_deg.dim() > 0:
        map_x, map_y = bev_maps(size, float(mpp), float(cam_h), feat_w, feat_h, 0.0)
        x0 = torch.from_numpy(map_x.astype(np.float64)).to(yaw_deg.device)            # (S, S)
        y0 = torch.from_numpy(map_y.astype(np.float64)).to(yaw_deg.device)
        # turning the camera by yaw moves every bearing yaw*W/360 columns to the left
        x = torch.remainder(x0 - yaw_deg.double().view(-1, 1, 1) / 360.0 * feat_w, feat_w)  # (B, S, S)
        return torch.stack([x, y0.expand_as(x)], dim=-1).float()
    map_x, map_y = bev_maps(size, float(mpp), float(cam_h), feat_w, feat_h, float(yaw_deg))
    return torch.from_numpy(np.stack([map_x, map_y], axis=-1))


def bev_grid(size: int, mpp: float, cam_h: float, feat_w: int, feat_h: int, yaw_deg=0.0) -> torch.Tensor:
    """bev_maps as normalised coordinates for F.grid_sample(..., align_corners=False).

    Returns (size, size, 2) (x, y) in [-1, 1] for a float yaw_deg (the numpy table is cached by
    bev_maps), or (B, size, size, 2) for a (B,) tensor of yaws. Sampling an unpadded map with it
    does not wrap at the seam; sample_bev does.
    """
    pix = _bev_pixels(size, mpp, cam_h, feat_w, feat_h, yaw_deg)
    scale = pix.new_tensor([feat_w, feat_h])
    return (2 * pix + 1) / scale - 1


def sample_bev(feat: torch.Tensor, size: int, mpp: float, cam_h: float, yaw_deg=0.0) -> torch.Tensor:
    """Bird's-eye view (B, C, size, size) of panorama feature maps (B, C, H, W), bilinear.

    Same lookup as render_bev (bev_maps) with width, height = W, H; columns wrap around the seam
    (the map is padded circularly by one column each side) and rows are clamped. yaw_deg: float
    shared by the batch, or (B,) tensor. Differentiable w.r.t. feat.
    """
    import torch
    import torch.nn.functional as F
    B, C, H, W = feat.shape
    padded = torch.cat([feat[..., -1:], feat, feat[..., :1]], dim=-1)    # (B, C, H, W + 2)
    if isinstance(yaw_deg, torch.Tensor) and yaw_deg.dim() == 0:
        yaw_deg = float(yaw_deg)
    # coordinates stay float32 under bf16 autocast (bf16 steps are 4 px at 640 px)
    work = torch.float32 if feat.dtype in (torch.float16, torch.bfloat16) else feat.dtype
    pix = _bev_pixels(size, mpp, cam_h, W, H, yaw_deg).to(device=feat.device, dtype=work)
    scale = pix.new_tensor([W + 2, H])
    grid = (2 * (pix + pix.new_tensor([1.0, 0.0])) + 1) / scale - 1     # (S, S, 2) or (B, S, S, 2)
    grid = grid.expand(B, size, size, 2)
    out = F.grid_sample(padded.to(work), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(feat.dtype)
