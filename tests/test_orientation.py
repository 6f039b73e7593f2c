"""Orientation networks: angle bins, BEV rotation as yaw augmentation, both heads, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geodistill.data.bev import read_panorama
from geodistill.data.synth.writer import write_world
from geodistill.config import ConcatHead, CorrelateHead
from geodistill.geometry import bev_disc, render_bev, roll_panorama, rotate_bev, rotate_bev_features
from geodistill.metrics import orientation_metrics
from geodistill.models.angles import AngleBins
from geodistill.models.orientation import ConcatOrientationNet, CorrelationOrientationNet, rotation_scores
from geodistill.training import orientation as training
from geodistill.training.checkpoint import Checkpointer
from geodistill.training.orientation import Views, resample_tile


@pytest.mark.parametrize("range_deg,bins", [(45, 90), (180, 360)])
def test_soft_labels_and_decoding(range_deg, bins):
    b = AngleBins(range_deg, bins, sigma_bins=1.0)
    yaws = torch.tensor([-range_deg + 0.3, -10.25, 0.0, 17.6, range_deg - 0.7], dtype=torch.float64)
    t = b.soft_labels(yaws)
    assert torch.allclose(t.sum(1), torch.ones(len(yaws)))
    assert (b.centres[t.argmax(1)] - yaws).abs().max() <= b.width / 2 + 1e-9
    decoded = b.decode(torch.log(t + 1e-12))
    err = (decoded - yaws).abs()
    if b.circular:
        err = torch.minimum(err, 360 - err)
    assert err.max() < 0.35 * b.width


def test_circular_labels_wrap_around():
    b = AngleBins(180, 360, sigma_bins=2.0)
    t = b.soft_labels(torch.tensor([179.9]))
    assert t[0, 0] > 0.1 and t[0, -1] > 0.1                 # mass on both sides of the seam


def test_rotated_bev_is_the_bev_of_the_rolled_panorama(tmp_path, plain_params):
    """Yaw augmentation: rotating a BEV by psi equals re-projecting the panorama rolled by psi."""
    synth = plain_params.synth.model_copy(update={"panoramas_per_city": 3, "cities": plain_params.synth.cities[:1]})
    write_world(synth, tmp_path / "w")
    size, mpp = 96, 0.25
    disc = bev_disc(size)
    inner = disc & (np.hypot(*np.mgrid[0:size, 0:size] - size / 2) > 8)      # skip the blurry nadir
    for pano_path in sorted((tmp_path / "w").glob("*/panorama/*.jpg")):
        pano = read_panorama(pano_path).astype(np.float32)
        for psi in (30.0, -42.5):
            rolled = render_bev(roll_panorama(pano, psi), size, mpp, 2.0)
            rotated = rotate_bev(render_bev(pano, size, mpp, 2.0), psi)
            diff = np.abs(rolled - rotated).mean(axis=2)[inner]
            assert np.median(diff) < 3.0, (pano_path.name, psi, np.median(diff))
            wrong = rotate_bev(render_bev(pano, size, mpp, 2.0), -psi)   # the other sense is clearly worse
            assert np.abs(rolled - wrong).mean(axis=2)[inner].mean() > 2 * diff.mean()


def _check_forward_backward(model, sat, bev, bins):
    out = model(sat, bev)
    assert out.shape == (sat.shape[0], bins) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_b0"])
def test_concat_head_shapes_and_gradients(backbone):
    torch.manual_seed(0)
    model = ConcatOrientationNet(backbone, input_size=64, bins=36, head=ConcatHead(kind="concat", hidden=[32]))
    sat = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    _check_forward_backward(model, sat, sat.flip(1), 36)


@pytest.mark.parametrize("backbone,level", [("resnet18", 1), ("efficientnet_b0", 2)])
def test_correlate_head_shapes_and_gradients(backbone, level):
    torch.manual_seed(0)
    head = CorrelateHead(kind="correlate", level=level, channels=8, input_mpp=0.5)
    model = CorrelationOrientationNet(backbone, head, bev_px=32, angles_deg=AngleBins(45, 18, 1).centres)
    sat = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    _check_forward_backward(model, sat, sat[:, 16:48, 16:48], 18)
    with pytest.raises(ValueError, match="multiple of the encoder stride 8"):
        CorrelationOrientationNet(backbone, head.model_copy(update={"level": 2}), bev_px=36,
                                  angles_deg=torch.zeros(2))


def smooth_field(x: np.ndarray, y: np.ndarray, channels: int = 6, waves: int = 5) -> np.ndarray:
    """(channels, *x.shape) sums of random plane waves, defined at any real (x, y)."""
    rng = np.random.default_rng(0)
    k, phase = rng.normal(scale=0.35, size=(channels, waves, 2)), rng.uniform(0, 2 * np.pi, (channels, waves))
    return np.stack([np.cos(x[..., None] * k[c, :, 0] + y[..., None] * k[c, :, 1] + phase[c]).sum(-1)
                     for c in range(channels)])


@pytest.mark.parametrize("camera", [(20, 20), (23, 18), (13, 26)])
def test_rotation_scores_peak_at_the_true_yaw(camera):
    """Features of a smooth field on a 40 x 40 satellite grid; the BEV of a camera at `camera`
    (row, col) with yaw psi samples the same field turned counter-clockwise by psi. The best
    score lands at psi to 0.1 degree and is a near-perfect cosine; -psi is clearly worse."""
    yy, xx = np.mgrid[0:40, 0:40].astype(np.float64)
    sat = torch.nn.functional.normalize(torch.from_numpy(smooth_field(xx, yy)).float()[None], dim=1)
    h, (r, c) = 16, camera
    dy, dx = np.mgrid[0:h, 0:h] - h / 2                                  # camera at cell (h/2, h/2)
    disc = torch.from_numpy(bev_disc(h)).float()[None, None]            # (1, 1, h, h)
    angles = torch.arange(-45.0, 45.05, 0.1)
    for psi in (-38.0, -20.0, 0.0, 10.0, 27.0, 38.0):
        a = np.radians(psi)
        seen = smooth_field(c + np.cos(a) * dx - np.sin(a) * dy, r + np.sin(a) * dx + np.cos(a) * dy)
        bev = torch.nn.functional.normalize(torch.from_numpy(seen).float()[None], dim=1) * disc
        scores = rotation_scores(sat, bev, disc, angles)[0]              # (K,)
        assert float(angles[scores.argmax()]) == pytest.approx(psi, abs=0.11)
        assert scores.max() > 0.998
        if psi:
            assert scores[(angles + psi).abs().argmin()] < scores.max() - 0.1


def test_rotate_bev_features_is_rotate_bev():
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    img = np.stack([np.sin(xx / 5) + np.cos(yy / 7), xx / 32, yy / 32], -1).astype(np.float32)
    maps = torch.from_numpy(img).permute(2, 0, 1)[None].repeat(4, 1, 1, 1)
    angles = [0.0, 17.5, -40.0, 90.0]
    out = rotate_bev_features(maps, torch.tensor(angles))
    for k, a in enumerate(angles):
        np.testing.assert_allclose(out[k].permute(1, 2, 0).numpy(), rotate_bev(img, a), atol=1e-5)


def test_tile_resampled_to_the_input_scale():
    tile = np.zeros((100, 100, 3), np.uint8)
    tile[40:60, 40:60] = 255                                             # a 20-px square at the centre
    views = Views(sat_px=64, sat_mpp=0.5, bev_px=32)
    out = resample_tile(tile, 0.25, views)                               # 25 m at 0.5 m/px = 50 px, padded
    assert out.shape == (64, 64, 3)
    assert (out[..., 0] > 127).sum() == 100 and out[:7].max() == 0       # 10 x 10 px square, zero border
    out = resample_tile(tile, 0.5, views.__class__(32, 0.5, 16))         # 50 m -> 100 px, centre-cropped
    assert out.shape == (32, 32, 3) and (out[6:26, 6:26] == 255).all()
    assert resample_tile(tile, 0.3, Views(48, None, 48)).shape == (48, 48, 3)    # plain resize


def test_orientation_metrics_wrap_around():
    m = orientation_metrics([359.0, 10.0, -3.0, 90.0], [1.0, 10.5, 3.0, 0.0])
    assert m["n"] == 4
    assert m["mean_deg"] == pytest.approx((2 + 0.5 + 6 + 90) / 4)
    assert m["median_deg"] == pytest.approx(4.0)
    assert (m["within_1_deg"], m["within_3_deg"], m["within_5_deg"]) == (0.25, 0.5, 0.5)


def test_checkpoint_ignores_other_params_and_truncated_files(tmp_path):
    ckpt = Checkpointer(tmp_path, {"lr": 1e-3})
    ckpt.save("last", {"epoch": 3})
    assert ckpt.load("last")["epoch"] == 3
    assert Checkpointer(tmp_path, {"lr": 2e-3}).load("last") is None
    (tmp_path / "last.pt").write_bytes(b"\x80\x02 cut short")
    assert ckpt.load("last") is None


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, smoke_params):
    """A smoke world, its index and BEVs, and orientation params for one area."""
    from geodistill.data.bev import render_all
    from geodistill.data.index import build_index, write_index
    root = tmp_path_factory.mktemp("orient")
    write_world(smoke_params.synth, root / "world")
    write_index(build_index(root / "world", smoke_params.index), root / "index.csv")
    import pandas as pd
    paths = sorted(pd.read_csv(root / "index.csv").pano_path.unique())
    bp = smoke_params.bev
    render_all(paths, bp.size, bp.mpp, bp.camera_height_m, root / "bev", bp.min_pano_width, 1)
    p = smoke_params.orientation.model_copy(update={"areas": ["same"], "epochs": 2, "max_train_samples": 8})
    return root, p, bp


def test_training_resumes_to_the_same_result(small_run, monkeypatch):
    root, p, bp = small_run
    clean = training.train_orientation(root / "index.csv", root / "bev", root / "a", root / "a.json", p, bp)

    real_save, calls = Checkpointer.save, []

    def crash_after_first_epoch(self, name, state):
        real_save(self, name, state)
        calls.append(name)
        if name == "last":
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(Checkpointer, "save", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        training.train_orientation(root / "index.csv", root / "bev", root / "b", root / "b.json", p, bp)
    monkeypatch.setattr(Checkpointer, "save", real_save)
    resumed = training.train_orientation(root / "index.csv", root / "bev", root / "b", root / "b.json", p, bp)
    assert resumed == clean
    assert json.loads((root / "b.json").read_text()) == clean
    history = (root / "b" / "same" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + p.epochs


def test_the_test_predictions_cover_the_scored_subset_with_unchanged_yaws(small_run):
    """The localization runs read yaws for their scored test subset only (params `evaluate`):
    the orientation stage predicts exactly those panoramas, each with its full-split test yaw."""
    import pandas as pd
    from geodistill.config import EvaluateParams
    from geodistill.data.index import seeded_subset
    root, p, bp = small_run
    p = p.model_copy(update={"epochs": 1})
    full = training.train_orientation(root / "index.csv", root / "bev", root / "f", root / "f.json", p, bp)
    scored = EvaluateParams(max_samples=5, seed=7)
    part = training.train_orientation(root / "index.csv", root / "bev", root / "s", root / "s.json", p, bp,
                                      scored=scored)
    every = pd.read_csv(root / "f" / "same" / "test_predictions.csv")
    some = pd.read_csv(root / "s" / "same" / "test_predictions.csv")
    index = pd.read_csv(root / "index.csv")
    test = index[(index.area == "same") & (index.split == "test")].reset_index(drop=True)
    assert full["same"]["n"] == len(every) == len(test) > 5
    assert part["same"]["n"] == 5
    assert list(some.pano_path) == list(seeded_subset(test, 5, 7).pano_path)
    same = every.set_index("pano_path").loc[some.pano_path]
    assert np.array_equal(some.true_yaw_deg, same.true_yaw_deg)
    assert np.allclose(some.pred_yaw_deg, same.pred_yaw_deg, atol=1e-3)      # other batches, same model
