"""Procedural 2.5D city: streets, sidewalks, markings, buildings, parked cars and trees.

    world = build_city(city_params, synth_params, seed)

The world is a set of rasters on a metric grid (x = east, y = south, metres; see geometry.py)
plus tables of the objects stamped into them:
- `ground` (N, N, 3) uint8: colour of the z = 0 surface (what a panorama sees on the ground),
- `top` (N, N, 3) uint8: colour seen from straight above (roofs, car roofs, tree canopies),
- `height` (N, N) float32 and `obj` (N, N) int32: solid boxes (buildings and cars), obj = box id + 1,
- `boxes` / `trees`: the objects themselves (trees are drawn as sprites, not as solid columns, so
  that a panorama sees under their canopy while the satellite sees only the canopy),
- `roads` / `near_road`: the street network and the index of each cell's nearest road, where
  the renderer places traffic seen by one panorama only (render.py).
Difficulty knobs that differ between the views: leafy streets whose crowns close over the road
(`leafy_street_fraction`), cameras under crowns (`cameras_under_canopy`), parked cars that
left before the panoramas were taken (`parked_car_turnover`: in the satellite image only) and
clouds over parts of the satellite mosaic (`appearance.sat_cloud_cover`). Each draws from its
own random stream, so with the knob at 0 the world is what it was without it.

Cell (r, c) covers x in [x0 + c*cell, x0 + (c+1)*cell) with x0 = -mpp/2, and likewise y; so the
centre of satellite pixel (i, j) (side mpp, `supersample` cells per side) is exactly the point
(j*mpp, i*mpp), the corner shared by four world cells.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from geodistill.config import CityParams, SynthParams
from geodistill.data.synth.palettes import CAR_COLOURS, PALETTES, Palette
from geodistill.data.synth.raster import Grid, city_seed, smooth_noise
from geodistill.data.synth.streets import Road, Streets, lay_streets, make_roads, paint_ground

__all__ = ["KIND_BUILDING", "KIND_CAR", "Boxes", "Trees", "World", "build_city", "city_seed", "cast_shadows"]

KIND_BUILDING, KIND_CAR = 0, 1
CLOUD_WHITE = 235.0


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
    roads: list[Road] = field(default_factory=list)
    near_road: np.ndarray | None = None   # (N, N) uint8 index into roads

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


class _BoxStamper:
    """Collects boxes while stamping their footprints into the height and object rasters."""

    def __init__(self, height: np.ndarray, obj: np.ndarray):
        self.height, self.obj, self.rows = height, obj, []

    def add(self, win, cells, **row) -> None:
        self.rows.append(row)
        self.height[win][cells] = row["height"]
        self.obj[win][cells] = len(self.rows)

    def boxes(self) -> Boxes:
        col = lambda key, shape: np.array([r[key] for r in self.rows], np.float64).reshape(shape)
        return Boxes(kind=np.array([r["kind"] for r in self.rows], np.int32), centre=col("centre", (-1, 2)),
                     angle=col("angle", -1), half=col("half", (-1, 2)), height=col("height", -1),
                     wall=col("wall", (-1, 3)), accent=col("accent", (-1, 3)), spacing=col("spacing", -1),
                     floor=col("floor", -1), window=col("window", (-1, 2)))


def place_buildings(city: CityParams, pal: Palette, roads: list[Road], streets: Streets, grid: Grid,
                    stamp: _BoxStamper, rng: np.random.Generator) -> None:
    """Rejection-sample footprints inside blocks, aligned with the nearest street, until filled."""
    cell = grid.cell
    block = ~streets.on_road & ~streets.sidewalk
    dist_street = grid.distance_to(~block)
    styles = [dict(wall=np.array(pal.facades[rng.integers(len(pal.facades))], np.float32) * rng.uniform(0.9, 1.1),
                   accent=np.array(pal.windows[rng.integers(len(pal.windows))], np.float32),
                   spacing=rng.uniform(2.2, 3.6), floor=rng.uniform(3.0, 3.6),
                   window=(rng.uniform(0.35, 0.65), rng.uniform(0.4, 0.62)))
              for _ in range(city.facade_styles)]
    candidates = np.flatnonzero(dist_street > city.setback_m[0] + city.building_size_m[0] / 2)
    target_area = city.building_fill * block.sum() * cell * cell
    max_attempts = int(40 * target_area / np.mean(city.building_size_m) ** 2) + 10
    built_area, attempts = 0.0, 0
    while candidates.size and built_area < 0.85 * target_area and attempts < max_attempts:
        attempts += 1
        idx = candidates[rng.integers(candidates.size)]
        cx, cy = grid.centre_of(idx)
        half = rng.uniform(*city.building_size_m, size=2) / 2
        near = roads[streets.near_road.ravel()[idx]]
        angle = float(near.tangent_angle(near.frame(cx, cy)[1]))
        setback = rng.uniform(*city.setback_m)
        win = grid.window(cx, cy, float(np.hypot(*half)) + cell)
        if win is None:
            continue
        cells = grid.rect(win, (cx, cy), angle, half)
        if not cells.any() or (dist_street[win][cells] < setback).any() or (stamp.obj[win][cells] != 0).any():
            continue
        style = styles[rng.integers(len(styles))]
        floors = rng.integers(city.floors[0], city.floors[1] + 1)
        stamp.add(win, cells, kind=KIND_BUILDING, centre=(cx, cy), angle=angle, half=half,
                  height=floors * style["floor"] + rng.uniform(0.3, 1.0), **style)
        built_area += cells.sum() * cell * cell


def park_cars(city: CityParams, roads: list[Road], streets: Streets, grid: Grid, extent: float,
              stamp: _BoxStamper, rng: np.random.Generator, turnover: float,
              turnover_rng: np.random.Generator) -> list[dict]:
    """Parked cars along both kerbs of every road wide enough, away from junctions. A share
    `turnover` of them left before the panoramas were taken: they are returned (seen from above
    only) instead of stamped into the solid world."""
    gone, gone_cells = [], np.zeros(stamp.obj.shape, bool)
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
                win = grid.window(x, y, 2.6)
                if win is None:
                    continue
                cells = grid.rect(win, (x, y), angle, half)
                if (not cells.any() or (streets.road_count[win][cells] != 1).any()
                        or (stamp.obj[win][cells] != 0).any() or gone_cells[win][cells].any()):
                    continue
                body = np.array(CAR_COLOURS[rng.integers(len(CAR_COLOURS))], np.float32)
                car = dict(kind=KIND_CAR, centre=(x, y), angle=angle, half=half, height=rng.uniform(1.4, 1.6),
                           wall=body, accent=(34, 40, 48), spacing=1.0, floor=1.0, window=(1.0, 1.0))
                if turnover > 0 and turnover_rng.random() < turnover:
                    gone.append(car | dict(win=win, cells=cells))
                    gone_cells[win][cells] = True
                else:
                    stamp.add(win, cells, **car)
    return gone


def plant_trees(city: CityParams, pal: Palette, roads: list[Road], streets: Streets, grid: Grid,
                extent: float, free: np.ndarray, dist_obj: np.ndarray, rng: np.random.Generator,
                leafy: np.ndarray) -> Trees:
    """Street trees along the sidewalks and park trees in open blocks, clear of solid objects.
    Roads with `leafy` (R,) True get large crowns (city.leafy_tree_radius_m) planted so close
    that they touch: seen from above, the road under them is hidden."""
    rows = []

    def try_tree(x, y, allowed, radius_m=(1.6, 3.2)):
        at = grid.cell_of(x, y)
        if at is None:
            return
        radius = rng.uniform(*radius_m)
        if not allowed[at] or dist_obj[at] < 1.0:
            return
        bottom = rng.uniform(2.6, 3.6)
        rows.append((x, y, radius, bottom, bottom + rng.uniform(2.5, 6.5), rng.uniform(0.14, 0.24),
                     *np.array(pal.canopy[rng.integers(len(pal.canopy))]) * rng.uniform(0.85, 1.15)))

    for r, is_leafy in zip(roads, leafy):
        radius_m = tuple(city.leafy_tree_radius_m) if is_leafy else (1.6, 3.2)
        spacing = 1.6 * np.mean(radius_m) if is_leafy else city.street_tree_spacing_m
        for side in (-1.0, 1.0):
            v = -extent * 1.5 + rng.uniform(0, spacing)
            while v < extent * 1.5:
                v += spacing * rng.uniform(0.85, 1.2)
                try_tree(*r.point(v, side * (r.width / 2 + 0.6)), streets.sidewalk, radius_m)
    n_park = rng.poisson(city.park_trees_per_ha * free.sum() * grid.cell ** 2 / 1e4)
    free_idx = np.flatnonzero(free)
    for idx in rng.choice(free_idx, size=min(n_park, free_idx.size), replace=False) if free_idx.size else []:
        try_tree(*grid.centre_of(idx), free)
    t = np.array(rows, np.float64).reshape(-1, 9)
    return Trees(centre=t[:, 0:2], radius=t[:, 2], bottom=t[:, 3], top=t[:, 4], trunk=t[:, 5], colour=t[:, 6:9])


def top_view(ground: np.ndarray, boxes: Boxes, trees: Trees, obj: np.ndarray, height: np.ndarray,
             pal: Palette, grid: Grid, rng: np.random.Generator, gone: list[dict] = ()):
    """Colour seen from above (roofs, car roofs, canopies over the ground), the height field that
    casts shadows (canopies included) and the canopy footprint (dilated by 0.5 m). `gone`: parked
    cars seen from above only (park_cars)."""
    cell = grid.cell
    top, caster = ground.copy(), height.copy()
    canopy = np.zeros(height.shape, bool)
    for car in gone:
        win, cells = car["win"], car["cells"]
        u_loc = ((grid.x[:, win[1]] - car["centre"][0]) * np.cos(car["angle"])
                 + (grid.y[win[0], :] - car["centre"][1]) * np.sin(car["angle"]))
        top[win][cells] = car["wall"]
        top[win][cells & (np.abs(u_loc - 0.6) < 0.45)] = car["accent"]
        caster[win][cells] = car["height"]
    for k in range(len(boxes.kind)):
        win = grid.window(*boxes.centre[k], float(np.hypot(*boxes.half[k])) + cell)
        cells = obj[win] == k + 1
        patch = top[win]
        if boxes.kind[k] == KIND_BUILDING:
            roof = np.array(pal.roofs[rng.integers(len(pal.roofs))], np.float32) * rng.uniform(0.9, 1.1)
            inner = cv2.erode(cells.astype(np.uint8), np.ones((3, 3), np.uint8),
                              iterations=max(1, int(0.5 / cell))).astype(bool)
            patch[cells] = roof * 0.8                                       # parapet
            patch[inner] = roof + rng.normal(0, 5, size=(int(inner.sum()), 1)).astype(np.float32)
            for _ in range(rng.integers(0, 4)):                            # rooftop units
                ys, xs = np.nonzero(inner)
                if ys.size == 0:
                    break
                j = rng.integers(ys.size)
                s = max(1, int(rng.uniform(0.8, 2.0) / cell))
                unit = np.zeros_like(inner)
                unit[ys[j]:ys[j] + s, xs[j]:xs[j] + s] = True
                patch[unit & inner] = np.minimum(roof * 1.35 + 20, 255)
        else:                                                               # car: body, windscreen
            u_loc = ((grid.x[:, win[1]] - boxes.centre[k, 0]) * np.cos(boxes.angle[k])
                     + (grid.y[win[0], :] - boxes.centre[k, 1]) * np.sin(boxes.angle[k]))
            patch[cells] = boxes.wall[k]
            patch[cells & (np.abs(u_loc - 0.6) < 0.45)] = boxes.accent[k]
    for k in range(len(trees.radius)):
        x, y = trees.centre[k]
        win = grid.window(x, y, trees.radius[k] + cell)
        if win is None:
            continue
        rho = np.hypot(grid.x[:, win[1]] - x, grid.y[win[0], :] - y) / trees.radius[k]
        disk = rho <= 1.0
        shade = (0.7 + 0.45 * np.sqrt(np.clip(1 - rho ** 2, 0, 1)))[..., None]
        leaf = trees.colour[k] * shade * (1 + 0.12 * rng.standard_normal(rho.shape + (1,)))
        top[win][disk] = leaf[disk]
        caster[win][disk] = np.maximum(caster[win][disk], trees.top[k])
        canopy[win] |= rho <= 1.0 + 0.5 / trees.radius[k]
    return top, caster, canopy


def build_city(city: CityParams, synth: SynthParams, seed: int) -> World:
    """Generate one city's world, deterministically from (seed, city name)."""
    rng = np.random.default_rng(city_seed(seed, city.name))
    pal = PALETTES[city.palette]
    ss = synth.world_supersample
    n_sat = int(round(synth.extent_m / city.mpp))
    grid = Grid(n_sat * ss, city.mpp / ss, -city.mpp / 2)
    extent = n_sat * city.mpp

    roads = make_roads(city, extent, rng)
    streets = lay_streets(roads, grid)
    ground = paint_ground(streets, roads, grid, pal, rng)
    streets.bands = []                                    # only needed for painting

    height = np.zeros((grid.n, grid.n), np.float32)
    obj = np.zeros((grid.n, grid.n), np.int32)
    stamp = _BoxStamper(height, obj)
    place_buildings(city, pal, roads, streets, grid, stamp, rng)
    knobs = np.random.default_rng(city_seed(seed, city.name, 7))    # the difficulty knobs' own stream
    gone = park_cars(city, roads, streets, grid, extent, stamp, rng, synth.parked_car_turnover, knobs)
    boxes = stamp.boxes()

    solid = obj != 0                                      # gone cars included: only the panoramas miss them
    for car in gone:
        solid[car["win"]] |= car["cells"]
    free = ~streets.on_road & ~streets.sidewalk & ~solid
    dist_obj = grid.distance_to(solid)
    leafy = knobs.random(len(roads)) < city.leafy_street_fraction
    trees = plant_trees(city, pal, roads, streets, grid, extent, free, dist_obj, rng, leafy)
    top, caster, canopy = top_view(ground, boxes, trees, obj, height, pal, grid, rng, gone)
    to_u8 = lambda a: np.clip(a, 0, 255).round().astype(np.uint8)
    ground, top = to_u8(ground), to_u8(top)

    sun = (rng.uniform(0, 2 * np.pi), np.radians(rng.uniform(*synth.appearance.sun_elevation_deg)))
    shadow = cast_shadows(caster, grid.cell, sun, ss * 2)
    sat = _area_downsample(top, ss) * (1 - synth.appearance.sat_shadow_strength * shadow[..., None])
    sat = to_u8(cover_with_clouds(sat, city.mpp, synth.appearance, knobs))

    # where panoramas may be taken: on a road, at least 1 m from any object, under a canopy only if allowed
    open_road = streets.on_road & (dist_obj >= 1.0)
    if not synth.cameras_under_canopy:
        open_road &= ~canopy
    camera_ok = open_road.reshape(n_sat, ss, n_sat, ss).all(axis=(1, 3))
    return World(city.name, city.mpp, ss, ground, top, height, obj, boxes, trees, sat, camera_ok, sun,
                 roads, streets.near_road)


def cloud_layer(n: int, mpp: float, cover: float, size_m: float, rng: np.random.Generator) -> np.ndarray:
    """(n, n) float32 cloud density in [0, 1] over a satellite mosaic of n pixels at mpp: smooth
    noise with blobs of about size_m, thresholded so that a share `cover` of the pixels has
    density above 1/2, with a soft edge of about a tenth of size_m."""
    if cover <= 0:
        return np.zeros((n, n), np.float32)
    noise = smooth_noise(rng, n, 0.8 * size_m / mpp)
    level = np.quantile(noise, 1 - cover)
    edge = max(float(noise.std()) * 0.2, 1e-6)
    return np.clip((noise - level) / edge + 0.5, 0, 1).astype(np.float32)


def cover_with_clouds(sat: np.ndarray, mpp: float, look, rng: np.random.Generator) -> np.ndarray:
    """The satellite mosaic (n, n, 3) float under clouds: where the density is d, the ground is
    seen through d * sat_cloud_opacity of white haze (appearance params; nothing when cover 0)."""
    d = cloud_layer(sat.shape[0], mpp, look.sat_cloud_cover, look.sat_cloud_size_m, rng)[..., None]
    alpha = look.sat_cloud_opacity * d
    return sat * (1 - alpha) + CLOUD_WHITE * alpha


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
