"""The synthetic world's geometry, checked against exact ground truth.

A hand-built scene (one box on flat ground) checks the ray caster against analytic ray-box
intersections; the smoke world checks that the two views and the VIGOR labels agree.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from geodistill.data import vigor
from geodistill.data.synth.render import render_panorama, trace
from geodistill.data.synth.world import KIND_BUILDING, Boxes, Trees, World, build_city
from geodistill.data.synth import writer
from geodistill.data.synth.writer import choose_cameras, tile_centres, write_world
from geodistill.geometry import azimuth_column, elevation_row, latlon_to_metres


def flat_scene(box, extent_m=100.0, mpp=0.25, ss=2) -> World:
    """Flat grey ground with one axis-aligned box (cx, cy, half_x, half_y, height); x east, y south."""
    n_sat = int(extent_m / mpp)
    n, cell = n_sat * ss, mpp / ss
    coords = -mpp / 2 + (np.arange(n) + 0.5) * cell
    cx, cy, hx, hy, h = box
    inside = (np.abs(coords[None, :] - cx) <= hx) & (np.abs(coords[:, None] - cy) <= hy)
    height = np.where(inside, h, 0).astype(np.float32)
    obj = inside.astype(np.int32)
    ground = np.full((n, n, 3), 120, np.uint8)
    f64 = lambda *v: np.array([v], np.float64)
    boxes = Boxes(kind=np.array([KIND_BUILDING], np.int32), centre=f64(cx, cy), angle=np.zeros(1),
                  half=f64(hx, hy), height=np.array([h], float), wall=f64(200, 50, 50), accent=f64(20, 20, 20),
                  spacing=np.array([3.0]), floor=np.array([3.0]), window=f64(0.5, 0.5))
    empty = np.zeros((0, 2))
    trees = Trees(empty, empty[:, 0], empty[:, 0], empty[:, 0], empty[:, 0], np.zeros((0, 3)))
    return World("Scene", mpp, ss, ground, ground.copy(), height, obj, boxes, trees,
                 sat=ground[::ss, ::ss].copy(), camera_ok=~inside[::ss, ::ss], sun=(0.0, 0.8))


def ray_box_distance(x, y, phi, box):
    """Horizontal distance along azimuth phi (clockwise from north) to an axis-aligned box, or inf."""
    cx, cy, hx, hy, _ = box
    dx, dy = math.sin(phi), -math.cos(phi)
    t0, t1 = -math.inf, math.inf
    for p, d, lo, hi in ((x, dx, cx - hx, cx + hx), (y, dy, cy - hy, cy + hy)):
        if abs(d) < 1e-12:
            if not lo <= p <= hi:
                return math.inf
            continue
        a, b = (lo - p) / d, (hi - p) / d
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return t0 if t0 <= t1 and t0 > 0 else math.inf


BOX = (60.0, 30.0, 5.0, 5.0, 12.0)   # x in [55, 65], y (south) in [25, 35], 12 m tall
CAM = (50.0, 50.0)                   # 15 m south and 5 m west of the nearest (south-west) corner
CAM_H = 2.0
W, H = 1024, 512


@pytest.fixture(scope="module")
def scene_hits():
    world = flat_scene(BOX)
    return world, trace(world, *CAM, CAM_H, W, H, max_range=60.0)


def test_building_corner_at_predicted_column_and_row(scene_hits):
    _, hits = scene_hits
    wall = hits["kind"] == 2                                       # (H, W)
    cols = np.flatnonzero(wall.any(axis=0))
    # left edge: north-west corner (55, 25) -> 5 m east, 25 m north; right edge: south-east corner (65, 35)
    assert cols.min() == pytest.approx(azimuth_column(math.atan2(5, 25), W), abs=1.0)
    assert cols.max() == pytest.approx(azimuth_column(math.atan2(15, 15), W), abs=1.0)
    # the nearest corner (55, 35): bearing atan2(5, 15), distance sqrt(250); its top is the highest point
    top_row = np.where(wall.any(axis=0), wall.argmax(axis=0), H)
    corner_col = int(np.argmin(top_row))
    assert corner_col == pytest.approx(azimuth_column(math.atan2(5, 15), W), abs=1.0)
    expected_row = elevation_row(math.atan2(BOX[4] - CAM_H, math.sqrt(250)), H)
    assert top_row[corner_col] == pytest.approx(expected_row, abs=1.0)


def test_every_wall_ray_hits_at_the_analytic_distance(scene_hits):
    world, hits = scene_hits
    horizon_row = H // 2 - 1                                       # just above the horizon
    checked = 0
    for c in range(W):
        phi = 2 * math.pi * (c + 0.5 - W / 2) / W
        d = ray_box_distance(*CAM, phi, BOX)
        got = hits["dist"][horizon_row, c]
        if math.isinf(d):
            assert hits["kind"][horizon_row, c] == 0               # sky just above the horizon
            continue
        checked += 1
        assert hits["kind"][horizon_row, c] == 2
        assert got == pytest.approx(d, abs=world.cell)             # raster edge: within one cell
        top = int(np.argmax(hits["kind"][:, c] == 2))
        assert top == pytest.approx(elevation_row(math.atan2(BOX[4] - CAM_H, d), H), abs=1.0)
    assert checked > 40


def test_ground_rays_land_at_exact_distance(scene_hits):
    _, hits = scene_hits
    rows = np.arange(H // 2 + 2, H)
    elev = np.pi * (H / 2 - rows - 0.5) / H
    expected = CAM_H / np.tan(-elev)
    col = int(azimuth_column(math.pi, W))                          # looking south: open ground
    got = hits["dist"][rows, col]
    near = expected < 60
    assert (hits["kind"][rows, col][near] == 1).all()
    np.testing.assert_allclose(got[near], expected[near], rtol=1e-12)


@pytest.fixture(scope="module")
def plain_world(tmp_path_factory, plain_params):
    root = tmp_path_factory.mktemp("world") / "world"
    meta = write_world(plain_params.synth, root)
    return root, meta


def _label_lines(root, city):
    return vigor.read_labels(vigor.label_path(root, city, "all"))


def test_ground_below_camera_has_satellite_colour(plain_params):
    synth = plain_params.synth
    city = synth.cities[0]
    world = build_city(city, synth, synth.seed)
    W_, H_ = synth.pano_size
    for cam in choose_cameras(world, city, synth)[:10]:
        rgb, _ = render_panorama(world, cam.col * world.mpp, cam.row * world.mpp, synth.camera_height_m,
                                 W_, H_, synth.max_range_m)
        nadir = rgb[-1].astype(float).mean(axis=0)               # the ring of rays around straight down
        np.testing.assert_allclose(nadir, world.sat[cam.row, cam.col], atol=1.0)


def test_written_views_agree_at_the_label(plain_world, plain_params):
    root, meta = plain_world
    S = meta["sat_size"]
    for city in meta["cities"]:
        for line in _label_lines(root, city)[:8]:
            dy, dx = line.deltas[0]
            row, col = int(S / 2 + dy), int(S / 2 - dx)
            tile = cv2.imread(str(vigor.sat_path(root, city, line.sats[0])))
            pano = cv2.imread(str(vigor.pano_path(root, city, line.pano)))
            np.testing.assert_allclose(pano[-1].astype(float).mean(axis=0), tile[row, col], atol=3.0)


def test_label_deltas_reproduce_the_camera_pixel(plain_world, plain_params):
    root, meta = plain_world
    S = meta["sat_size"]
    for city in plain_params.synth.cities:
        origin, mpp = tuple(meta["cities"][city.name]["origin"]), meta["cities"][city.name]["mpp"]
        world = build_city(city, plain_params.synth, plain_params.synth.seed)
        truth = {c.filename: (c.row, c.col) for c in choose_cameras(world, city, plain_params.synth)}
        lines = _label_lines(root, city.name)
        assert len(lines) == plain_params.synth.panoramas_per_city == len(truth)
        for line in lines:
            cam_row, cam_col = truth[line.pano]
            centres = tile_centres(cam_row, cam_col, S)
            for (ti, tj), sat, (dy, dx) in zip(centres, line.sats, line.deltas):
                # the tile's centre pixel in the city raster, from its file name's lat/lon
                east, north = latlon_to_metres(*vigor.parse_sat_name(sat), origin)
                assert (east / mpp, -north / mpp) == pytest.approx((tj, ti), abs=1e-6)
                assert (ti + dy, tj - dx) == (cam_row, cam_col)        # exact: integer deltas
                assert 0 <= S / 2 + dy < S and 0 <= S / 2 - dx < S
            assert abs(line.deltas[0][0]) <= S / 4 and abs(line.deltas[0][1]) <= S / 4   # central quarter
            # lat/lon in the panorama's name agree with the deltas (6 decimals: < 0.5 px)
            _, lat, lon = vigor.parse_pano_name(line.pano)
            east, north = latlon_to_metres(lat, lon, origin)
            assert (-north / mpp, east / mpp) == pytest.approx((cam_row, cam_col), abs=0.5)


def test_tiles_are_on_a_half_tile_grid_and_semis_surround_the_camera():
    S = 128
    centres = tile_centres(200, 130, S)
    assert centres == [(192, 128), (192, 192), (256, 128), (256, 192)]
    assert tile_centres(180, 120, S) == [(192, 128), (192, 64), (128, 128), (128, 64)]


def test_dataset_json_describes_the_world(plain_world, plain_params):
    root, meta = plain_world
    on_disk = json.loads((root / "dataset.json").read_text())
    assert on_disk == meta
    assert on_disk["camera_height_m"] == plain_params.synth.camera_height_m
    assert on_disk["sat_size"] == plain_params.synth.sat_size
    for city in plain_params.synth.cities:
        info = on_disk["cities"][city.name]
        assert info["mpp"] == city.mpp and info["panoramas"] == plain_params.synth.panoramas_per_city
        pano = next((root / city.name / "panorama").iterdir())
        assert cv2.imread(str(pano)).shape == (plain_params.synth.pano_size[1], plain_params.synth.pano_size[0], 3)


def digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes under `root`."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_params_same_bytes(tmp_path, smoke_params):
    write_world(smoke_params.synth, tmp_path / "a")
    two_workers = smoke_params.synth.model_copy(update={"workers": 2})
    write_world(two_workers, tmp_path / "b")
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert not list(tmp_path.glob("*.partial"))


def test_worlds_are_built_largest_first_and_the_order_changes_no_byte(tmp_path, smoke_params, monkeypatch):
    assert writer.build_order(smoke_params.synth) == [1, 0]          # Calderport (0.23 m/px) before Ashford (0.25)
    write_world(smoke_params.synth, tmp_path / "largest-first")
    monkeypatch.setattr(writer, "build_order", lambda synth: list(range(len(synth.cities))))
    write_world(smoke_params.synth, tmp_path / "as-listed")
    assert digest(tmp_path / "largest-first") == digest(tmp_path / "as-listed")
