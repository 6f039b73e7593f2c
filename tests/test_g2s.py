"""G2SWeakly: correlation, weak loss, sub-cell peaks, cell -> pixel, and the model on tiny inputs.

The geometry test runs the whole projection + correlation with raw pixels as the "features" on
the appearance-free synthetic world: the peak must land on the label.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from geodistill.config import AugmentParams, DptEncoderParams, G2SParams, UnetEncoderParams
from geodistill.data import vigor
from geodistill.data.synth.writer import write_world
from geodistill.models.g2s import G2SWeakly, cell_to_input_pixel, correlate, project, weak_loss
from geodistill.models.localizer import Batch, input_to_tile_pixel, locate
from geodistill.training.augment import mirror, rotate90


def g2s_params(encoder, pano=(64, 32), sat=64, symmetric=False) -> G2SParams:
    return G2SParams(kind="g2s", encoder=encoder, pretrained=False, weights=None, pano_size=pano, sat_size=sat,
                     crop_fraction=0.4, margin_scale=10.0, symmetric_satellite=symmetric, epochs=1, batch_size=2,
                     lr=1e-4, lr_schedule="constant", warmup_fraction=0.0, weight_decay=0.0, grad_clip=1.0,
                     max_train_samples=0,
                     augment=AugmentParams(mirror=False, rotate90=symmetric, permute_channels=False, gain=0.0))


def test_correlation_of_a_map_with_its_own_centre_peaks_there():
    torch.manual_seed(0)
    sat = torch.randn(3, 5, 24, 24)
    bev = sat[:, :, 7:17, 5:15]                                          # a 10 x 10 window at (7, 5)
    scores = correlate(sat, bev, torch.ones(3, 1, 10, 10))              # (B, 15, 15)
    assert scores.shape == (3, 15, 15)
    flat = scores.flatten(1).argmax(1)
    assert (flat // 15 == 7).all() and (flat % 15 == 5).all()
    torch.testing.assert_close(scores[:, 7, 5], torch.ones(3))          # a perfect cosine
    assert scores.abs().max() <= 1 + 1e-5


def test_zero_weight_cells_take_no_part_and_pairs_agree():
    torch.manual_seed(1)
    sat, bev = torch.randn(4, 6, 20, 20), torch.randn(4, 6, 8, 8)
    weight = torch.rand(4, 1, 8, 8)
    weight[..., :3] = 0.0                                                # occluded columns
    scores = correlate(sat, bev, weight)
    noisy = bev.clone()
    noisy[..., :3] = 100.0                                               # whatever they hold
    torch.testing.assert_close(correlate(sat, noisy, weight), scores)
    pairs = correlate(sat, bev, weight, all_pairs=True)                 # (B_sat, B_ground, P, P)
    assert pairs.shape == (4, 4, 13, 13)
    torch.testing.assert_close(pairs.diagonal(dim1=0, dim2=1).permute(2, 0, 1), scores)


def test_weak_loss_prefers_the_right_pairing():
    torch.manual_seed(2)
    sat = torch.randn(6, 4, 16, 16)
    bev = torch.stack([sat[i, :, 3:11, 4:12] for i in range(6)]) + 0.3 * torch.randn(6, 4, 8, 8)
    w = torch.ones(6, 1, 8, 8)
    right = weak_loss([correlate(sat, bev, w, all_pairs=True)], 10.0)
    shuffled = weak_loss([correlate(sat, bev.roll(1, dims=0), w, all_pairs=True)], 10.0)
    assert right < 0.1 < 2.0 < shuffled
    # gamma (d_pos - d_neg) = 0 everywhere -> log 2
    flat = torch.zeros(3, 3, 2, 2)
    assert weak_loss([flat], 10.0).item() == pytest.approx(np.log(2), rel=1e-5)   # a float32 loss


def test_locate_finds_a_quadratic_peak_between_cells():
    rows, cols = torch.meshgrid(torch.arange(9.0), torch.arange(11.0), indexing="ij")
    true = torch.tensor([[3.3, 6.8], [5.0, 2.49], [0.0, 10.0]])
    maps = torch.stack([-(rows - r) ** 2 - 0.5 * (cols - c) ** 2 for r, c in true])
    torch.testing.assert_close(locate(maps), true)
    edge = torch.zeros(1, 5, 5)
    edge[0, 0, 4] = 1.0                                                  # peak at a corner: kept as is
    torch.testing.assert_close(locate(edge), torch.tensor([[0.0, 4.0]]))


def test_cell_and_pixel_conventions():
    # score-map cell (0, 0) with a 4-cell crop at stride 8: camera at satellite cell (2, 2),
    # whose input pixels are 16..23 -> centre 19.5
    torch.testing.assert_close(cell_to_input_pixel(torch.tensor([[0.0, 0.0]]), 4, 8), torch.tensor([[19.5, 19.5]]))
    torch.testing.assert_close(cell_to_input_pixel(torch.tensor([[1.25, 0.0]]), 2, 1), torch.tensor([[2.25, 1.0]]))
    # the centre of a 128-px input is the centre of the 640-px tile
    centre = input_to_tile_pixel(torch.tensor([[63.5, 63.5]]), 128, 640)
    torch.testing.assert_close(centre, torch.tensor([[319.5, 319.5]]))
    xy = input_to_tile_pixel(torch.tensor([[0.0, 10.0], [0.0, 10.0]]), 128, torch.tensor([640, 256]))
    torch.testing.assert_close(xy, torch.tensor([[2.0, 52.0], [0.5, 20.5]]))


@pytest.fixture(scope="module")
def plain_world(tmp_path_factory, plain_params):
    synth = plain_params.synth.model_copy(update=dict(panoramas_per_city=4))
    root = tmp_path_factory.mktemp("g2s_world") / "world"
    meta = write_world(synth, root)
    return root, meta, synth


@pytest.mark.parametrize("mirrored, turns", [(False, 0), (True, 0), (False, 1), (False, 2), (True, 3)],
                         ids=["as-rendered", "mirrored", "turned-90", "turned-180", "mirrored-turned-270"])
def test_raw_pixel_projection_peaks_at_the_label(plain_world, mirrored, turns):
    """Identity 'features': the projected panorama (raw pixels) slid over its positive tile
    peaks within a pixel of the labelled camera position (median < 0.2 px). The weights keep the street
    around the camera (within 4 m), where the flat-ground projection holds; facades further
    out are smeared by it. Mirrored, turned: the training augmentation's east-west mirror and
    quarter turns of both views (training/augment.py) are valid worlds, their labels the
    mirrored and turned ones."""
    root, meta, synth = plain_world
    S, cam_h = meta["sat_size"], meta["camera_height_m"]
    errors = []
    for city in synth.cities:
        mpp = meta["cities"][city.name]["mpp"]
        for line in vigor.read_labels(vigor.label_path(root, city.name, "all")):
            pano = torch.from_numpy(cv2.imread(str(vigor.pano_path(root, city.name, line.pano)))[..., ::-1].copy())
            tile = torch.from_numpy(cv2.imread(str(vigor.sat_path(root, city.name, line.sats[0])))[..., ::-1].copy())
            dy, dx = line.deltas[0]
            label = torch.tensor([[S / 2 + dy, S / 2 - dx]])
            batch = Batch(pano[None], tile[None], torch.tensor([mpp]), label, torch.zeros(1))
            batch = rotate90(mirror(batch, torch.tensor([mirrored])), torch.tensor([turns]))
            pano, tile, label = batch.pano[0], batch.sat[0], batch.gt_px
            feat = (pano.permute(2, 0, 1)[None].float() / 255.0 - 0.5)               # (1, 3, H, W)
            sat = (tile.permute(2, 0, 1)[None].float() / 255.0 - 0.5)                # (1, 3, S, S)
            crop = 2 * round(0.4 * S / 2)
            bev = project(feat, crop, torch.tensor([mpp]), cam_h)                      # (1, 3, c, c)
            yy, xx = torch.meshgrid(torch.arange(crop) - crop / 2, torch.arange(crop) - crop / 2, indexing="ij")
            near = (torch.hypot(yy, xx) * mpp < 4.0).float()[None, None]               # (1, 1, c, c)
            peak = cell_to_input_pixel(locate(correlate(sat, bev, near)), crop, 1)
            errors.append(float((peak[0] - label[0]).norm()))
    errors = np.array(errors)
    assert (errors < 1.0).mean() >= 0.85 and np.median(errors) < 0.2, errors.round(2)   # a car may hide one


ENCODERS = [UnetEncoderParams(kind="unet", backbone="resnet18", channels=[8, 6, 4]),
            DptEncoderParams(kind="dpt", backbone="vit_small_patch14_dinov2", blocks=[0, 1, 2, 3],
                             channels=[8, 6, 4], freeze=True)]


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: e.kind)
def test_model_shapes_gradients_and_frozen_parts(encoder):
    torch.manual_seed(0)
    size = (112, 56) if encoder.kind == "dpt" else (64, 32)
    sat_px = 56 if encoder.kind == "dpt" else 64
    model = G2SWeakly(g2s_params(encoder, size, sat_px), camera_height_m=2.0)
    pano = torch.randint(0, 256, (3, size[1], size[0], 3), dtype=torch.uint8)
    sat = torch.randint(0, 256, (3, sat_px, sat_px, 3), dtype=torch.uint8)
    mpp = torch.tensor([0.5, 0.5, 0.45])
    mask = torch.ones(3, size[0])
    mask[1, : size[0] // 3] = 0
    maps = model(pano, sat, mpp, column_mask=mask)
    assert [tuple(m.shape) for m in maps] == [(3, a - c + 1, a - c + 1) for a, c in zip(model.sat_cells, model.crops)]
    pairs = [correlate(*level, all_pairs=True) for level in model.levels(pano, sat, mpp)]
    assert all(torch.isfinite(m).all() for m in maps + pairs)
    weak_loss(pairs, 10.0).backward()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not [n for n in trainable if model.get_parameter(n).grad is None]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert (encoder.kind == "dpt") == bool(frozen) and all(p.grad is None for p in frozen)


class _Shifted(torch.nn.Module):
    """A satellite 'encoder' whose features are the tile's pixels shifted by (dy, dx) cells: the
    translation a weakly supervised network is free to learn."""

    strides = [1]

    def __init__(self, dy: int, dx: int):
        super().__init__()
        self.dy, self.dx = dy, dx

    def forward(self, sat):
        f = sat.permute(0, 3, 1, 2).float()                                  # (B, 3, S, S)
        f = torch.roll(f, shifts=(self.dy, self.dx), dims=(2, 3))
        return [(f, torch.ones_like(f[:, :1]))]


def test_symmetric_satellite_features_cancel_a_learned_translation():
    """Features shifted by t in the tile's frame: the 180-degree turn's, turned back, are shifted
    by -t, so their mean is centred: its correlation with the unshifted window peaks at the
    window's true place, where the shifted features alone peak t away."""
    torch.manual_seed(3)
    model = G2SWeakly(g2s_params(ENCODERS[0], symmetric=True), camera_height_m=2.0)
    model.sat_encoder = _Shifted(1, -1)
    sat = torch.rand(1, 3, 40, 40)
    for _ in range(3):                                                       # smooth: a peak wider than 2t
        sat = torch.nn.functional.avg_pool2d(sat, 5, 1, 2, count_include_pad=False)
    sat = (sat - sat.amin()) / (sat.amax() - sat.amin())
    tile = (sat.permute(0, 2, 3, 1) * 255).to(torch.uint8)                    # (1, 40, 40, 3)
    window = tile.permute(0, 3, 1, 2).float()[:, :, 12:24, 15:27]            # the truth at (12, 15)
    peak = lambda levels: divmod(int(correlate(levels[0][0] * levels[0][1], window,
                                               torch.ones(1, 1, 12, 12)).flatten().argmax()), 29)
    assert peak(model.satellite_levels(tile)) == (13, 14)                    # off by the translation
    assert peak(model.satellite_levels(tile, symmetric=True)) == (12, 15)
    plain = model.satellite_levels(tile)
    assert torch.equal(plain[0][0], model.satellite_levels(tile, symmetric=False)[0][0])


def test_symmetric_satellite_needs_quarter_turns_in_training():
    with pytest.raises(ValueError, match="symmetric_satellite needs augment.rotate90"):
        G2SParams(**(g2s_params(ENCODERS[0]).model_dump() | {"symmetric_satellite": True}))


@pytest.mark.parametrize("symmetric", [False, True])
def test_predict_uses_the_symmetric_features_only_when_asked(symmetric):
    torch.manual_seed(0)
    model = G2SWeakly(g2s_params(ENCODERS[0], symmetric=symmetric), camera_height_m=2.0).eval()
    pano = torch.randint(0, 256, (2, 32, 64, 3), dtype=torch.uint8)
    sat = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    mpp = torch.tensor([0.5, 0.5])
    with torch.no_grad():
        expected = model(pano, sat, mpp, symmetric=symmetric)[-1]
        torch.testing.assert_close(model.predict(pano, sat, mpp).heatmap, expected)
        if symmetric:
            assert not torch.allclose(expected, model(pano, sat, mpp)[-1])
