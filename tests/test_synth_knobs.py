"""The synthetic world's difficulty knobs (objects in one view only, leafy streets, camera-height
and white-balance jitter), checked against exact geometry where there is one."""
from __future__ import annotations

import math

import numpy as np
import pytest

from geodistill.config import ConfigError, TransientParams, parse_params
from geodistill.data.synth import writer
from geodistill.data.synth.render import PanoLook, _trees, render_panorama
from geodistill.data.synth.transients import Transients, draw_transients, place_transients
from geodistill.data.synth.world import CLOUD_WHITE, KIND_CAR, Trees, build_city, cloud_layer, cover_with_clouds
from geodistill.geometry import column_azimuth, row_elevation

from test_synth_world import flat_scene

W, H = 720, 360
CAM_H = 2.0


def one_box(cx, cy, angle, half, height) -> Transients:
    return Transients(centre=np.array([[cx, cy]], float), angle=np.array([angle]), half=np.array([half], float),
                      height=np.array([height], float), colour=np.array([[200.0, 0, 0]]), is_person=np.zeros(1, bool))


def marched_distance(x, y, phi, elev, box: Transients, step=1e-3, reach=30.0) -> float:
    """First horizontal distance at which the ray is inside the box, by marching (independent of
    the slab intersection under test)."""
    d = np.arange(step, reach, step)
    px, py, pz = x + d * math.sin(phi), y - d * math.cos(phi), CAM_H + d * math.tan(elev)
    ca, sa = math.cos(box.angle[0]), math.sin(box.angle[0])
    u = (px - box.centre[0, 0]) * ca + (py - box.centre[0, 1]) * sa
    v = -(px - box.centre[0, 0]) * sa + (py - box.centre[0, 1]) * ca
    inside = (np.abs(u) <= box.half[0, 0]) & (np.abs(v) <= box.half[0, 1]) & (pz >= 0) & (pz <= box.height[0])
    return float(d[np.argmax(inside)]) if inside.any() else math.inf


@pytest.mark.parametrize("height", [1.5, 3.1])             # a car seen from above; a bus taller than the camera
def test_a_transient_box_is_hit_at_the_exact_ray_distance(height):
    box = one_box(53.0, 46.0, math.radians(30), (2.2, 0.9), height)   # north-east of the camera, turned
    rgb, depth = np.zeros((H, W, 3), np.float32), np.full((H, W), np.inf, np.float32)
    draw_transients(rgb, depth, box, 50.0, 50.0, CAM_H, sun_azimuth=0.0)
    hit_cols = np.flatnonzero(np.isfinite(depth).any(axis=0))
    assert hit_cols.size > 10
    rng = np.random.default_rng(0)
    for col in rng.choice(hit_cols, 12):
        phi = float(column_azimuth(col, W))
        for row in rng.choice(H, 12):
            truth = marched_distance(50.0, 50.0, phi, float(row_elevation(row, H)), box)
            if math.isinf(truth):
                assert math.isinf(depth[row, col])
            else:
                assert depth[row, col] == pytest.approx(truth, abs=2e-3)
                assert (rgb[row, col] > 0).any()
    if height < CAM_H:                                            # a car lower than the camera: below the horizon
        assert not np.isfinite(depth[: H // 2]).any()


def test_a_transient_hides_only_what_lies_behind_it():
    box = one_box(50.0, 45.0, 0.0, (1.0, 1.0), 1.5)               # 4 m north of the camera (near face)
    depth = np.full((H, W), 3.0, np.float32)                      # everything else 3 m away: nearer
    rgb = np.zeros((H, W, 3), np.float32)
    draw_transients(rgb, depth, box, 50.0, 50.0, CAM_H, 0.0)
    assert (depth == 3.0).all() and (rgb == 0).all()


def test_a_crown_above_the_camera_is_its_ceiling():
    """A crown of radius 2 m, underside 3 m high, centred on the camera (cam_h 2): a ray rising at
    elevation e meets the underside at (3 - 2) / tan e, inside the crown iff tan e >= 0.5."""
    world = flat_scene((80.0, 80.0, 1.0, 1.0, 1.0))
    world.trees = Trees(centre=np.array([[50.0, 50.0]]), radius=np.array([2.0]), bottom=np.array([3.0]),
                        top=np.array([6.0]), trunk=np.array([0.2]), colour=np.array([[40.0, 120.0, 40.0]]))
    rgb, depth = np.zeros((H, W, 3), np.float32), np.full((H, W), np.inf, np.float32)
    _trees(world, 50.0, 50.0, CAM_H, W, H, 40.0, rgb, depth, np.random.default_rng(0))
    tan_e = np.tan(row_elevation(np.arange(H), H))
    leaves = (tan_e >= 0.5)[:, None] & np.ones((1, W), bool)
    np.testing.assert_array_equal(np.isfinite(depth), leaves)
    rows = np.flatnonzero(tan_e >= 0.5)
    np.testing.assert_allclose(depth[rows], np.broadcast_to((1.0 / tan_e[rows])[:, None], (rows.size, W)), rtol=1e-5)


@pytest.fixture(scope="module")
def busy_world(smoke_params):
    """The smoke preset's grid city with every difficulty knob turned up."""
    synth = smoke_params.synth
    city = synth.cities[0].model_copy(update=dict(leafy_street_fraction=1.0))
    synth = synth.model_copy(update=dict(cameras_under_canopy=True, parked_car_turnover=1.0,
                                         cities=[city, *synth.cities[1:]]))
    return build_city(city, synth, synth.seed), city, synth


def test_traffic_stands_on_the_camera_road_and_sidewalks(busy_world):
    world, _, _ = busy_world
    p = TransientParams(busy_fraction=1.0, vehicles=6, pedestrians=6, radius_m=15)
    rows, cols = np.nonzero(world.camera_ok[40:-40, 40:-40])
    placed = 0
    for k in range(0, rows.size, max(rows.size // 25, 1)):
        x, y = (cols[k] + 40) * world.mpp, (rows[k] + 40) * world.mpp
        objects = place_transients(world, x, y, p, np.random.default_rng(k))
        road = world.roads[world.near_road[int((y - world.x0) / world.cell), int((x - world.x0) / world.cell)]]
        _, v_cam = road.frame(x, y)
        for i in range(len(objects)):
            u, v = road.frame(*objects.centre[i])
            assert abs(v - v_cam) <= p.radius_m + 1e-6
            if objects.is_person[i]:
                assert road.width / 2 < abs(u) <= road.width / 2 + max(road.sidewalk, 0.9)
            else:
                assert abs(u) + objects.half[i, 1] <= road.width / 2 + 1e-6
            assert np.hypot(*(objects.centre[i] - [x, y])) > 0.6          # never on the camera
        placed += len(objects)
    assert placed > 100
    quiet = TransientParams(busy_fraction=0.0, vehicles=6, pedestrians=6, radius_m=15)
    assert len(place_transients(world, x, y, quiet, np.random.default_rng(0))) == 0


def test_parked_cars_that_left_are_seen_from_above_only(busy_world, smoke_params):
    world, _, _ = busy_world
    assert not (world.boxes.kind == KIND_CAR).any()                   # turnover 1: none in the solid world
    synth, city = smoke_params.synth, smoke_params.synth.cities[0]    # no leafy crowns over the cars here
    world = build_city(city, synth.model_copy(update=dict(parked_car_turnover=1.0)), synth.seed)
    stayed = build_city(city, synth, synth.seed)
    cars = stayed.boxes.centre[stayed.boxes.kind == KIND_CAR]
    assert len(cars) > 20
    r, c = ((cars[:, 1] - world.x0) / world.cell).astype(int), ((cars[:, 0] - world.x0) / world.cell).astype(int)
    assert (world.height[r, c] == 0).all() and (stayed.height[r, c] > 1.3).all()
    np.testing.assert_array_equal(world.sat, stayed.sat)               # seen from above, nothing changed


def test_leafy_streets_put_cameras_under_closed_crowns(busy_world, smoke_params):
    world, city, synth = busy_world
    plain = build_city(city, synth.model_copy(update=dict(cameras_under_canopy=False)), synth.seed)
    under = world.camera_ok & ~plain.camera_ok                         # allowed only under a crown
    assert under.sum() > 0.3 * world.camera_ok.sum()
    rgb, _ = render_panorama(world, *(np.argwhere(under)[0][::-1] * world.mpp), CAM_H, W, H, 40.0)
    green = rgb[: H // 4].astype(int)                                  # looking up: leaves, not sky
    assert ((green[..., 1] > green[..., 2]).mean()) > 0.5


def test_camera_height_and_white_balance_are_drawn_per_panorama(smoke_params, monkeypatch, tmp_path):
    synth = smoke_params.synth
    synth = synth.model_copy(update=dict(camera_height_jitter_m=0.5, appearance=synth.appearance.model_copy(
        update=dict(white_balance_jitter=0.1))))
    world = build_city(synth.cities[0], synth, synth.seed)
    seen = []

    def capture(world, x, y, cam_h, width, height, max_range, look, traffic):
        seen.append((cam_h, look.white_balance))
        return np.zeros((height, width, 3), np.uint8), None

    monkeypatch.setattr(writer, "render_panorama", capture)
    writer._JOB.update(world=world, synth=synth, folder=tmp_path)
    try:
        for cam in writer.choose_cameras(world, synth.cities[0], synth)[:12]:
            writer._render_one(cam)
    finally:
        writer._JOB.clear()
    heights = np.array([h for h, _ in seen])
    gains = np.array([g for _, g in seen])
    assert ((heights >= 1.5) & (heights <= 2.5)).all() and heights.std() > 0.1
    assert ((gains >= 0.9) & (gains <= 1.1)).all() and gains.std() > 0.02
    assert PanoLook.draw(np.random.default_rng(0), smoke_params.synth.appearance).white_balance == (1.0, 1.0, 1.0)


def test_a_height_jitter_as_large_as_the_camera_height_is_refused(smoke_params):
    raw = smoke_params.model_dump(mode="json")
    raw["synth"]["camera_height_jitter_m"] = 2.0
    with pytest.raises(ConfigError, match="camera_height_jitter_m"):
        parse_params(raw, "test params")


@pytest.mark.parametrize("cover", [0.1, 0.25, 0.4])
def test_clouds_cover_the_asked_share_of_the_mosaic(cover):
    d = cloud_layer(512, 0.25, cover, 30.0, np.random.default_rng(0))
    assert (d > 0.5).mean() == pytest.approx(cover, abs=0.01)
    assert d.min() == 0.0 and d.max() == 1.0                          # clear sky and full cloud both occur


def test_a_cloud_hides_the_ground_by_its_opacity_and_no_cover_draws_nothing(smoke_params):
    look = smoke_params.synth.appearance.model_copy(update=dict(sat_cloud_cover=0.3, sat_cloud_opacity=0.8))
    sat = np.random.default_rng(1).uniform(0, 255, (256, 256, 3)).astype(np.float32)
    out = cover_with_clouds(sat, 0.25, look, np.random.default_rng(2))
    d = cloud_layer(256, 0.25, 0.3, look.sat_cloud_size_m, np.random.default_rng(2))[..., None]
    np.testing.assert_allclose(out, sat * (1 - 0.8 * d) + CLOUD_WHITE * 0.8 * d, rtol=1e-5)   # float32 images
    full = d[..., 0] == 1.0
    np.testing.assert_allclose(out[full], sat[full] * 0.2 + CLOUD_WHITE * 0.8, rtol=1e-5)
    clear = np.random.default_rng(3)
    none = cover_with_clouds(sat, 0.25, look.model_copy(update=dict(sat_cloud_cover=0.0)), clear)
    np.testing.assert_array_equal(none, sat)
    assert clear.random() == np.random.default_rng(3).random()           # the stream was not touched
