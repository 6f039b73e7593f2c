"""Procedural 2.5D city: streets, sidewalks, markings, buildings, parked cars and trees.

    world = build_city(city_params, synth_params, seed)

The world is a set of rasters on a metric grid (x = east, y = south, metres; see geometry.py)
plus tables of the objects stamped into them:
- `ground` (N, N, 3) uint8: colour of the z = 0 surface (what a panorama sees on the ground),
- `top` (N, N, 3) uint8: colour seen from straight above (roofs, car roofs, tree canopies),
- `height` (N, N) float32 and `obj` (N, N) int32: solid boxes (buildings and cars), obj = box id + 1,
- `boxes` / `trees`: the objects themselves (trees are drawn as sprites, not as solid columns, so
  that a panorama sees under their canopy while the satellite sees only the canopy).

Cell (r, c) covers x in [x0 + c*cell, x0 + (c+1)*cell) with x0 = -mpp/2, and likewise y; so the
centre of satellite pixel (i, j) (side mpp, `supersample` cells per side) is exactly the point
(j*mpp, i*mpp), the corner shared by four world cells.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from geodistill.config import CityParams, SynthParams
from geodistill.data.synth.palettes import CAR_COLOURS, PALETTES, Palette

KIND_BUILDING, KIND_CAR = 0, 1


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


@dataclass
class Boxes:
    """Oriented solid boxes: buildings and cars. Row k has object id k + 1 in `World.obj`."""

    kind: np.ndarray         # (K,) KIND_BUILDING | KIND_CAR
    centre: np.ndarray       # (K, 2) x, y metres
    angle: np.ndarray        # (K,) radians; local u axis = (cos, sin)
    half: np.ndarray         # (K, 2) half side lengths along u, v
    height: np.ndarray       # (K,)
    wall: np.ndarray         # (K, 3) facade / car body RGB
    accent: np.ndarray       # (K, 3) window / car glass RGB
    spacing: np.ndarray      # (K,) window column spacing (m)
    floor: np.ndarray        # (K,) floor height (m)
    window: np.ndarray       # (K, 2) window width, height as fractions of spacing, floor


@dataclass
class Trees:
    centre: np.ndarray       # (T, 2)
    radius: np.ndarray       # (T,) canopy radius
    bottom: np.ndarray       # (T,) canopy bottom height
    top: np.ndarray          # (T,) canopy top height
    trunk: np.ndarray        # (T,) trunk radius
    colour: np.ndarray       # (T, 3)


@dataclass
class World:
    name: str
    mpp: float               # satellite metres per pixel
    supersample: int
    ground: np.ndarray
    top: np.ndarray
    height: np.ndarray
    obj: np.ndarray
    boxes: Boxes
    trees: Trees
    sat: np.ndarray          # (n_sat, n_sat, 3) uint8 top view at tile resolution, shadows applied
    camera_ok: np.ndarray    # (n_sat, n_sat) bool: satellite pixels where a panorama may be taken
    sun: tuple[float, float]  # satellite capture sun (azimuth, elevation), radians

    @property
    def cell(self) -> float:
        return self.mpp / self.supersample

    @property
    def x0(self) -> float:
        return -self.mpp / 2

    @property
    def size(self) -> int:
        return self.height.shape[0]

    def to_cell(self, x, y):
        """Continuous raster coordinates (col, row) of metric points, cell centres at integers."""
        return (np.asarray(x) - self.x0) / self.cell - 0.5, (np.asarray(y) - self.x0) / self.cell - 0.5


def city_seed(seed: int, name: str, *extra: int) -> np.random.SeedSequence:
    """Seed sequence of one city (and optionally one item in it), stable across list order."""
    return np.random.SeedSequence([seed, zlib.crc32(name.encode()), *extra])


def smooth_noise(rng: np.random.Generator, n: int, feature_cells: float) -> np.ndarray:
    """(n, n) float32 smooth noise with unit-ish amplitude and features of ~feature_cells."""
    k = max(2, int(np.ceil(n / max(feature_cells, 1.0))) + 1)
    small = rng.standard_normal((k, k)).astype(np.float32)
    return cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)


def make_roads(city: CityParams, extent: float, rng: np.random.Generator) -> list[Road]:
    """Two families of streets, perpendicular up to jitter; irregular ones bend and tilt."""
    roads = []
    base = np.radians(city.rotation_deg)
    reach = extent * 1.5  # offsets cover the world whatever the rotation
    for family in (0, 1):
        angle = base + family * np.pi / 2
        offset = -reach + rng.uniform(0, city.block_m[1])
        while offset < reach:
            irregular = city.layout == "irregular"
            roads.append(Road(
                angle=angle + (np.radians(rng.uniform(-12, 12)) if irregular else 0.0),
                offset=offset,
                width=rng.uniform(*city.road_width_m),
                sidewalk=rng.uniform(*city.sidewalk_m),
                amplitude=rng.uniform(0, 8) if irregular else 0.0,
                wavelength=rng.uniform(90, 220),
                phase=rng.uniform(0, 2 * np.pi)))
            offset += rng.uniform(*city.block_m)
    if city.layout == "irregular":  # one diagonal avenue through the centre
        c = np.array([extent / 2, extent / 2])
        angle = base + np.pi / 4 + np.radians(rng.uniform(-15, 15))
        roads.append(Road(angle, float(-c[0] * np.sin(angle) + c[1] * np.cos(angle)),
                          city.road_width_m[1], city.sidewalk_m[1], 0.0, 100.0, 0.0))
    # keep only roads that cross the world
    corners = np.array([[0, 0], [extent, 0], [0, extent], [extent, extent]], dtype=np.float64)
    kept = []
    for r in roads:
        u, _ = r.frame(corners[:, 0], corners[:, 1])
        margin = r.width + r.sidewalk + r.amplitude
        if u.min() < margin and u.max() > -margin:
            kept.append(r)
    return kept


def on_road_of(idx: np.ndarray, on: np.ndarray, n: int) -> np.ndarray:
    """(n, n) uint8 mask of one road's own surface, from its band indices."""
    mask = np.zeros(n * n, np.uint8)
    mask[idx[on]] = 1
    return mask.reshape(n, n)


def _rect_cells(x, y, centre, angle, half):
    """Boolean mask of grid points inside an oriented rectangle."""
    c, s = np.cos(angle), np.sin(angle)
    dx, dy = x - centre[0], y - centre[1]
    return (np.abs(dx * c + dy * s) <= half[0]) & (np.abs(-dx * s + dy * c) <= half[1])


class _Grid:
    """Metric coordinates of the world raster, and bounding-box windows into it."""

    def __init__(self, n: int, cell: float, x0: float):
        self.n, self.cell, self.x0 = n, cell, x0
        coords = (x0 + (np.arange(n, dtype=np.float32) + 0.5) * cell)
        self.x = coords[None, :]
        self.y = coords[:, None]

    def window(self, cx, cy, radius):
        """Slices (rows, cols) of the cells within `radius` of (cx, cy), clipped; None if outside."""
        c0 = int(np.floor((cx - radius - self.x0) / self.cell))
        c1 = int(np.ceil((cx + radius - self.x0) / self.cell)) + 1
        r0 = int(np.floor((cy - radius - self.x0) / self.cell))
        r1 = int(np.ceil((cy + radius - self.x0) / self.cell)) + 1
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, self.n), min(r1, self.n)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)


def build_city(city: CityParams, synth: SynthParams, seed: int) -> World:
    """Generate one city's world, deterministically from (seed, city name)."""
    rng = np.random.default_rng(city_seed(seed, city.name))
    pal: Palette = PALETTES[city.palette]
    ss = synth.world_supersample
    n_sat = int(round(synth.extent_m / city.mpp))
    n = n_sat * ss
    cell = city.mpp / ss
    grid = _Grid(n, cell, -city.mpp / 2)
    extent = n_sat * city.mpp

    roads = make_roads(city, extent, rng)
    road_count = np.zeros((n, n), np.uint8)
    sidewalk = np.zeros((n, n), bool)
    joints = np.zeros((n, n), bool)
    kerb = np.zeros((n, n), bool)
    near_edge = np.full((n, n), np.inf, np.float32)   # distance beyond the nearest road's edge
    near_road = np.zeros((n, n), np.uint8)
    bands = []  # per road: flat indices of its road + sidewalk band, with u, v there
    for i, r in enumerate(roads):
        u, v = r.frame(grid.x, grid.y)
        au = np.abs(u)
        edge = au - r.width / 2
        closer = edge < near_edge
        near_edge[closer] = edge[closer]
        near_road[closer] = i
        idx = np.flatnonzero(edge < r.sidewalk)
        bu, bv, be = u.ravel()[idx], v.ravel()[idx], edge.ravel()[idx]
        bands.append((idx, bu, bv))
        road_count.ravel()[idx] += be < 0
        side = idx[be >= 0]
        sidewalk.ravel()[side] = True
        kerb.ravel()[idx[(be >= 0) & (be < 0.2)]] = True
        joints.ravel()[idx[(be >= 0) & (np.mod(bv, 1.5) < 0.06)]] = True
    del near_edge
    on_road = road_count > 0
    sidewalk &= ~on_road
    kerb &= ~on_road
    joints &= sidewalk

    # -- ground colour -------------------------------------------------------------------------
    lot_noise = smooth_noise(rng, n, 24 / cell)
    lot_choice = np.digitize(lot_noise, [-0.35, 0.45])  # 0, 1, 2
    lots = np.array(pal.lots, np.float32)
    ground = lots[lot_choice]
    fine = smooth_noise(rng, n, 0.6 / cell)[..., None]
    ground += 10 * fine
    ground[sidewalk] = np.array(pal.sidewalk, np.float32) + 6 * fine[sidewalk]
    ground[joints] *= 0.82
    ground[kerb] = np.array(pal.sidewalk, np.float32) * 0.75
    asphalt = np.array(pal.asphalt, np.float32) + 5 * fine + 6 * smooth_noise(rng, n, 8 / cell)[..., None]
    ground[on_road] = asphalt[on_road]
    del asphalt, fine, lot_noise, lot_choice

    marking = np.zeros((n, n), bool)
    centre_line = np.zeros((n, n), bool)
    for r, (idx, u, v) in zip(roads, bands):
        au = np.abs(u)
        on_r = au < r.width / 2
        others = road_count.ravel()[idx] - on_r > 0
        single = on_r & ~others
        if r.width >= 7:
            centre_line.ravel()[idx[single & (au < 0.08) & (np.mod(v, 6.0) < 3.0)]] = True
            marking.ravel()[idx[single & (np.abs(au - (r.width / 2 - 0.35)) < 0.07)]] = True
        if r.width >= 6 and others.any():
            other_mask = (road_count - on_road_of(idx, on_r, n)) > 0
            dist_other = (cv2.distanceTransform((~other_mask).astype(np.uint8), cv2.DIST_L2, 5) * cell).ravel()[idx]
            crossing = single & (dist_other > 1.0) & (dist_other < 4.0) & (np.mod(u, 1.0) < 0.5)
            marking.ravel()[idx[crossing]] = True
    del bands
    ground[marking] = pal.marking
    ground[centre_line] = pal.centre_line
    del marking, centre_line

    height = np.zeros((n, n), np.float32)
    obj = np.zeros((n, n), np.int32)
    top = None  # filled after objects
    boxes: dict[str, list] = {k: [] for k in Boxes.__dataclass_fields__}

    def add_box(kind, centre, angle, half, h, wall, accent, spacing, floor, window, cells, sl):
        boxes["kind"].append(kind)
        boxes["centre"].append(centre)
        boxes["angle"].append(angle)
        boxes["half"].append(half)
        boxes["height"].append(h)
        boxes["wall"].append(wall)
        boxes["accent"].append(accent)
        boxes["spacing"].append(spacing)
        boxes["floor"].append(floor)
        boxes["window"].append(window)
        height[sl][cells] = h
        obj[sl][cells] = len(boxes["kind"])

    # -- buildings: rejection sampling inside blocks, aligned with the nearest street ----------
    block = ~on_road & ~sidewalk
    dist_street = cv2.distanceTransform(block.astype(np.uint8), cv2.DIST_L2, 5) * cell
    styles = [dict(wall=np.array(pal.facades[rng.integers(len(pal.facades))], np.float32) * rng.uniform(0.9, 1.1),
                   accent=np.array(pal.windows[rng.integers(len(pal.windows))], np.float32),
                   spacing=rng.uniform(2.2, 3.6), floor=rng.uniform(3.0, 3.6),
                   window=(rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.62)))
              for _ in range(city.facade_styles)]
    candidates = np.flatnonzero(dist_street > city.setback_m[0] + city.building_size_m[0] / 2)
    target_area = city.building_fill * block.sum() * cell * cell
    mean_area = np.mean(city.building_size_m) ** 2
    built_area, attempts = 0.0, 0
    max_attempts = int(40 * target_area / mean_area) + 10
    while candidates.size and built_area < 0.85 * target_area and attempts < max_attempts:
        attempts += 1
        idx = candidates[rng.integers(candidates.size)]
        cy, cx = (idx // n + 0.5) * cell + grid.x0, (idx % n + 0.5) * cell + grid.x0
        half = rng.uniform(*city.building_size_m, size=2) / 2
        near = roads[near_road.ravel()[idx]]
        angle = float(near.tangent_angle(near.frame(cx, cy)[1]))
        setback = rng.uniform(*city.setback_m)
        sl = grid.window(cx, cy, float(np.hypot(*half)) + cell)
        if sl is None:
            continue
        cells = _rect_cells(grid.x[:, sl[1]], grid.y[sl[0], :], (cx, cy), angle, half)
        if not cells.any() or (dist_street[sl][cells] < setback).any() or (obj[sl][cells] != 0).any():
            continue
        style = styles[rng.integers(len(styles))]
        floors = rng.integers(city.floors[0], city.floors[1] + 1)
        add_box(KIND_BUILDING, (cx, cy), angle, half, floors * style["floor"] + rng.uniform(0.3, 1.0),
                style["wall"], style["accent"], style["spacing"], style["floor"], style["window"], cells, sl)
        built_area += cells.sum() * cell * cell
    n_buildings = len(boxes["kind"])

    # -- parked cars along the kerbs ----------------------------------------------------------
    for r in roads:
        if r.width < 7:
            continue
        for side in (-1.0, 1.0):
            v = -extent * 1.5 + rng.uniform(0, r.width)
            while v < extent * 1.5:
                v += city.parked_car_spacing_m * rng.uniform(0.8, 1.5)
                x, y = r.point(v, side * (r.width / 2 - 1.15))
                if not (0 <= x < extent and 0 <= y < extent) or rng.random() < 0.3:
                    continue
                half = np.array([rng.uniform(2.1, 2.45), rng.uniform(0.85, 0.95)])
                angle = float(r.tangent_angle(v))
                sl = grid.window(x, y, 2.6)
                if sl is None:
                    continue
                cells = _rect_cells(grid.x[:, sl[1]], grid.y[sl[0], :], (x, y), angle, half)
                if not cells.any() or (road_count[sl][cells] != 1).any() or (obj[sl][cells] != 0).any():
                    continue
                body = np.array(CAR_COLOURS[rng.integers(len(CAR_COLOURS))], np.float32)
                add_box(KIND_CAR, (x, y), angle, half, rng.uniform(1.4, 1.6), body,
                        np.array((34, 40, 48), np.float32), 1.0, 1.0, (1.0, 1.0), cells, sl)

    box_arrays = Boxes(**{k: np.array(v, np.float64 if k != "kind" else np.int32).reshape(len(v), -1).squeeze(-1)
                          if k in ("kind", "angle", "height", "spacing", "floor")
                          else np.array(v, np.float64).reshape(len(v), -1)
                          for k, v in boxes.items()})

    # -- trees: street trees on sidewalks, park trees in open blocks ---------------------------
    tree_rows = []
    free = block & (obj == 0)
    dist_obj = cv2.distanceTransform((obj == 0).astype(np.uint8), cv2.DIST_L2, 5) * cell

    def try_tree(x, y, allowed):
        c, rr = int(np.floor((x - grid.x0) / cell)), int(np.floor((y - grid.x0) / cell))
        if not (0 <= c < n and 0 <= rr < n):
            return
        radius = rng.uniform(1.6, 3.2)
        if not allowed[rr, c] or dist_obj[rr, c] < 1.0:
            return
        bottom = rng.uniform(2.6, 3.6)
        tree_rows.append((x, y, radius, bottom, bottom + rng.uniform(2.5, 6.5), rng.uniform(0.14, 0.24),
                          *np.array(pal.canopy[rng.integers(len(pal.canopy))]) * rng.uniform(0.85, 1.15)))

    for r in roads:
        for side in (-1.0, 1.0):
            v = -extent * 1.5 + rng.uniform(0, city.street_tree_spacing_m)
            while v < extent * 1.5:
                v += city.street_tree_spacing_m * rng.uniform(0.85, 1.2)
                x, y = r.point(v, side * (r.width / 2 + 0.6))
                try_tree(x, y, sidewalk)
    n_park = rng.poisson(city.park_trees_per_ha * free.sum() * cell * cell / 1e4)
    free_idx = np.flatnonzero(free)
    for idx in rng.choice(free_idx, size=min(n_park, free_idx.size), replace=False) if free_idx.size else []:
        try_tree((idx % n + 0.5) * cell + grid.x0, (idx // n + 0.5) * cell + grid.x0, free)
    t = np.array(tree_rows, np.float64).reshape(-1, 9)
    trees = Trees(centre=t[:, 0:2], radius=t[:, 2], bottom=t[:, 3], top=t[:, 4], trunk=t[:, 5], colour=t[:, 6:9])

    # -- top view: ground, then roofs and car roofs, then canopies -----------------------------
    top = ground.copy()
    caster = height.copy()
    canopy = np.zeros((n, n), bool)
    for k in range(len(box_arrays.kind)):
        sl = grid.window(*box_arrays.centre[k], float(np.hypot(*box_arrays.half[k])) + cell)
        cells = obj[sl] == k + 1
        if box_arrays.kind[k] == KIND_BUILDING:
            roof = np.array(pal.roofs[rng.integers(len(pal.roofs))], np.float32) * rng.uniform(0.9, 1.1)
            inner = cv2.erode(cells.astype(np.uint8), np.ones((3, 3), np.uint8),
                              iterations=max(1, int(0.5 / cell))).astype(bool)
            patch = top[sl]
            patch[cells] = roof * 0.8
            tex = rng.normal(0, 5, size=(int(inner.sum()), 1)).astype(np.float32)
            patch[inner] = roof + tex
            for _ in range(rng.integers(0, 4)):  # rooftop units
                ys, xs = np.nonzero(inner)
                if ys.size == 0:
                    break
                j = rng.integers(ys.size)
                s = max(1, int(rng.uniform(0.8, 2.0) / cell))
                unit = np.zeros_like(inner)
                unit[ys[j]:ys[j] + s, xs[j]:xs[j] + s] = True
                patch[unit & inner] = np.minimum(roof * 1.35 + 20, 255)
        else:
            u_loc = ((grid.x[:, sl[1]] - box_arrays.centre[k, 0]) * np.cos(box_arrays.angle[k])
                     + (grid.y[sl[0], :] - box_arrays.centre[k, 1]) * np.sin(box_arrays.angle[k]))
            patch = top[sl]
            glass = cells & (np.abs(u_loc - 0.6) < 0.45)
            patch[cells] = box_arrays.wall[k]
            patch[glass] = box_arrays.accent[k]
    for k in range(len(trees.radius)):
        x, y = trees.centre[k]
        sl = grid.window(x, y, trees.radius[k] + cell)
        if sl is None:
            continue
        rho = np.hypot(grid.x[:, sl[1]] - x, grid.y[sl[0], :] - y) / trees.radius[k]
        disk = rho <= 1.0
        shade = (0.7 + 0.45 * np.sqrt(np.clip(1 - rho ** 2, 0, 1)))[..., None]
        leaf = trees.colour[k] * shade * (1 + 0.12 * rng.standard_normal(rho.shape + (1,)))
        top[sl][disk] = leaf[disk]
        caster[sl][disk] = np.maximum(caster[sl][disk], trees.top[k])
        canopy[sl] |= rho <= 1.0 + 0.5 / trees.radius[k]

    ground_u8 = np.clip(ground, 0, 255).round().astype(np.uint8)
    top_u8 = np.clip(top, 0, 255).round().astype(np.uint8)
    del ground, top

    sun = (rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(*synth.appearance.sun_elevation_deg)))
    sat = _area_downsample(top_u8, ss)
    shadow = cast_shadows(caster, cell, sun, ss * 2)
    sat = np.clip(sat * (1 - synth.appearance.sat_shadow_strength * shadow[..., None]), 0, 255).round().astype(np.uint8)

    # -- where panoramas may be taken: on a road, in the open, not under a canopy --------------
    open_road = on_road & (dist_obj >= 1.0) & ~canopy
    camera_ok = open_road.reshape(n_sat, ss, n_sat, ss).all(axis=(1, 3))
    return World(city.name, city.mpp, ss, ground_u8, top_u8, height, obj, box_arrays, trees, sat, camera_ok, sun)


def _area_downsample(img: np.ndarray, f: int) -> np.ndarray:
    """Exact f×f block mean (float32), so a tile pixel is the mean of the world cells it covers."""
    if f == 1:
        return img.astype(np.float32)
    h, w = img.shape[:2]
    return img.reshape(h // f, f, w // f, f, -1).astype(np.float32).mean(axis=(1, 3)).squeeze()


def cast_shadows(caster: np.ndarray, cell: float, sun: tuple[float, float], factor: int) -> np.ndarray:
    """Soft shadow mask (n/factor*... at tile resolution) of a height field lit by the sun.

    Computed on a grid `factor` times coarser than `caster` (max-pooled) and returned at half that
    coarsening (tile resolution when factor = 2 * supersample), bilinear in between: penumbra-like.
    """
    n = caster.shape[0]
    m = n // factor
    h = caster[: m * factor, : m * factor].reshape(m, factor, m, factor).max(axis=(1, 3))
    step = cell * factor
    azimuth, elevation = sun
    # the sun lies towards azimuth (clockwise from north); in (x east, y south) that is (sin, -cos)
    dx, dy = np.sin(azimuth), -np.cos(azimuth)
    rise = np.tan(elevation) * step
    shadow = np.zeros_like(h, dtype=bool)
    max_t = int(np.ceil(h.max() / max(rise, 1e-6))) if h.max() > 0 else 0
    for t in range(1, min(max_t, m) + 1):
        ox, oy = int(round(t * dx)), int(round(t * dy))
        if abs(ox) >= m or abs(oy) >= m:
            break
        src = h[max(oy, 0): m + min(oy, 0), max(ox, 0): m + min(ox, 0)]
        dst = (slice(max(-oy, 0), m + min(-oy, 0)), slice(max(-ox, 0), m + min(-ox, 0)))
        shadow[dst] |= src - t * rise > h[dst] + 0.05
    out = cv2.resize(shadow.astype(np.float32), (m * 2, m * 2), interpolation=cv2.INTER_LINEAR)
    target = n * 2 // factor
    if out.shape[0] != target:
        out = cv2.resize(out, (target, target), interpolation=cv2.INTER_LINEAR)
    return out
