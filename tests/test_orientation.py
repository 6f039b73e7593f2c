"""Orientation network: angle bins, BEV rotation as yaw augmentation, model, resume."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geodistill.data.bev import read_panorama
from geodistill.data.synth.writer import write_world
from geodistill.geometry import render_bev, roll_panorama
from geodistill.metrics import orientation_metrics
from geodistill.models.orientation import AngleBins, OrientationNet
from geodistill.training import orientation as training
from geodistill.training.checkpoint import Checkpointer
from geodistill.training.orientation import disc_mask, rotate_bev


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
    disc = disc_mask(size)[..., 0].astype(bool)
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


@pytest.mark.parametrize("backbone", ["resnet18", "efficientnet_b0"])
def test_model_shapes_and_gradients(backbone):
    torch.manual_seed(0)
    model = OrientationNet(backbone, input_size=64, bins=36, hidden=[32])
    sat = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    out = model(sat, sat.flip(1))
    assert out.shape == (2, 36) and torch.isfinite(out).all()
    out.logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing


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
