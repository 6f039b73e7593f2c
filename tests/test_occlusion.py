"""FoV occlusion of the student's panorama (distill/occlusion.py), docs/paper-reference.md#geodistill."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geodistill.distill.occlusion import (FovDraw, apply_fov, draw_fov, fov_batch, fov_bev_mask,
                                          fov_column_mask, occluded_columns)
from geodistill.geometry import bev_ground_coords, heading_column


@pytest.mark.parametrize("low, high", [(180, 240), (1, 361), (359, 361), (90, 91)])
def test_draws_in_range_and_block_never_wraps(low, high):
    rng = np.random.default_rng(0)
    draws = [draw_fov(rng, low, high) for _ in range(2000)]
    kept = np.array([d.kept_deg for d in draws])
    start = np.array([d.start_deg for d in draws])
    assert all(isinstance(d.kept_deg, int) and isinstance(d.start_deg, int) for d in draws)
    assert ((kept >= low) & (kept < high)).all()
    assert ((start >= 0) & (start < kept)).all()
    assert (start + 360 - kept <= 360).all()                             # the block ends before the seam
    if high - low <= 60:
        assert kept.min() == low and kept.max() == high - 1              # both ends are drawn


@pytest.mark.parametrize("width", [360, 720])
def test_column_mask_is_exact_for_multiples_of_360(width):
    rng = np.random.default_rng(1)
    for _ in range(200):
        d = draw_fov(rng)
        mask = fov_column_mask(d, width)
        assert mask.dtype == np.float32 and mask.shape == (width,)
        assert mask.sum() == d.kept_deg * width // 360
        zeros = np.flatnonzero(mask == 0)
        per = width // 360
        np.testing.assert_array_equal(zeros, np.arange(d.start_deg * per, (d.start_deg + d.occluded_deg) * per))


def test_column_mask_within_one_column_otherwise():
    rng = np.random.default_rng(2)
    for _ in range(500):
        d = draw_fov(rng)
        mask = fov_column_mask(d, 512)
        assert abs(mask.sum() - d.kept_deg * 512 / 360) < 1
        zeros = np.flatnonzero(mask == 0)
        assert (np.diff(zeros) == 1).all()                               # one contiguous block
        first, last = occluded_columns(d, 512)
        assert (zeros[0], zeros[-1] + 1) == (first, last)


def test_apply_fov_zeroes_exactly_the_occluded_columns():
    rng = np.random.default_rng(3)
    d = FovDraw(kept_deg=200, start_deg=70)
    pano = rng.integers(1, 256, size=(32, 64, 3), dtype=np.uint8)
    out = apply_fov(pano, d)
    mask = fov_column_mask(d, 64) > 0
    assert out.dtype == pano.dtype and out.shape == pano.shape
    assert (out[:, ~mask] == 0).all()
    np.testing.assert_array_equal(out[:, mask], pano[:, mask])
    assert (pano > 0).all()                                               # input untouched

    feat = (torch.rand(2, 3, 32, 64) + 0.1).requires_grad_(True)        # (B, C, H, W)
    out = apply_fov(feat, d)
    keep = torch.from_numpy(mask)
    assert (out[..., ~keep] == 0).all()
    torch.testing.assert_close(out[..., keep], feat[..., keep])
    out.sum().backward()
    torch.testing.assert_close(feat.grad, keep.float().expand_as(feat).clone())


def test_same_generator_state_same_draws():
    a = fov_batch(np.random.default_rng(2023), 16, 256)
    b = fov_batch(np.random.default_rng(2023), 16, 256)
    assert a[1] == b[1]
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    masks, draws = a
    assert masks.shape == (16, 256) and masks.dtype == torch.float32
    for m, d in zip(masks, draws):
        np.testing.assert_array_equal(m.numpy(), fov_column_mask(d, 256))
    assert len(set(draws)) > 1
    assert fov_batch(np.random.default_rng(2024), 16, 256)[1] != draws


def test_bev_mask_follows_bearings():
    """Cells whose bearing falls in the kept FoV are 1, those in the occluded block 0."""
    W, H, size, mpp = 360, 180, 101, 0.2
    d = FovDraw(kept_deg=200, start_deg=40)                 # occluded: degrees [40, 200) from column 0
    mask = fov_bev_mask(d, W, H, size, mpp, 2.0)
    assert mask.shape == (size, size) and mask.dtype == np.float32
    east, north = bev_ground_coords(size, mpp)
    checked = {0.0: 0, 1.0: 0}
    for bearing in range(0, 360, 7):
        for r in (3.0, 8.0):
            i = int(round(size / 2 - r * np.cos(np.radians(bearing)) / mpp))
            j = int(round(size / 2 + r * np.sin(np.radians(bearing)) / mpp))
            true_bearing = np.degrees(np.arctan2(east[i, j], north[i, j]))
            deg = (heading_column(true_bearing, W) + 0.5) * 360 / W   # degrees from the left edge
            if min(abs(deg - 40), abs(deg - 200)) < 2:
                continue                                      # too close to a block edge
            expected = 0.0 if 40 <= deg < 200 else 1.0
            assert mask[i, j] == expected, (bearing, r, deg)
            checked[expected] += 1
    assert checked[0.0] > 10 and checked[1.0] > 10
    # occluded degrees [40, 200) from the left edge = headings [220, 360) and [0, 20): due east kept
    assert mask[size // 2, size - 5] == 1 and mask[size // 2, 5] == 0 and mask[5, size // 2 + 1] == 0


@pytest.mark.parametrize("low, high", [(0, 10), (200, 200), (240, 180), (180, 362)])
def test_bad_range(low, high):
    with pytest.raises(ValueError, match=f"low={low}, high={high}"):
        draw_fov(np.random.default_rng(0), low, high)
