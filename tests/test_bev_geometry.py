"""Headings, yaw rolls and panorama -> bird's-eye-view sampling (geometry.py).

The cheap tests pin the conventions down on arrays; the last test checks them against the
synthetic world: the BEV of each written panorama must line up with its satellite tile at the
label position and at the panorama's true yaw, to the pixel and to the degree.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from geodistill.data import vigor
from geodistill.data.synth import writer
from geodistill.data.synth.render import trace
from geodistill.geometry import (angle_error_deg, bev_grid, bev_ground_coords, bev_maps, column_heading,
                                 ground_to_pano, heading_column, pano_to_ground, render_bev, roll_features,
                                 roll_panorama, sample_bev, wrap_degrees)


def smooth_pano(rng: np.random.Generator, height: int, channels: int = 3) -> np.ndarray:
    """(H, 2H, C) float32 random image, smooth and periodic across the seam (low-order Fourier)."""
    W = 2 * height
    phi = 2 * np.pi * (np.arange(W) + 0.5) / W
    theta = np.pi * (np.arange(height) + 0.5) / height
    out = np.zeros((height, W, channels))
    for ch in range(channels):
        for k in range(4):
            a, b, c = rng.normal(size=3)
            out[..., ch] += (a * np.cos(k * phi + b))[None, :] * np.cos(k * theta + c)[:, None] / (1 + k)
    return out.astype(np.float32)


# -- ground <-> panorama, headings --------------------------------------------------------------

@pytest.mark.parametrize("yaw", [0.0, 37.5, -150.0, 359.0])
def test_ground_pano_round_trip(yaw):
    rng = np.random.default_rng(0)
    east, north = rng.uniform(-60, 60, size=(2, 2000))
    keep = (np.hypot(east, north) > 0.05) & (np.hypot(east, north) < 60)
    east, north = east[keep], north[keep]
    col, row = ground_to_pano(east, north, 2.0, 512, 256, yaw)
    assert ((col >= -0.5) & (col < 511.5) & (row > 127.5) & (row < 256)).all()   # below the horizon
    e2, n2 = pano_to_ground(col, row, 2.0, 512, 256, yaw)
    np.testing.assert_allclose(e2, east, atol=1e-4)
    np.testing.assert_allclose(n2, north, atol=1e-4)


def test_headings():
    W = 512
    cols = np.arange(W, dtype=float)
    for yaw in (0.0, 90.0, -33.3):
        h = column_heading(cols, W, yaw)
        assert ((h >= 0) & (h < 360)).all()
        np.testing.assert_allclose(heading_column(h, W, yaw), cols, atol=1e-9)
    assert column_heading(W / 2 - 0.5, W) == pytest.approx(0.0)          # centre (seam between pixels)
    assert column_heading(W / 2 - 0.5, W, 30.0) == pytest.approx(30.0)   # centre heads at the yaw
    assert column_heading(3 * W / 4 - 0.5, W) == pytest.approx(90.0)     # east
    assert heading_column(180.0, W) == pytest.approx(-0.5)               # south: left edge of column 0


def test_angle_wrap():
    np.testing.assert_allclose(wrap_degrees([180, -180, 190, -190, 540, 0, 359]), [180, 180, -170, 170, 180, 0, -1])
    assert angle_error_deg(359, 1) == pytest.approx(2.0)
    assert angle_error_deg(1, 359) == pytest.approx(2.0)
    np.testing.assert_allclose(angle_error_deg([10, -170, 90], [350, 170, 90]), [20, 20, 0])


# -- rolls -----------------------------------------------------------------------------------

def test_whole_column_roll_is_np_roll_and_invertible():
    rng = np.random.default_rng(1)
    pano = rng.integers(0, 256, size=(16, 256, 3), dtype=np.uint8)
    step = 360 / 256
    for k in (1, 32, -17, 300):
        rolled = roll_panorama(pano, k * step)
        assert rolled.dtype == np.uint8
        np.testing.assert_array_equal(rolled, np.roll(pano, -k, axis=1))
        np.testing.assert_array_equal(roll_panorama(rolled, -k * step), pano)


def test_quarter_turn_moves_column_c_plus_90_to_c():
    a = np.arange(360)[None, :].repeat(3, axis=0)                        # (3, 360): value = column
    np.testing.assert_array_equal(roll_panorama(a, 90.0)[0], (np.arange(360) + 90) % 360)


def test_rolled_panorama_heads_at_yaw_plus_turn():
    """Pixels hold (sin, cos) of their heading: after turning by theta they read heading(c, psi + theta)."""
    W, psi = 360, 25.0
    h = np.radians(column_heading(np.arange(W), W, psi))
    pano = np.stack([np.sin(h), np.cos(h)], -1)[None].repeat(4, axis=0)  # (4, W, 2)
    for theta in (90.0, -25.0, 12.5):                                    # whole and half columns
        h2 = np.radians(column_heading(np.arange(W), W, psi + theta))
        np.testing.assert_allclose(roll_panorama(pano, theta)[0], np.stack([np.sin(h2), np.cos(h2)], -1),
                                   atol=2e-3)                            # linear blend of a 1-degree chord
    north = roll_panorama(pano, -psi)[0]                                 # undo the yaw: north at the centre
    np.testing.assert_allclose(north[W // 2 - 1] + north[W // 2], [0, 2 * np.cos(np.radians(0.5))], atol=1e-12)


def test_fractional_roll_interpolates_linearly():
    W = 64
    ramp = np.arange(W, dtype=np.float64)[None, :].repeat(2, axis=0)
    s = 3.25                                                             # columns
    out = roll_panorama(ramp, s * 360 / W)
    np.testing.assert_allclose(out[0, : W - 5], np.arange(W - 5) + s, atol=1e-12)   # away from the seam
    # turning back leaves the 3-tap blur of linear interpolation, not the identity
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, W))
    back = roll_panorama(roll_panorama(x, s * 360 / W), -s * 360 / W)
    f = 0.25
    blur = f * (1 - f) * (np.roll(x, 1, 1) + np.roll(x, -1, 1)) + (f * f + (1 - f) ** 2) * x
    np.testing.assert_allclose(back, blur, atol=1e-12)
    np.testing.assert_allclose(out.sum(1), ramp.sum(1))                  # circular blend keeps the mass
    smooth = smooth_pano(rng, 32)
    back = roll_panorama(roll_panorama(smooth, 10.3), -10.3)
    np.testing.assert_allclose(back, smooth, atol=2e-3 * np.ptp(smooth))  # ~identity on smooth images


def test_roll_features_matches_roll_panorama():
    rng = np.random.default_rng(3)
    feat = torch.from_numpy(rng.normal(size=(3, 4, 5, 48))).float()     # (B, C, H, W)
    yaws = torch.tensor([12.3, -200.7, 45.0])
    out = roll_features(feat, yaws)
    for b in range(3):
        expect = roll_panorama(feat[b].permute(1, 2, 0).numpy().astype(np.float64), float(yaws[b]))
        np.testing.assert_allclose(out[b].permute(1, 2, 0).numpy(), expect, atol=1e-5)
    torch.testing.assert_close(roll_features(feat, 45.0), torch.roll(feat, -6, dims=-1), rtol=0, atol=0)


def test_roll_features_is_differentiable():
    feat = torch.randn(2, 3, 4, 32, requires_grad=True)
    roll_features(feat, torch.tensor([7.7, -91.0])).sum().backward()
    assert feat.grad is not None and torch.isfinite(feat.grad).all()
    # a circular linear blend hands every input cell out with total weight 1
    torch.testing.assert_close(feat.grad, torch.ones_like(feat))


# -- BEV sampling ----------------------------------------------------------------------------

def test_bev_grid_is_bev_maps_normalised():
    W, H = 64, 32
    for yaw in (0.0, 123.4):
        grid = bev_grid(40, 0.4, 2.0, W, H, yaw)
        assert grid.shape == (40, 40, 2) and grid.dtype == torch.float32
        map_x, map_y = bev_maps(40, 0.4, 2.0, W, H, yaw)
        np.testing.assert_allclose((grid[..., 0].numpy() + 1) * W / 2 - 0.5, map_x, atol=1e-4)
        np.testing.assert_allclose((grid[..., 1].numpy() + 1) * H / 2 - 0.5, map_y, atol=1e-4)
    batch = bev_grid(40, 0.4, 2.0, W, H, torch.tensor([0.0, 123.4]))
    assert batch.shape == (2, 40, 40, 2)
    torch.testing.assert_close(batch[1], bev_grid(40, 0.4, 2.0, W, H, 123.4), rtol=0, atol=1e-5)


@pytest.mark.parametrize("yaw", [0.0, 33.3, -120.0])
def test_sample_bev_matches_render_bev(yaw):
    """The torch path and the cv2 path share one convention, seam included."""
    pano = smooth_pano(np.random.default_rng(4), 64)                     # (64, 128, 3)
    expect = render_bev(pano, 80, 0.3, 2.0, yaw)                         # (80, 80, 3)
    got = sample_bev(torch.from_numpy(pano).permute(2, 0, 1)[None], 80, 0.3, 2.0, yaw)
    assert got.shape == (1, 3, 80, 80)
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), expect, atol=1e-3 * np.ptp(pano))


def test_sample_bev_per_sample_yaw_and_gradient():
    rng = np.random.default_rng(5)
    panos = np.stack([smooth_pano(rng, 32) for _ in range(3)])           # (B, H, W, C)
    feat = torch.from_numpy(panos).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    yaws = torch.tensor([0.0, 90.0, -45.5])
    out = sample_bev(feat, 48, 0.5, 2.0, yaws)                           # (B, C, 48, 48)
    for b in range(3):
        np.testing.assert_allclose(out[b].detach().permute(1, 2, 0).numpy(),
                                   render_bev(panos[b], 48, 0.5, 2.0, float(yaws[b])), atol=1e-3 * np.ptp(panos))
    out.square().sum().backward()
    assert feat.grad is not None and torch.isfinite(feat.grad).all() and feat.grad.abs().sum() > 0


def test_bev_bad_input():
    with pytest.raises(ValueError, match="300x100"):
        render_bev(np.zeros((100, 300, 3), np.uint8), 32, 0.5, 2.0)
    with pytest.raises(ValueError, match="size=0"):
        render_bev(np.zeros((64, 128, 3), np.uint8), 0, 0.5, 2.0)
    with pytest.raises(ValueError, match="size=0"):
        sample_bev(torch.zeros(1, 3, 8, 16), 0, 0.5, 2.0)


# -- exactness on the synthetic world --------------------------------------------------------

RADIUS_M, NEAR_M, SHIFT_PX = 12.0, 1.0, 6
YAW_STEPS = np.arange(-10, 11)                       # degrees around the panorama's true yaw
TURNS = (0.0, 45.0, -67.5, 157.5)                    # whole columns of a 256-wide panorama


@pytest.fixture(scope="module")
def plain_world_and_cities(tmp_path_factory, plain_params):
    """The smoke world with appearance off, 8 panoramas per city, and the City rasters behind it
    (captured from write_world so each city is built once)."""
    synth = plain_params.synth.model_copy(update=dict(panoramas_per_city=8))
    built, build = {}, writer.build_city

    def keep(city, synth_, seed):
        built[city.name] = build(city, synth_, seed)
        return built[city.name]

    root = tmp_path_factory.mktemp("bev_world") / "world"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(writer, "build_city", keep)
        meta = writer.write_world(synth, root)
    for city in synth.cities:                        # if the writer stops using build_city by name
        built.setdefault(city.name, build(city, synth, synth.seed))
    return root, meta, synth, built


def masked_ncc(bev: np.ndarray, valid: np.ndarray, tile: np.ndarray, row: int, col: int, shift: int) -> np.ndarray:
    """(2*shift+1, 2*shift+1) normalised cross-correlation of a BEV (size, size, 3) against the tile
    (S, S, 3) placed with BEV pixel (size/2, size/2) on tile pixel (row + u, col + v), over the BEV
    pixels in `valid` that land inside the tile. Images in [0, 1]."""
    size, S = bev.shape[0], tile.shape[0]
    pad = size // 2 + shift
    padded = np.pad(tile - 0.5, ((pad, pad), (pad, pad), (0, 0))).astype(np.float32)
    inside = np.pad(np.ones((S, S, 3), np.float32), ((pad, pad), (pad, pad), (0, 0)))
    win = np.s_[row + pad - size // 2 - shift: row + pad + size // 2 + shift,
                col + pad - size // 2 - shift: col + pad + size // 2 + shift]
    img, ins = padded[win], inside[win]
    m = np.repeat(valid[..., None], 3, axis=-1).astype(np.float32)
    a = (bev - 0.5).astype(np.float32) * m
    corr = lambda image, templ: cv2.matchTemplate(image, templ, cv2.TM_CCORR).astype(np.float64)
    n, sa, sb = corr(ins, m), corr(ins, a), corr(img, m)          # sums over the pixels used
    saa, sbb, sab = corr(ins, a * a), corr(img * img, m), corr(img, a)
    return (sab - sa * sb / n) / np.sqrt((saa - sa ** 2 / n) * (sbb - sb ** 2 / n))


def test_bev_lines_up_with_the_tile_exactly(plain_world_and_cities):
    """BEV vs positive tile over visible bare ground: the NCC peaks at the label and the true yaw.

    Each panorama is first turned by a known angle theta (so its centre heads at theta), and the
    yaw search runs around theta: a sign error in yaw_deg would put the peak at -theta.
    """
    root, meta, synth, worlds = plain_world_and_cities
    S, cam_h = meta["sat_size"], meta["camera_height_m"]
    W, H = meta["pano_size"]
    peaks = []
    for city in synth.cities:
        world, mpp = worlds[city.name], meta["cities"][city.name]["mpp"]
        cams = {c.filename: c for c in writer.choose_cameras(world, city, synth)}
        ss, n = world.supersample, world.sat.shape[0]
        bare = (world.top == world.ground).all(-1).reshape(n, ss, n, ss).all(axis=(1, 3))  # no roof/car/canopy
        size = 2 * int(np.ceil(RADIUS_M / mpp))
        dist = np.hypot(*bev_ground_coords(size, mpp))
        map_x, map_y = bev_maps(size, mpp, cam_h, W, H)
        near_col, near_row = np.rint(map_x).astype(int) % W, np.rint(map_y).astype(int)
        ii, jj = np.mgrid[:size, :size] - size // 2
        for k, line in enumerate(vigor.read_labels(vigor.label_path(root, city.name, "all"))):
            cam = cams[line.pano]
            dy, dx = line.deltas[0]
            row, col = int(S / 2 + dy), int(S / 2 - dx)
            # ground the camera really sees (no wall, car or roof in front) and the satellite sees bare
            seen = trace(world, cam.col * mpp, cam.row * mpp, cam_h, W, H, synth.max_range_m)["kind"] == 1
            valid = (dist > NEAR_M) & (dist < RADIUS_M) & seen[near_row, near_col] & bare[cam.row + ii, cam.col + jj]
            assert valid.sum() > 2000
            pano = cv2.imread(str(vigor.pano_path(root, city.name, line.pano))).astype(np.float32) / 255
            tile = cv2.imread(str(vigor.sat_path(root, city.name, line.sats[0]))).astype(np.float32) / 255
            theta = TURNS[k % len(TURNS)]
            turned = roll_panorama(pano, theta)
            scores = np.stack([masked_ncc(render_bev(turned, size, mpp, cam_h, theta + d), valid, tile, row, col,
                                          SHIFT_PX) for d in YAW_STEPS])          # (yaws, 13, 13)
            y, u, v = np.unravel_index(np.argmax(scores), scores.shape)
            peaks.append((line.pano, YAW_STEPS[y], u - SHIFT_PX, v - SHIFT_PX, scores.max()))
    bad = [p for p in peaks if abs(p[1]) > 1 or abs(p[2]) > 1 or abs(p[3]) > 1 or p[4] < 0.7]
    assert not bad, f"peaks off the label/yaw (pano, yaw, drow, dcol, ncc): {bad}"
    assert len(peaks) == 2 * synth.panoramas_per_city
