"""Training augmentation (training/augment.py): exact mirror conventions, colour draws shared by
both views, and nothing drawn when disabled. The mirrored world's geometry (projection onto the
mirrored label) is checked in test_g2s.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geodistill.config import AugmentParams
from geodistill.geometry import column_azimuth, roll_panorama
from geodistill.models.localizer import Batch
from geodistill.training.augment import augment_batch, mirror, rotate90

OFF = AugmentParams(mirror=False, rotate90=False, permute_channels=False, gain=0.0)


def batch(B=4, H=16, W=32, S=24, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(pano=torch.randint(0, 256, (B, H, W, 3), generator=g, dtype=torch.uint8),
                 sat=torch.randint(0, 256, (B, S, S, 3), generator=g, dtype=torch.uint8),
                 sat_mpp=torch.full((B,), 0.5), gt_px=torch.rand(B, 2, generator=g) * (S - 1),
                 yaw_deg=torch.rand(B, generator=g) * 90 - 45,
                 column_mask=(torch.rand(B, W, generator=g) > 0.5).float())


def test_mirror_flips_only_the_chosen_samples_and_maps_labels_exactly():
    b = batch()
    flip = torch.tensor([True, False, True, False])
    m = mirror(b, flip)
    S, W = b.sat.shape[2], b.pano.shape[2]
    for i in range(4):
        same = not flip[i]
        assert torch.equal(m.sat[i], b.sat[i] if same else b.sat[i].flip(1))
        assert torch.equal(m.pano[i], b.pano[i] if same else b.pano[i].flip(1))
        assert torch.equal(m.column_mask[i], b.column_mask[i] if same else b.column_mask[i].flip(0))
        assert m.gt_px[i, 0] == b.gt_px[i, 0]
        assert m.gt_px[i, 1] == (b.gt_px[i, 1] if same else S - 1 - b.gt_px[i, 1])
        assert m.yaw_deg[i] == (b.yaw_deg[i] if same else -b.yaw_deg[i])
    # the pixel under the camera moves with it (integer label)
    gt = torch.tensor([[5.0, 7.0]])
    one = Batch(b.pano[:1], b.sat[:1], b.sat_mpp[:1], gt, torch.zeros(1))
    m1 = mirror(one, torch.tensor([True]))
    assert torch.equal(m1.sat[0, 5, int(m1.gt_px[0, 1])], b.sat[0, 5, 7])
    twice = mirror(m, flip)
    for field in ("pano", "sat", "gt_px", "yaw_deg", "column_mask"):
        assert torch.equal(getattr(twice, field), getattr(b, field))
    # reversed columns look at the mirrored azimuth: phi(W - 1 - c) = -phi(c)
    c = np.arange(W)
    np.testing.assert_allclose(column_azimuth(W - 1 - c, W), -column_azimuth(c, W), atol=1e-12)


def test_quarter_turns_move_the_camera_pixel_with_the_tile_and_roll_the_panorama():
    b = batch()
    turns = torch.tensor([0, 1, 2, 3])
    r = rotate90(b, turns)
    S, W = b.sat.shape[2], b.pano.shape[2]
    for i, k in enumerate(turns.tolist()):
        assert torch.equal(r.sat[i], torch.rot90(b.sat[i], k=-k, dims=(0, 1)))
        assert torch.equal(r.pano[i], torch.roll(b.pano[i], k * W // 4, dims=1))
        assert torch.equal(r.column_mask[i], torch.roll(b.column_mask[i], k * W // 4, dims=0))
        assert r.yaw_deg[i] == b.yaw_deg[i]
    row, col = b.gt_px.T
    torch.testing.assert_close(r.gt_px, torch.stack([
        torch.stack([row[0], col[0]]), torch.stack([col[1], S - 1 - row[1]]),
        torch.stack([S - 1 - row[2], S - 1 - col[2]]), torch.stack([S - 1 - col[3], row[3]])]))
    # the pixel under an integer camera moves with it, for each turn
    one = Batch(b.pano[:1].repeat(4, 1, 1, 1), b.sat[:1].repeat(4, 1, 1, 1), b.sat_mpp[:1].repeat(4),
                torch.tensor([[5.0, 7.0]]).repeat(4, 1), torch.zeros(4))
    t = rotate90(one, turns)
    for i in range(4):
        assert torch.equal(t.sat[i, int(t.gt_px[i, 0]), int(t.gt_px[i, 1])], b.sat[0, 5, 7])
    # a quarter turn moves what lay at azimuth phi to phi + 90 degrees: column c -> c + W/4
    c = np.arange(W)
    np.testing.assert_allclose(column_azimuth(c + W // 4, W) - column_azimuth(c, W), np.pi / 2, atol=1e-12)
    back = rotate90(r, (4 - turns) % 4)                                    # four quarter turns in all
    for field in ("pano", "sat", "gt_px", "column_mask"):
        torch.testing.assert_close(getattr(back, field), getattr(b, field))


def test_a_quarter_turn_of_a_pinhole_image_turns_only_its_heading():
    b = batch(B=2)
    camera = torch.tensor([[100.0, 100.0, 15.5, 8.0, 30.0], [90.0, 90.0, 16.0, 7.5, -10.0]])
    b = Batch(b.pano, b.sat, b.sat_mpp, b.gt_px, b.yaw_deg, b.column_mask, camera)
    r = rotate90(b, torch.tensor([1, 3]))
    assert torch.equal(r.pano, b.pano)
    torch.testing.assert_close(r.camera[:, 4], torch.tensor([120.0, 260.0]))
    torch.testing.assert_close(r.camera[:, :4], camera[:, :4])


def test_a_quarter_turn_needs_whole_columns():
    b = batch(W=30)
    with pytest.raises(ValueError, match="divisible by 4"):
        rotate90(b, torch.tensor([1, 0, 0, 0]))


@pytest.mark.parametrize("turn", [45.0, -33.75, 12.3])
def test_mirror_of_a_turned_panorama_is_the_mirrored_panorama_turned_back(turn):
    """So the label of a mirrored sample turned by t is -t (whole and fractional column shifts)."""
    pano = np.random.default_rng(1).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    lhs = roll_panorama(pano, turn)[:, ::-1]
    rhs = roll_panorama(pano[:, ::-1], -turn)
    np.testing.assert_array_equal(lhs, rhs)


def test_colour_draws_are_shared_by_both_views_and_within_range():
    b = batch(B=6)
    b.sat[:, :4, :4] = b.pano[:, :4, :4]                   # the same colours in both views
    out = augment_batch(b, AugmentParams(mirror=False, rotate90=False, permute_channels=True, gain=0.2),
                        np.random.default_rng(0))
    assert torch.equal(out.sat[:, :4, :4], out.pano[:, :4, :4])
    assert torch.equal(out.gt_px, b.gt_px) and torch.equal(out.yaw_deg, b.yaw_deg)
    permuted = augment_batch(b, AugmentParams(mirror=False, rotate90=False, permute_channels=True, gain=0.0),
                             np.random.default_rng(0))
    orders = set()
    for i in range(6):          # each output channel is one input channel, a permutation of the three
        src = [next(k for k in range(3) if torch.equal(permuted.pano[i, ..., c], b.pano[i, ..., k]))
               for c in range(3)]
        assert sorted(src) == [0, 1, 2]
        orders.add(tuple(src))
        assert torch.equal(permuted.sat[i], b.sat[i][..., src])
    assert len(orders) > 1
    gained = augment_batch(b, AugmentParams(mirror=False, rotate90=False, permute_channels=False, gain=0.2),
                           np.random.default_rng(0))
    x, y = b.pano.float(), gained.pano.float()
    bright = x > 50                                         # ratios of unclipped, well-lit values
    ratio = y[bright] / x[bright]
    assert ratio.min() >= 0.8 - 0.01 and ratio.max() <= 1.2 + 0.01
    mid = (x > 100) & (x < 200)                             # unclipped values, rounding error < 0.5%
    gains = torch.stack([torch.stack([(y[i, ..., c] / x[i, ..., c])[mid[i, ..., c]].median() for c in range(3)])
                         for i in range(6)])                # (B, 3) one gain each
    assert (y - (x * gains[:, None, None, :]).clamp(0, 255)).abs().max() <= 2
    assert len(set(gains.flatten().round(decimals=2).tolist())) > 6


def test_disabled_augmentation_is_the_identity_and_draws_nothing():
    b = batch()
    rng = np.random.default_rng(7)
    before = rng.bit_generator.state
    out = augment_batch(b, OFF, rng)
    assert out is b and rng.bit_generator.state == before
