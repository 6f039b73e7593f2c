"""Street network of a synthetic city: roads, sidewalks, kerbs, lane markings and crosswalks.

    roads = make_roads(city, extent, rng)
    streets = lay_streets(roads, grid)
    ground = paint_ground(streets, roads, grid, palette, rng)     # (n, n, 3) float32 RGB
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodistill.config import CityParams
from geodistill.data.synth.palettes import Palette
from geodistill.data.synth.raster import Grid, smooth_noise


@dataclass
class Road:
    angle: float        # direction of travel, radians in the (x east, y south) frame
    offset: float       # signed distance of the centreline from the origin along the normal
    width: float
    sidewalk: float
    amplitude: float    # sinusoidal bend of the centreline (irregular layouts)
    wavelength: float
    phase: float

    def frame(self, x, y):
        """(u across, v along) coordinates of points; |u| < width/2 is on the road."""
        c, s = float(np.cos(self.angle)), float(np.sin(self.angle))
        v = x * c + y * s
        u = -x * s + y * c - self.offset - self.amplitude * np.sin(2 * np.pi * v / self.wavelength + self.phase)
        return u, v

    def point(self, v, u):
        """Inverse of frame: world (x, y) of road coordinates (v along, u across)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        n = u + self.offset + self.amplitude * np.sin(2 * np.pi * v / self.wavelength + self.phase)
        return v * c - n * s, v * s + n * c

    def tangent_angle(self, v):
        slope = self.amplitude * 2 * np.pi / self.wavelength * np.cos(2 * np.pi * v / self.wavelength + self.phase)
        return self.angle + np.arctan(slope)


def make_roads(city: CityParams, extent: float, rng: np.random.Generator) -> list[Road]:
    """Two families of streets, perpendicular up to jitter; irregular ones bend and tilt."""
    roads = []
    base = np.radians(city.rotation_deg)
    reach = extent * 1.5  # offsets cover the world whatever the rotation
    irregular = city.layout == "irregular"
    for family in (0, 1):
        angle = base + family * np.pi / 2
        offset = -reach + rng.uniform(0, city.block_m[1])
        while offset < reach:
            roads.append(Road(
                angle=angle + (np.radians(rng.uniform(-12, 12)) if irregular else 0.0),
                offset=offset,
                width=rng.uniform(*city.road_width_m),
                sidewalk=rng.uniform(*city.sidewalk_m),
                amplitude=rng.uniform(0, 8) if irregular else 0.0,
                wavelength=rng.uniform(90, 220),
                phase=rng.uniform(0, 2 * np.pi)))
            offset += rng.uniform(*city.block_m)
    if irregular:  # one diagonal avenue through the centre
        c = extent / 2
        angle = base + np.pi / 4 + np.radians(rng.uniform(-15, 15))
        roads.append(Road(angle, float(-c * np.sin(angle) + c * np.cos(angle)),
                          city.road_width_m[1], city.sidewalk_m[1], 0.0, 100.0, 0.0))
    corners = np.array([[0, 0], [extent, 0], [0, extent], [extent, extent]], dtype=np.float64)
    kept = []
    for r in roads:  # keep only roads that cross the world
        u, _ = r.frame(corners[:, 0], corners[:, 1])
        margin = r.width + r.sidewalk + r.amplitude
        if u.min() < margin and u.max() > -margin:
            kept.append(r)
    return kept


@dataclass
class Streets:
    road_count: np.ndarray    # (n, n) uint8: roads covering each cell (> 1 at intersections)
    sidewalk: np.ndarray      # (n, n) bool
    kerb: np.ndarray          # (n, n) bool: the strip of sidewalk along the road edge
    joints: np.ndarray        # (n, n) bool: paving joints of the sidewalk
    near_road: np.ndarray     # (n, n) uint8: index of the nearest road
    bands: list               # per road: flat indices of its road + sidewalk band, and (u, v) there

    @property
    def on_road(self) -> np.ndarray:
        return self.road_count > 0


def lay_streets(roads: list[Road], grid: Grid) -> Streets:
    n = grid.n
    road_count = np.zeros((n, n), np.uint8)
    sidewalk, kerb, joints = (np.zeros((n, n), bool) for _ in range(3))
    near_edge = np.full((n, n), np.inf, np.float32)    # distance beyond the nearest road's edge
    near_road = np.zeros((n, n), np.uint8)
    bands = []
    for i, r in enumerate(roads):
        u, v = r.frame(grid.x, grid.y)                    # (n, n) each
        edge = np.abs(u) - r.width / 2
        closer = edge < near_edge
        near_edge[closer] = edge[closer]
        near_road[closer] = i
        idx = np.flatnonzero(edge < r.sidewalk)
        bu, bv, be = u.ravel()[idx], v.ravel()[idx], edge.ravel()[idx]
        bands.append((idx, bu, bv))
        road_count.ravel()[idx] += be < 0
        sidewalk.ravel()[idx[be >= 0]] = True
        kerb.ravel()[idx[(be >= 0) & (be < 0.2)]] = True
        joints.ravel()[idx[(be >= 0) & (np.mod(bv, 1.5) < 0.06)]] = True
    on_road = road_count > 0
    sidewalk &= ~on_road
    kerb &= ~on_road
    joints &= sidewalk
    return Streets(road_count, sidewalk, kerb, joints, near_road, bands)


def paint_ground(streets: Streets, roads: list[Road], grid: Grid, pal: Palette,
                 rng: np.random.Generator) -> np.ndarray:
    """(n, n, 3) float32 colour of the z = 0 surface: lots, sidewalks, asphalt and markings."""
    n, cell = grid.n, grid.cell
    lot_choice = np.digitize(smooth_noise(rng, n, 24 / cell), [-0.35, 0.45])   # 0, 1, 2
    ground = np.array(pal.lots, np.float32)[lot_choice]
    fine = smooth_noise(rng, n, 0.6 / cell)[..., None]
    ground += 10 * fine
    sidewalk = np.array(pal.sidewalk, np.float32)
    ground[streets.sidewalk] = sidewalk + 6 * fine[streets.sidewalk]
    ground[streets.joints] *= 0.82
    ground[streets.kerb] = sidewalk * 0.75
    asphalt = np.array(pal.asphalt, np.float32) + 5 * fine + 6 * smooth_noise(rng, n, 8 / cell)[..., None]
    on_road = streets.on_road
    ground[on_road] = asphalt[on_road]
    del asphalt, fine

    marking, centre_line = np.zeros(n * n, bool), np.zeros(n * n, bool)
    count = streets.road_count.ravel()
    for r, (idx, u, v) in zip(roads, streets.bands):
        au = np.abs(u)
        on_r = au < r.width / 2
        others = count[idx] - on_r > 0
        single = on_r & ~others                             # this road only: not an intersection
        if r.width >= 7:
            centre_line[idx[single & (au < 0.08) & (np.mod(v, 6.0) < 3.0)]] = True
            marking[idx[single & (np.abs(au - (r.width / 2 - 0.35)) < 0.07)]] = True
        if r.width >= 6 and others.any():                   # zebra crossings before each junction
            own = np.zeros(n * n, np.uint8)
            own[idx[on_r]] = 1
            dist_other = grid.distance_to((count - own).reshape(n, n) > 0).ravel()[idx]
            marking[idx[single & (dist_other > 1.0) & (dist_other < 4.0) & (np.mod(u, 1.0) < 0.5)]] = True
    ground[marking.reshape(n, n)] = pal.marking
    ground[centre_line.reshape(n, n)] = pal.centre_line
    return ground
