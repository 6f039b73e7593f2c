"""Traffic and people seen by one panorama only: the satellite image was taken at another time.

    objects = place_transients(world, x, y, synth.transients, rng)
    draw_transients(rgb, depth, objects, x, y, cam_h, sun_azimuth)     # in place

A share `busy_fraction` of panoramas is captured in traffic: Poisson(`vehicles`) cars, vans and
buses on the camera's road and Poisson(`pedestrians`) people on its sidewalks, all within
`radius_m` of the camera along the road, clear of buildings, parked cars and each other. They
are solid upright boxes, ray traced per panorama pixel (exact slab intersection) and depth
tested against the scene, so a bus next to the camera hides the ground behind it, which is
exactly what the bird's-eye projection of that panorama then gets wrong. The satellite image
never shows them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodistill.config import TransientParams
from geodistill.data.synth.palettes import CAR_COLOURS
from geodistill.data.synth.world import World
from geodistill.geometry import column_azimuth, row_elevation

# (probability, length, width, height) in metres, and their glass band as fractions of height
VEHICLES = ((0.65, 4.4, 1.8, 1.5), (0.2, 5.2, 2.0, 2.2), (0.15, 11.0, 2.5, 3.1))   # car, van, bus
PERSON = (0.5, 0.35, 1.75)
CLOTHES = ((40, 44, 60), (160, 40, 40), (220, 220, 210), (60, 90, 140), (90, 80, 60), (200, 160, 40))
SKIN = (200, 160, 130)


@dataclass
class Transients:
    """Upright boxes: centre (K, 2) x, y; angle (K,); half (K, 2) along u, v; height (K,);
    colour (K, 3) body / shirt; is_person (K,)."""

    centre: np.ndarray
    angle: np.ndarray
    half: np.ndarray
    height: np.ndarray
    colour: np.ndarray
    is_person: np.ndarray

    def __len__(self) -> int:
        return len(self.angle)


def place_transients(world: World, x: float, y: float, p: TransientParams, rng: np.random.Generator) -> Transients:
    """The traffic around a camera at metric (x, y); none unless this panorama is a busy one."""
    rows: list[tuple] = []
    if world.roads and rng.random() < p.busy_fraction:
        road = world.roads[int(world.near_road[_cell(world, x, y)])]
        _, v_cam = road.frame(x, y)
        n_vehicles, n_people = rng.poisson(p.vehicles), rng.poisson(p.pedestrians)
        for k in range(n_vehicles + n_people):
            for _ in range(20):                                   # a few tries for a free spot
                if k < n_vehicles:
                    size = VEHICLES[rng.choice(len(VEHICLES), p=[v[0] for v in VEHICLES])][1:]
                    half = np.array(size[:2]) / 2
                    lane = road.width / 2 - half[1] - 0.3
                    u = rng.uniform(-lane, lane) if lane > 0 else 0.0
                    colour = np.array(CAR_COLOURS[rng.integers(len(CAR_COLOURS))], np.float64)
                else:
                    size = PERSON
                    half = np.array(size[:2]) / 2
                    u = np.sign(rng.uniform(-1, 1)) * (road.width / 2 + rng.uniform(0.4, max(road.sidewalk - 0.4, 0.5)))
                    colour = np.array(CLOTHES[rng.integers(len(CLOTHES))], np.float64)
                v = v_cam + rng.uniform(-p.radius_m, p.radius_m)
                centre = np.array(road.point(v, u), np.float64)
                angle = float(road.tangent_angle(v))
                if _fits(world, rows, centre, angle, half, (x, y)):
                    rows.append((*centre, angle, *half, size[2], *colour, k >= n_vehicles))
                    break
    t = np.array(rows, np.float64).reshape(-1, 10)
    return Transients(centre=t[:, 0:2], angle=t[:, 2], half=t[:, 3:5], height=t[:, 5], colour=t[:, 6:9],
                      is_person=t[:, 9].astype(bool))


def _cell(world: World, x: float, y: float) -> tuple[int, int]:
    c = int(np.clip(np.floor((x - world.x0) / world.cell), 0, world.size - 1))
    r = int(np.clip(np.floor((y - world.x0) / world.cell), 0, world.size - 1))
    return r, c


def _fits(world: World, rows: list[tuple], centre: np.ndarray, angle: float, half: np.ndarray, camera) -> bool:
    """Clear of the camera (0.6 m), of solid objects (corners and centre) and of earlier boxes."""
    ca, sa = np.cos(angle), np.sin(angle)
    rel = np.asarray(camera) - centre
    if abs(rel[0] * ca + rel[1] * sa) < half[0] + 0.6 and abs(-rel[0] * sa + rel[1] * ca) < half[1] + 0.6:
        return False
    for su, sv in ((0, 0), (1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0)):
        px = centre[0] + su * half[0] * ca - sv * half[1] * sa
        py = centre[1] + su * half[0] * sa + sv * half[1] * ca
        r, c = _cell(world, px, py)
        if world.obj[r, c] != 0:
            return False
    reach = np.hypot(*half)
    return all(np.hypot(row[0] - centre[0], row[1] - centre[1]) > reach + np.hypot(row[3], row[4]) for row in rows)


def draw_transients(rgb: np.ndarray, depth: np.ndarray, objects: Transients, x: float, y: float,
                    cam_h: float, sun_azimuth: float) -> None:
    """Paint the boxes into an (H, W, 3) float panorama where they are nearer than `depth` (H, W)
    (horizontal distance, inf = sky), updating depth. Each ray (azimuth phi, elevation e) is the
    line (x + d sin phi, y - d cos phi, cam_h + d tan e) in its horizontal distance d."""
    H, W = depth.shape
    if len(objects) == 0:
        return
    phi = column_azimuth(np.arange(W), W)                             # (W,)
    tan_e = np.tan(row_elevation(np.arange(H), H))[:, None]           # (H, 1)
    sun = np.array([np.sin(sun_azimuth), -np.cos(sun_azimuth)])
    for k in np.argsort(-np.hypot(*(objects.centre - [x, y]).T)):      # far to near
        ca, sa = np.cos(objects.angle[k]), np.sin(objects.angle[k])
        hu, hv = objects.half[k]
        u0 = (x - objects.centre[k, 0]) * ca + (y - objects.centre[k, 1]) * sa
        v0 = -(x - objects.centre[k, 0]) * sa + (y - objects.centre[k, 1]) * ca
        du = np.sin(phi) * ca - np.cos(phi) * sa                     # (W,) d(u)/dd
        dv = -np.sin(phi) * sa - np.cos(phi) * ca
        lo_u, hi_u = _slab(u0, du, -hu, hu)                           # (W,) each
        lo_v, hi_v = _slab(v0, dv, -hv, hv)
        cols = np.flatnonzero(np.maximum(lo_u, lo_v) < np.minimum(hi_u, hi_v))
        if cols.size == 0:
            continue
        lo_z, hi_z = _slab(cam_h, tan_e, 0.0, objects.height[k])      # (H, 1) each
        lo_h = np.maximum(lo_u[cols], lo_v[cols])[None, :]              # (1, C)
        near = np.maximum(lo_h, lo_z)                                 # (H, C)
        far = np.minimum(np.minimum(hi_u[cols], hi_v[cols])[None, :], hi_z)
        hit = (near <= far) & (near > 0) & (near < depth[:, cols])
        if not hit.any():
            continue
        z = cam_h + near * tan_e                                      # (H, C) hit height
        on_top = lo_z >= lo_h                                          # entered through the roof
        u_face = lo_u[cols] >= lo_v[cols]                              # (C,) side entered
        normal = np.where(u_face[:, None], np.sign(-du[cols])[:, None] * [ca, sa],
                          np.sign(-dv[cols])[:, None] * [-sa, ca])    # (C, 2) outward
        light = (0.62 + 0.38 * np.clip(normal @ sun, 0, 1))[None, :, None]
        colour = _colour(objects, k, z, on_top)                       # (H, C, 3)
        colour = np.where(on_top[..., None], colour * 0.95, colour * light)
        block = rgb[:, cols]
        block[hit] = colour[hit]
        rgb[:, cols] = block
        d = depth[:, cols]
        d[hit] = near[hit]
        depth[:, cols] = d


def _slab(p0: float, dp: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit distance d of the lines p0 + d dp through low <= p <= high (a line parallel
    to the slab: (-inf, inf) inside it, (inf, -inf) outside)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = (low - p0) / dp, (high - p0) / dp
    inside = low <= p0 <= high
    lo = np.where(dp == 0, -np.inf if inside else np.inf, np.minimum(a, b))
    hi = np.where(dp == 0, np.inf if inside else -np.inf, np.maximum(a, b))
    return lo, hi


def _colour(objects: Transients, k: int, z: np.ndarray, on_top: np.ndarray) -> np.ndarray:
    """Body, glass and tyres of a vehicle; legs, shirt and head of a person, by hit height z."""
    h = objects.height[k]
    body = np.broadcast_to(objects.colour[k], (*z.shape, 3)).copy()
    if objects.is_person[k]:
        body[z < 0.85] = (48, 50, 58)
        body[z > h - 0.25] = SKIN
        return body
    glass = (z > 0.55 * h) & (z < 0.92 * h) & ~on_top
    body[glass] = (34, 40, 48)
    body[z < 0.35] = (28, 28, 28)
    return body
