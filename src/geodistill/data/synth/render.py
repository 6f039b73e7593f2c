"""Equirectangular panoramas of a synthetic world, by ray casting against its height field.

    look = PanoLook.draw(rng, synth.appearance)
    rgb, depth = render_panorama(world, x, y, camera_height, width, height, max_range, look, transients)

Each panorama column is one vertical half-plane. Along it the height field is sampled at
distances d_k (finer near the camera); a sample blocks every ray whose elevation lies below the
elevation of its top edge, so the first sample whose running maximum of top-edge elevations
reaches a ray's elevation is what that ray hits (one `searchsorted` for the whole image).
Object entries are refined by bisection, ground hits are exact (d = h / tan(-elev)), and trees
are composited as depth-tested sprites so the street is visible under their canopies (a crown
right above the camera is its ceiling: the rays that meet its underside). Traffic seen by this
panorama only (transients.py) is ray traced box by box and depth tested the same way.
Conventions (column/row <-> azimuth/elevation, x east / y south) are those of geometry.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from geodistill.config import AppearanceParams
from geodistill.data.synth.palettes import SKY_HORIZON, SKY_ZENITH
from geodistill.data.synth.transients import Transients, draw_transients
from geodistill.data.synth.world import KIND_BUILDING, World
from geodistill.geometry import column_azimuth, row_elevation

REFINE_STEPS = 7


@dataclass(frozen=True)
class PanoLook:
    """Capture conditions of one panorama (drawn per panorama, deterministic given its rng)."""

    sun_azimuth: float = 0.0
    sun_elevation: float = np.pi / 4
    exposure: float = 1.0
    haze_m: float = float("inf")
    noise_std: float = 0.0
    cloud_seed: int = 0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)   # per-channel gain

    @classmethod
    def draw(cls, rng: np.random.Generator, appearance: AppearanceParams) -> "PanoLook":
        j, wb = appearance.exposure_jitter, appearance.white_balance_jitter
        return cls(sun_azimuth=float(rng.uniform(0, 2 * np.pi)),
                   sun_elevation=float(np.radians(rng.uniform(*appearance.sun_elevation_deg))),
                   exposure=float(rng.uniform(1 - j, 1 + j)), haze_m=appearance.haze_m,
                   noise_std=appearance.pano_noise_std, cloud_seed=int(rng.integers(2**31)),
                   white_balance=tuple(float(g) for g in rng.uniform(1 - wb, 1 + wb, size=3)))


@lru_cache(maxsize=8)
def ray_distances(cell: float, max_range: float) -> np.ndarray:
    """(K,) sample distances along a column: half a cell apart near the camera, 0.8% further out."""
    d = [cell / 2]
    while d[-1] < max_range:
        d.append(d[-1] + max(cell / 2, d[-1] * 0.008))
    return np.array(d, np.float64)


def _lookup(world: World, x: np.ndarray, y: np.ndarray):
    """Nearest-cell height and object id at metric points; outside the world: open ground."""
    c = np.floor((x - world.x0) / world.cell).astype(np.int64)
    r = np.floor((y - world.x0) / world.cell).astype(np.int64)
    inside = (c >= 0) & (r >= 0) & (c < world.size) & (r < world.size)
    c, r = np.where(inside, c, 0), np.where(inside, r, 0)
    return np.where(inside, world.height[r, c], 0.0), np.where(inside, world.obj[r, c], 0)


def _sample(image: np.ndarray, world: World, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear colour of a world raster at metric points, float32 (..., 3)."""
    col, row = world.to_cell(x, y)
    n = col.size
    if n == 0:
        return np.zeros((*np.shape(x), 3), np.float32)
    rows = -(-n // 1024)                                  # remap maps must stay < 32767 wide
    maps = np.zeros((2, rows * 1024), np.float32)
    maps[0, :n], maps[1, :n] = col.ravel(), row.ravel()
    out = cv2.remap(image, maps[0].reshape(rows, 1024), maps[1].reshape(rows, 1024), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, 3)[:n].reshape(*np.shape(x), 3).astype(np.float32)


def trace(world: World, x: float, y: float, cam_h: float, width: int, height: int, max_range: float):
    """First hit of every panorama ray against the solid world (no trees).

    Returns dict of (H, W) arrays: kind (0 sky/far, 1 ground, 2 wall, 3 top), dist (horizontal
    distance of the hit, inf for sky), z (hit height), obj (box id + 1, 0 for none).
    """
    phi = column_azimuth(np.arange(width), width)                        # (W,)
    dirx, diry = np.sin(phi), -np.cos(phi)                               # north is -y
    d = ray_distances(world.cell, max_range)                             # (K,)
    px, py = x + d[None, :] * dirx[:, None], y + d[None, :] * diry[:, None]  # (W, K)
    hgt, oid = _lookup(world, px, py)

    # refine entries into objects by bisection between the previous and this sample
    entry = np.zeros_like(oid, dtype=bool)
    entry[:, 1:] = (oid[:, 1:] != oid[:, :-1]) & (oid[:, 1:] != 0)
    entry[:, 0] = oid[:, 0] != 0
    d_entry = np.broadcast_to(d, oid.shape).copy()
    wc, kc = np.nonzero(entry)
    if wc.size:
        lo = np.where(kc > 0, d[np.maximum(kc - 1, 0)], 0.0)
        hi = d[kc].copy()
        target = oid[wc, kc]
        for _ in range(REFINE_STEPS):
            mid = (lo + hi) / 2
            _, o = _lookup(world, x + mid * dirx[wc], y + mid * diry[wc])
            inside = o == target
            hi, lo = np.where(inside, mid, hi), np.where(inside, lo, mid)
        d_entry[wc, kc] = hi
    k_idx = np.arange(oid.shape[1])
    start = np.maximum.accumulate(np.where(entry | (oid == 0), k_idx[None, :], 0), axis=1)
    d_start = np.take_along_axis(d_entry, start, axis=1)                 # (W, K) near edge of the run

    # elevation of each sample's top edge: tall things from their near edge, low tops where sampled
    rise = hgt - cam_h
    d_edge = np.where((oid != 0) & (rise > 0), d_start, d)
    edge = np.arctan2(rise, d_edge)
    reach = np.maximum.accumulate(edge, axis=1)                          # (W, K) non-decreasing

    elev = row_elevation(np.arange(height), height)                      # (H,)
    K = d.size
    offs = np.arange(width)[:, None] * 10.0                              # separates columns
    first = np.searchsorted((reach + offs).ravel(), (elev[None, :] + offs).ravel(), side="left")
    first = first.reshape(width, height) - np.arange(width)[:, None] * K  # (W, H)
    hit = first < K
    k = np.minimum(first, K - 1)
    cols = np.arange(width)[:, None]
    h_obj, o_hit, ds = hgt[cols, k], oid[cols, k], d_start[cols, k]

    tan_e = np.tan(elev)[None, :]
    kind = np.zeros((width, height), np.int8)
    dist = np.full((width, height), np.inf)
    z = np.zeros((width, height))
    down = tan_e < 0
    # ground, including "no hit within range" below the horizon (far ground, hazed away)
    ground = (o_hit == 0) | ~hit
    ground &= down
    with np.errstate(divide="ignore"):
        d_ground = cam_h / -np.where(down, tan_e, -1.0)
    kind[ground], dist[ground] = 1, np.broadcast_to(d_ground, ground.shape)[ground]
    obj_hit = hit & (o_hit != 0)
    z_near = cam_h + ds * tan_e
    wall = obj_hit & (z_near <= h_obj)
    kind[wall], dist[wall], z[wall] = 2, ds[wall], z_near[wall]
    roof = obj_hit & ~wall & down
    with np.errstate(divide="ignore", invalid="ignore"):
        d_roof = (cam_h - h_obj) / -np.where(down, tan_e, -1.0)
    kind[roof], dist[roof], z[roof] = 3, d_roof[roof], h_obj[roof]
    oids = np.where(obj_hit, o_hit, 0)
    return {"kind": kind.T, "dist": dist.T, "z": z.T, "obj": oids.T}


def _walls(world: World, px, py, z, oid, sun_dir) -> np.ndarray:
    """Facade / car-side colours (N, 3) at wall hits."""
    b = world.boxes
    k = oid - 1
    ca, sa = np.cos(b.angle[k]), np.sin(b.angle[k])
    rx, ry = px - b.centre[k, 0], py - b.centre[k, 1]
    u, v = rx * ca + ry * sa, -rx * sa + ry * ca
    hu, hv = b.half[k, 0], b.half[k, 1]
    on_u_face = np.abs(u) / hu >= np.abs(v) / hv
    t = np.where(on_u_face, v + hv, u + hu)                              # along the wall (m)
    nx = np.where(on_u_face, np.sign(u) * ca, -np.sign(v) * sa)
    ny = np.where(on_u_face, np.sign(u) * sa, np.sign(v) * ca)
    light = 0.62 + 0.38 * np.clip(nx * sun_dir[0] + ny * sun_dir[1], 0, 1)
    wall, accent = b.wall[k].copy(), b.accent[k]
    building = b.kind[k] == KIND_BUILDING
    fx = np.mod(t / b.spacing[k], 1.0)
    fz = np.mod(z / b.floor[k], 1.0)
    window = (building & (np.abs(fx - 0.5) < b.window[k, 0] / 2) & (np.abs(fz - 0.55) < b.window[k, 1] / 2)
              & (z > b.floor[k]) & (z < b.height[k] - 0.6))
    shop = building & (z < 0.75 * b.floor[k]) & (np.abs(fx - 0.5) < 0.38)
    band = building & (fz < 0.05)
    glass = ~building & (z > 0.9) & (z < b.height[k] - 0.08)
    tyre = ~building & (z < 0.35)
    colour = wall
    colour[band] *= 0.82
    colour[window | shop | glass] = accent[window | shop | glass]
    colour[tyre] = 28
    return colour * light[:, None]


def _trees(world: World, x, y, cam_h, width, height, max_range, rgb, depth, rng):
    """Composite tree canopies and trunks as depth-tested sprites (in place)."""
    tr = world.trees
    if tr.radius.size == 0:
        return
    rel = tr.centre - np.array([x, y])
    dist = np.hypot(rel[:, 0], rel[:, 1])
    near = np.flatnonzero((dist < max_range) & (dist > tr.radius + 0.25))
    phi_px = width / (2 * np.pi)
    elev_px = height / np.pi
    overhead = np.flatnonzero((dist <= tr.radius + 0.25) & (tr.bottom > cam_h))
    if overhead.size:
        _ceilings(tr, overhead, x, y, cam_h, width, height, rgb, depth, rng)
    for i in near[np.argsort(-dist[near])]:
        dd, r = dist[i], tr.radius[i]
        az = np.arctan2(rel[i, 0], -rel[i, 1])                          # clockwise from north
        half_w = np.arcsin(min(1.0, r / dd))
        e_lo, e_hi = np.arctan2(tr.bottom[i] - cam_h, dd), np.arctan2(tr.top[i] - cam_h, dd)
        c_mid = az * phi_px + width / 2 - 0.5
        c0, c1 = int(np.floor(c_mid - half_w * phi_px)), int(np.ceil(c_mid + half_w * phi_px)) + 1
        r0 = max(int(np.floor(height / 2 - 0.5 - e_hi * elev_px)), 0)
        trunk_top = np.arctan2(tr.bottom[i] + 0.3 * (tr.top[i] - tr.bottom[i]) - cam_h, dd)
        r1 = min(int(np.ceil(height / 2 - 0.5 - np.arctan2(-cam_h, dd) * elev_px)) + 1, height)
        cols = np.arange(c0, c1)
        rows = np.arange(r0, r1)
        if rows.size == 0:
            continue
        dphi = (cols + 0.5 - width / 2) / phi_px - az                   # (C,)
        dphi = (dphi + np.pi) % (2 * np.pi) - np.pi
        e = row_elevation(rows, height)[:, None]                          # (R, 1)
        e_mid, e_half = (e_lo + e_hi) / 2, max((e_hi - e_lo) / 2, 1e-6)
        q = (dphi[None, :] / half_w) ** 2 + ((e - e_mid) / e_half) ** 2
        canopy = q <= 1.0
        trunk = (np.abs(dphi)[None, :] < np.arctan(tr.trunk[i] / dd)) & (e <= trunk_top) & ~canopy
        cw = cols % width
        sub_depth = depth[r0:r1][:, cw]
        z_canopy = dd - r * np.sqrt(np.clip(1 - q, 0, 1))
        paint_c = canopy & (z_canopy < sub_depth)
        paint_t = trunk & (dd < sub_depth)
        if not (paint_c.any() or paint_t.any()):
            continue
        shade = 0.65 + 0.45 * np.clip((e - e_lo) / max(e_hi - e_lo, 1e-6), 0, 1)
        leaf = tr.colour[i] * shade[..., None] * (1 + 0.14 * rng.standard_normal(canopy.shape + (1,)))
        sub = rgb[r0:r1][:, cw]
        sub[paint_c] = leaf[paint_c]
        sub[paint_t] = (70, 56, 44)
        rgb[r0:r1, cw] = sub
        sub_depth[paint_c] = z_canopy[paint_c]
        sub_depth[paint_t] = dd
        depth[r0:r1, cw] = sub_depth


def _ceilings(tr, overhead: np.ndarray, x, y, cam_h, width, height, rgb, depth, rng) -> None:
    """Crowns right above the camera, seen from below: a ray rising at elevation e meets the
    crown's underside (height `bottom`) at horizontal distance (bottom - cam_h) / tan e; where
    that point lies inside the crown's disc, the ray sees leaves (in place, depth tested)."""
    rows = np.arange(height // 2)                                      # rays above the horizon
    tan_e = np.tan(row_elevation(rows, height))[:, None]               # (R, 1)
    phi = column_azimuth(np.arange(width), width)[None, :]             # (1, W)
    for i in overhead:
        d = (tr.bottom[i] - cam_h) / tan_e                             # (R, 1)
        px, py = x + d * np.sin(phi) - tr.centre[i, 0], y - d * np.cos(phi) - tr.centre[i, 1]
        rho = np.hypot(px, py) / tr.radius[i]                          # (R, W)
        leaves = (rho <= 1.0) & (d < depth[rows])
        shade = 0.5 + 0.2 * np.clip(1 - rho, 0, 1)
        leaf = tr.colour[i] * shade[..., None] * (1 + 0.14 * rng.standard_normal(rho.shape + (1,)))
        sub, sub_depth = rgb[rows], depth[rows]
        sub[leaves] = leaf[leaves]
        sub_depth[leaves] = np.broadcast_to(d, rho.shape)[leaves]
        rgb[rows], depth[rows] = sub, sub_depth


def render_panorama(world: World, x: float, y: float, cam_h: float, width: int, height: int,
                    max_range: float, look: PanoLook = PanoLook(),
                    transients: Transients | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB panorama at metric (x, y), and (H, W) float32 hit distance (inf = sky);
    `transients`: traffic seen by this panorama only (transients.place_transients)."""
    rng = np.random.default_rng(look.cloud_seed)
    hits = trace(world, x, y, cam_h, width, height, max_range)
    kind, dist = hits["kind"], hits["dist"]
    phi = column_azimuth(np.arange(width), width)[None, :]
    elev = row_elevation(np.arange(height), height)[:, None]
    dirx, diry = np.sin(phi), -np.cos(phi)
    with np.errstate(invalid="ignore"):
        hx, hy = x + dist * dirx, y + dist * diry                         # (H, W) hit points

    horizon = np.array(SKY_HORIZON, np.float32)
    t = np.clip(elev / (np.pi / 2), 0, 1) ** 0.6
    sky = horizon * (1 - t[..., None]) + np.array(SKY_ZENITH, np.float32) * t[..., None]
    clouds = np.clip(cv2.resize(rng.standard_normal((6, 12)).astype(np.float32), (width, height),
                                interpolation=cv2.INTER_CUBIC) - 0.3, 0, 1)
    rgb = np.broadcast_to(sky, (height, width, 3)) * (1 - 0.6 * clouds[..., None]) + 245 * 0.6 * clouds[..., None]
    rgb = rgb.astype(np.float32)

    g = kind == 1
    rgb[g] = _sample(world.ground, world, hx[g], hy[g])
    top = kind == 3
    rgb[top] = _sample(world.top, world, hx[top], hy[top]) * 0.95
    w = kind == 2
    sun_dir = (np.sin(look.sun_azimuth), -np.cos(look.sun_azimuth))
    rgb[w] = _walls(world, hx[w], hy[w], hits["z"][w], hits["obj"][w], sun_dir)

    depth = dist.astype(np.float32)
    _trees(world, x, y, cam_h, width, height, max_range, rgb, depth, rng)
    if transients is not None:
        draw_transients(rgb, depth, transients, x, y, cam_h, look.sun_azimuth)

    fog = np.where(np.isfinite(depth), np.exp(-np.minimum(depth, 1e9) / look.haze_m), 1.0)[..., None]
    rgb = rgb * fog + horizon * (1 - fog)
    rgb = rgb * look.exposure * np.array(look.white_balance, np.float32)
    if look.noise_std > 0:
        rgb = rgb + rng.normal(0, look.noise_std, rgb.shape)
    return np.clip(rgb, 0, 255).round().astype(np.uint8), depth
