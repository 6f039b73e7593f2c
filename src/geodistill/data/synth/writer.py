"""Write the synthetic world to disk exactly as VIGOR is laid out (see data/vigor.py).

    geodistill synth --config params.yaml --out data/world

The cities' worlds are built first, in parallel (one process each, `synth.workers` at a
time, the largest first);
then per city: pick panorama positions on open road (snapped to satellite pixel
centres, so every label delta is an exact integer), render the panoramas in parallel, write the
tiles they need (a grid of tiles whose centres are half a tile apart, as VIGOR), then the label
files and `dataset.json`. The output is built under `<out>.partial` and renamed at the end, so
an interrupted run never looks complete. Same params and seed give identical bytes.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from geodistill import __version__
from geodistill.config import CityParams, SynthParams
from geodistill.data import vigor
from geodistill.data.synth.render import PanoLook, render_panorama
from geodistill.data.synth.transients import place_transients
from geodistill.data.synth.world import World, build_city, city_seed
from geodistill.geometry import metres_to_latlon
from geodistill.io import atomic_dir
from geodistill.parallel import fork_map, resolve_workers

log = logging.getLogger(__name__)
WORLD_FORMAT = 1
_ID_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


@dataclass(frozen=True)
class Camera:
    index: int
    row: int          # satellite pixel of the camera in the city raster (row = south)
    col: int
    pano_id: str
    lat: float
    lon: float

    @property
    def filename(self) -> str:
        return vigor.pano_filename(self.pano_id, self.lat, self.lon)


def tile_centres(row: int, col: int, sat_size: int) -> list[tuple[int, int]]:
    """Positive tile (camera in its central quarter) then the 3 semi-positives, VIGOR's order.

    Tile centres lie on a grid of pitch sat_size/2 pixels. The positive is the nearest centre;
    the semi-positives are its neighbours towards the camera: horizontal, vertical, diagonal.
    """
    half = sat_size // 2
    ti, tj = int(np.floor(row / half + 0.5)) * half, int(np.floor(col / half + 0.5)) * half
    si = half if row >= ti else -half
    sj = half if col >= tj else -half
    return [(ti, tj), (ti, tj + sj), (ti + si, tj), (ti + si, tj + sj)]


def latlon_of_pixel(city: CityParams, row: float, col: float) -> tuple[float, float]:
    """Geographic position of a city-raster satellite pixel centre (x = col*mpp east, y = row*mpp south)."""
    lat, lon = metres_to_latlon(col * city.mpp, -row * city.mpp, tuple(city.origin))
    return float(lat), float(lon)


def choose_cameras(world: World, city: CityParams, synth: SynthParams) -> list[Camera]:
    """Panorama positions: distinct open-road pixels whose four tiles all lie inside the world."""
    S = synth.sat_size
    ok = world.camera_ok.copy()
    ok[:S], ok[-S:], ok[:, :S], ok[:, -S:] = False, False, False, False
    candidates = np.flatnonzero(ok)
    n = synth.panoramas_per_city
    if candidates.size < n:
        raise ValueError(f"city {city.name}: only {candidates.size} open-road positions for "
                         f"{n} panoramas; raise synth.extent_m or lower synth.panoramas_per_city")
    rng = np.random.default_rng(city_seed(synth.seed, city.name, 1))
    picks = rng.choice(candidates, size=n, replace=False)
    ids = rng.integers(0, _ID_ALPHABET.size, size=(n, 22))
    cams = []
    for k, (flat, id_row) in enumerate(zip(picks, ids)):
        r, c = divmod(int(flat), ok.shape[1])
        lat, lon = latlon_of_pixel(city, r, c)
        cams.append(Camera(k, r, c, "".join(_ID_ALPHABET[id_row]), lat, lon))
    return cams


# -- rendering in worker processes (the world is inherited by fork, never pickled) ------------
_JOB: dict = {}


def _render_one(cam: Camera) -> None:
    world, synth, folder = _JOB["world"], _JOB["synth"], _JOB["folder"]
    look = PanoLook.draw(np.random.default_rng(city_seed(synth.seed, world.name, 2, cam.index)), synth.appearance)
    knobs = np.random.default_rng(city_seed(synth.seed, world.name, 5, cam.index))   # the difficulty knobs' stream
    x, y = cam.col * world.mpp, cam.row * world.mpp
    jitter = synth.camera_height_jitter_m
    cam_h = synth.camera_height_m + (knobs.uniform(-jitter, jitter) if jitter > 0 else 0.0)
    traffic = place_transients(world, x, y, synth.transients, knobs)
    W, H = synth.pano_size
    rgb, _ = render_panorama(world, x, y, cam_h, W, H, synth.max_range_m, look, traffic)
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, synth.jpeg_quality])
    (folder / cam.filename).write_bytes(buf.tobytes())


def render_panoramas(world: World, synth: SynthParams, cams: list[Camera], folder: Path, workers: int) -> None:
    _JOB.update(world=world, synth=synth, folder=folder)
    try:
        for _ in fork_map(_render_one, cams, workers, f"{world.name} panoramas", "pano"):
            pass
    finally:
        _JOB.clear()


def write_tile(world: World, city: CityParams, synth: SynthParams, ti: int, tj: int, folder: Path) -> str:
    """Crop, degrade (colour gain, sensor noise) and write one tile; returns its file name."""
    S, half = synth.sat_size, synth.sat_size // 2
    tile = world.sat[ti - half: ti + half, tj - half: tj + half].astype(np.float32)
    rng = np.random.default_rng(city_seed(synth.seed, city.name, 3, ti, tj))
    look = synth.appearance
    tile *= 1 + rng.uniform(-look.sat_colour_jitter, look.sat_colour_jitter, size=3).astype(np.float32)
    if look.sat_noise_std > 0:
        tile += rng.normal(0, look.sat_noise_std, tile.shape).astype(np.float32)
    name = vigor.sat_filename(*latlon_of_pixel(city, ti, tj))
    assert tile.shape[:2] == (S, S)
    cv2.imwrite(str(folder / name), np.clip(tile, 0, 255).round().astype(np.uint8)[..., ::-1],
                [cv2.IMWRITE_PNG_COMPRESSION, 3])
    return name


def _build_world(job: tuple[CityParams, SynthParams]) -> tuple[World, float]:
    city, synth = job
    t0 = time.perf_counter()
    return build_city(city, synth, synth.seed), time.perf_counter() - t0


def write_city(world: World, city: CityParams, synth: SynthParams, root: Path, workers: int, t_world: float) -> dict:
    t0 = time.perf_counter()
    cams = choose_cameras(world, city, synth)
    pano_dir, sat_dir = root / city.name / "panorama", root / city.name / "satellite"
    pano_dir.mkdir(parents=True)
    sat_dir.mkdir(parents=True)
    render_panoramas(world, synth, cams, pano_dir, workers)
    t_pano = time.perf_counter() - t0

    tiles: dict[tuple[int, int], str] = {}
    lines = []
    for cam in cams:
        centres = tile_centres(cam.row, cam.col, synth.sat_size)
        names = []
        for c in centres:
            if c not in tiles:
                tiles[c] = write_tile(world, city, synth, *c, sat_dir)
            names.append(tiles[c])
        deltas = tuple((float(cam.row - ti), float(tj - cam.col)) for ti, tj in centres)
        lines.append(vigor.LabelLine(cam.filename, tuple(names), deltas).format())

    rng = np.random.default_rng(city_seed(synth.seed, city.name, 4))
    is_test = np.zeros(len(lines), bool)
    is_test[rng.permutation(len(lines))[: int(round(synth.test_fraction * len(lines)))]] = True
    split_dir = root / vigor.SPLIT_DIR / city.name
    split_dir.mkdir(parents=True)
    for path, keep in ((vigor.label_path(root, city.name, "train"), ~is_test),
                       (vigor.label_path(root, city.name, "test"), is_test),
                       (vigor.label_path(root, city.name, "all"), np.ones_like(is_test))):
        path.write_text("".join(line + "\n" for line, k in zip(lines, keep) if k))
    log.info("%s: world %.1fs, %d panoramas %.1fs (%.1f/s), %d tiles", city.name, t_world, len(cams),
             t_pano, len(cams) / max(t_pano, 1e-9), len(tiles))
    return {"mpp": city.mpp, "origin": list(city.origin), "panoramas": len(cams), "tiles": len(tiles),
            "train": int((~is_test).sum()), "test": int(is_test.sum()),
            "layout": city.layout, "palette": city.palette}


def build_order(synth: SynthParams) -> list[int]:
    """The cities' indices, largest world raster first (finest `mpp`: every city spans
    `extent_m`): a world's build time grows with its cells, and starting the large ones first
    leaves no worker alone with one at the end (the default's four cities on two workers: 38 s
    instead of 47 s in params order). Each world depends only on its own city and the seed, so
    the order changes no byte."""
    return sorted(range(len(synth.cities)), key=lambda i: synth.cities[i].mpp)


def write_world(synth: SynthParams, out: Path) -> dict:
    """Generate every city into `out` (replaced whole, atomically). Returns dataset.json's content."""
    workers = resolve_workers(synth.workers)
    meta = {"generator": "geodistill synth", "version": WORLD_FORMAT, "geodistill": __version__,
            "seed": synth.seed, "camera_height_m": synth.camera_height_m,
            "pano_size": list(synth.pano_size), "sat_size": synth.sat_size,
            "cities": {}}
    order = build_order(synth)
    built = fork_map(_build_world, [(synth.cities[i], synth) for i in order], min(workers, len(order)),
                     "city worlds", "city", chunksize=1)
    worlds = dict(zip(order, built))
    with atomic_dir(out) as partial:
        for i, city in enumerate(synth.cities):
            world, seconds = worlds.pop(i)
            meta["cities"][city.name] = write_city(world, city, synth, partial, workers, seconds)
        (partial / vigor.DATASET_JSON).write_text(json.dumps(meta, indent=2) + "\n")
    return meta
