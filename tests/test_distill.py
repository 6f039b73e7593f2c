"""GeoDistill: occlusions, targets and loss with exact values, the EMA teacher, the training loop."""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from geodistill.config import (ConfigError, FovOcclusion, MaxActivationOcclusion, RawTarget,
                               SharpenedTarget, UnimodalTarget, parse_params)
from geodistill.data.index import build_index, write_index
from geodistill.data.synth.writer import write_world
from geodistill.distill.occlusion import max_activation_mask, occlude, random_patch_mask
from geodistill.distill.targets import distill_loss, teacher_distribution, unimodal
from geodistill.distill.teacher_student import (ema_update, keep_norm_statistics, make_teacher, train_distill,
                                                variant_loss)
from geodistill.evaluation import evaluate_seeds
from geodistill.models.localizer import Batch
from geodistill.training import baseline
from geodistill.training.checkpoint import CheckpointError, seed_dir
from conftest import REPO


def test_fov_occlusion_zeroes_one_contiguous_block_of_the_drawn_width():
    pano = torch.full((6, 4, 360, 3), 7, dtype=torch.uint8)
    rng = np.random.default_rng(3)
    student, columns = occlude(FovOcclusion(kind="fov", fov_deg=(180, 240)), pano, rng)
    assert columns.shape == (6, 360) and student.dtype == torch.uint8
    for b in range(6):
        occluded = np.flatnonzero(columns[b].numpy() == 0)
        assert 120 < len(occluded) <= 180                                   # kept 180..239 of 360 columns
        assert (np.diff(occluded) == 1).all()                              # one block, never wrapping the seam
        assert (student[b][:, occluded] == 0).all() and (student[b][:, columns[b] > 0] == 7).all()


def test_random_patch_coverage_lies_in_its_range():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = random_patch_mask(rng, 64, 128, block_px=14, ratio=(1 / 3, 1 / 2))
        covered = 1 - mask.mean()
        assert 1 / 3 <= covered < 1 / 2 + 14 * 14 / (64 * 128)
        assert set(np.unique(mask)) <= {0.0, 1.0}


def test_max_activation_masks_exactly_the_top_fraction():
    feat = torch.zeros(2, 3, 4, 5)
    feat[0, :, 1, 2], feat[0, :, 3, 4], feat[0, :, 0, 0], feat[0, :, 2, 1] = 9.0, 8.0, 7.0, 6.0
    feat[1] = torch.arange(20.0).view(4, 5)                               # largest: the last 4 cells
    mask = max_activation_mask(feat, fraction=0.2, size=(8, 10))         # 4 of 20 cells, each 2 x 2 px
    assert mask.shape == (2, 8, 10) and (mask == 0).sum((1, 2)).tolist() == [16, 16]
    zeros = (mask[:, ::2, ::2] == 0)
    assert zeros[0].nonzero().tolist() == [[0, 0], [1, 2], [2, 1], [3, 4]]
    assert zeros[1].nonzero().tolist() == [[3, 1], [3, 2], [3, 3], [3, 4]]
    pano = torch.full((2, 8, 10, 3), 5, dtype=torch.uint8)
    student, columns = occlude(MaxActivationOcclusion(kind="max_activation", fraction=0.2), pano,
                               np.random.default_rng(0), lambda p: feat)
    assert columns is None and (student[..., 0] == 5 * mask).all()


def test_the_loss_is_the_hand_computed_cross_entropy_on_a_3x3_map():
    teacher = torch.tensor([[[0.0, 0.1, 0.2], [0.3, 0.9, 0.1], [0.0, 0.0, 0.2]]])
    student = torch.tensor([[[0.5, 0.0, 0.0], [0.1, 0.2, 0.3], [0.0, 0.4, 0.0]]])
    tau = 0.5
    p_t = np.exp(teacher.numpy().ravel() / tau)
    p_t /= p_t.sum()
    log_p_s = student.numpy().ravel() / tau - np.log(np.exp(student.numpy().ravel() / tau).sum())
    expected = -(p_t * log_p_s).sum()
    loss = distill_loss([student], [teacher], SharpenedTarget(kind="sharpened", tau=tau))
    assert loss.item() == pytest.approx(expected, rel=1e-5)                # float32 on both sides
    two_levels = distill_loss([student, teacher], [teacher, teacher], RawTarget(kind="raw"))
    raw = lambda s, t: -(torch.softmax(t.flatten(), 0) * torch.log_softmax(s.flatten(), 0)).sum()
    assert two_levels.item() == pytest.approx(((raw(student, teacher) + raw(teacher, teacher)) / 2).item(), rel=1e-5)


def test_unimodal_target_is_a_gaussian_at_the_teachers_argmax():
    scores = torch.zeros(2, 3, 5, 5)                                      # CCVPE-like: 3 orientations
    scores[0, 2, 1, 3], scores[1, 0, 4, 0] = 1.0, 1.0
    g = unimodal(scores, sigma_cells=1.0)
    torch.testing.assert_close(g.sum((1, 2, 3)), torch.ones(2))
    assert g[0, 2].argmax() == 1 * 5 + 3 and g[0, :2].sum() == 0 and g[1, 0].argmax() == 20
    assert g[0, 2, 1, 2] / g[0, 2, 1, 3] == pytest.approx(np.exp(-0.5), rel=1e-5)   # float32
    p = teacher_distribution(scores, UnimodalTarget(kind="unimodal", sigma_cells=1.0, tau=0.1))
    torch.testing.assert_close(p, g.flatten(1))


def test_one_ema_update_is_exact_on_parameters_and_leaves_the_teachers_buffers():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    teacher = make_teacher(student)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    with torch.no_grad():
        for q in student.parameters():
            q.add_(torch.randn_like(q))
    student(torch.randn(5, 3))                                            # moves the student's running stats
    ema_update(teacher, student, alpha=0.9)
    for (name, t), s in zip(teacher.named_parameters(), student.parameters()):
        torch.testing.assert_close(t, 0.9 * before[name] + 0.1 * s, rtol=1e-5, atol=1e-6)   # float32 rounding
    for name, b in teacher.named_buffers():
        assert torch.equal(b, before[name])
    assert not teacher.training and not any(q.requires_grad for q in teacher.parameters())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smoke_params):
    """The smoke world, its index and a trained g2s_vgg cross-area baseline."""
    root = tmp_path_factory.mktemp("distill")
    write_world(smoke_params.synth, root / "world")
    write_index(build_index(root / "world", smoke_params.index), root / "index.csv")
    start = seed_dir(root / "baselines" / "g2s_vgg-cross", smoke_params.report.seeds[0])   # the layout distill reads
    baseline.train_baseline(root / "index.csv", start, "g2s_vgg", "cross", smoke_params)
    return root, smoke_params


def test_a_training_step_leaves_the_teacher_untouched(trained):
    root, params = trained
    v = params.distill.variants["geodistill-g2s_vgg-cross"]
    student, _ = baseline.load_checkpoint(root / "baselines" / "g2s_vgg-cross" / "seed2023" / "best.pt")
    student.train()
    teacher = make_teacher(student)
    before = copy.deepcopy(teacher.state_dict())
    data = baseline.load_splits(root / "index.csv", "cross", params.baselines["g2s_vgg"], "t")["train"]
    pano, sat, mpp = data.batch([0, 1, 2])
    batch = Batch(pano, sat, mpp, data.gt_px([0, 1, 2]), torch.zeros(3))
    loss = variant_loss(v, student, teacher, batch, np.random.default_rng(0))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    loss.backward()
    opt.step()
    assert all(q.grad is None for q in teacher.parameters())
    assert all(torch.equal(before[k], t) for k, t in teacher.state_dict().items())
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in student.parameters())


def _with_variant(**override):
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["distill"]["variants"]["v"] = {"method": "g2s_vgg", "area": "cross", **override}
    return parse_params(raw, "smoke.yaml")


@pytest.mark.parametrize("mode", ["distill", "augment"])
def test_fine_tuning_at_lr_0_leaves_the_students_predictions_bit_for_bit(trained, mode):
    """The student's batch norms keep the baseline's statistics while it trains on occluded panoramas:
    a step that changes no weight (lr 0) changes no prediction on full panoramas. Re-estimating the
    statistics (plain train mode) does change them, so the check can fail."""
    root, params = trained
    v = params.distill.variants["geodistill-g2s_vgg-cross"].model_copy(update={"mode": mode})
    data = baseline.load_splits(root / "index.csv", "cross", params.baselines["g2s_vgg"], "t")["train"]
    pano, sat, mpp = data.batch([0, 1, 2, 3])
    batch = Batch(pano, sat, mpp, data.gt_px([0, 1, 2, 3]), torch.zeros(4))

    def predictions_after_a_step(keep: bool) -> tuple[torch.Tensor, torch.Tensor]:
        student, _ = baseline.load_checkpoint(seed_dir(root / "baselines" / "g2s_vgg-cross", 2023) / "best.pt")
        before = student.eval().predict(pano, sat, mpp).heatmap
        teacher = make_teacher(student)
        student.train()
        if keep:
            keep_norm_statistics(student)
        optimizer = torch.optim.AdamW(student.parameters(), lr=0.0, weight_decay=1e-5)
        variant_loss(v, student, teacher, batch, np.random.default_rng(0)).backward()
        optimizer.step()
        return before, student.eval().predict(pano, sat, mpp).heatmap

    before, after = predictions_after_a_step(keep=True)
    assert torch.equal(before, after)
    before, after = predictions_after_a_step(keep=False)
    assert not torch.equal(before, after)


@pytest.mark.parametrize("override", [{}, {"mode": "augment", "ema_every": "step"},
                                      {"occlusion": {"kind": "random_patch", "block_px": 8, "ratio": [0.3, 0.5]},
                                       "target": {"kind": "unimodal", "sigma_cells": 2.0, "tau": 0.06}},
                                      {"occlusion": {"kind": "max_activation", "fraction": 0.2},
                                       "target": {"kind": "raw"}}])
def test_every_variant_trains_and_both_its_models_evaluate(trained, tmp_path, override):
    root, _ = trained
    params = _with_variant(**override)
    result = train_distill(root / "index.csv", root / "baselines", seed_dir(tmp_path / "v", 2023), "v", params, 2023)
    assert set(result["best_val_mean_m"]) == {"teacher", "student"}
    assert all(np.isfinite(x) for x in result["best_val_mean_m"].values())
    history = pd.read_csv(seed_dir(tmp_path / "v", 2023) / "history.csv")
    assert {"val_student_mean_m", "val_teacher_mean_m"} <= set(history.columns)
    for model in ("teacher", "student"):
        state = torch.load(seed_dir(tmp_path / "v", 2023) / f"{model}.pt", weights_only=True)
        assert state["variant"] == "v" and state["distilled_model"] == model
        assert state["val"]["mean_m"] == result["best_val_mean_m"][model]
    index = pd.read_csv(root / "index.csv")
    test = index[(index.area == "cross") & (index.split == "test")]
    pd.DataFrame({"pano_path": test.pano_path, "true_yaw_deg": 0.0, "pred_yaw_deg": 0.0}).to_csv(
        tmp_path / "orient.csv", index=False)
    m = evaluate_seeds(tmp_path / "v", [2023], root / "index.csv", tmp_path / "orient.csv", tmp_path / "p",
                       tmp_path / "m.json")
    assert m["teacher"]["2dof"]["n"] == m["student"]["2dof"]["n"] == len(test)
    assert (tmp_path / "p" / "teacher" / "seed2023.csv").is_file() and (tmp_path / "p" / "student" / "seed2023.csv").is_file()


@pytest.mark.parametrize("cap, drawn", [(0, 8), (4, 4)])     # smoke: g2s_vgg max_train_samples 8
def test_a_variant_caps_its_training_samples_per_epoch(trained, tmp_path, monkeypatch, cap, drawn):
    import geodistill.distill.teacher_student as ts
    caps, seen = [], []

    def counted(data, p, *args):
        caps.append(p.max_train_samples)
        for batch in baseline.training_batches(data, p, *args):
            seen.append(len(batch.pano))
            yield batch
    monkeypatch.setattr(ts, "training_batches", counted)
    root, _ = trained
    train_distill(root / "index.csv", root / "baselines", tmp_path / "v", "v", _with_variant(max_train_samples=cap))
    assert caps == [drawn, drawn] and 0 < sum(seen) <= 2 * drawn    # 2 epochs (epochs_factor 1 x 2)


def test_distillation_resumes_to_the_same_result(trained, tmp_path, killed_after_first_epoch):
    root, _ = trained
    params = _with_variant(epochs_factor=2.0)
    clean = train_distill(root / "index.csv", root / "baselines", tmp_path / "a", "v", params)
    with killed_after_first_epoch():
        train_distill(root / "index.csv", root / "baselines", tmp_path / "b", "v", params)
    assert train_distill(root / "index.csv", root / "baselines", tmp_path / "b", "v", params) == clean
    a, b = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in "ab")
    assert all(torch.equal(a["teacher"][k], b["teacher"][k]) for k in a["teacher"])


def test_a_missing_or_stale_baseline_and_an_unknown_variant_are_named(trained, tmp_path):
    root, params = trained
    with pytest.raises(CheckpointError, match="checkpoint not found.*g2s_vgg-cross"):
        train_distill(root / "index.csv", tmp_path / "none", tmp_path / "o", "geodistill-g2s_vgg-cross", params)
    with pytest.raises(ConfigError, match="unknown distill variant 'nope'"):
        train_distill(root / "index.csv", root / "baselines", tmp_path / "o", "nope", params)
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["baselines"]["g2s_vgg"]["lr"] = 0.5
    with pytest.raises(CheckpointError, match="other `baselines.g2s_vgg` params.*retrain it first"):
        train_distill(root / "index.csv", root / "baselines", tmp_path / "o", "geodistill-g2s_vgg-cross",
                      parse_params(raw, "smoke.yaml"))


def test_a_runs_own_augmentation_trains_its_baseline_and_distillation(trained, tmp_path, monkeypatch):
    """runs.g2s_vgg-cross.augment (mirror on; the method's is off) is drawn by the baseline and by the
    distillation from it, is recorded in the checkpoint, and makes a baseline trained without it stale."""
    import geodistill.distill.teacher_student as ts
    root, _ = trained
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    assert not raw["baselines"]["g2s_vgg"]["augment"]["mirror"]
    raw["runs"]["g2s_vgg-cross"]["augment"] = raw["baselines"]["g2s_vgg"]["augment"] | {"mirror": True}
    raw["distill"]["variants"]["v"] = {"method": "g2s_vgg", "area": "cross"}
    params = parse_params(raw, "smoke.yaml")
    mirrored, original = [], baseline.training_batches

    def recorded(data, p, *args):
        mirrored.append(p.augment.mirror)
        yield from original(data, p, *args)
    monkeypatch.setattr(baseline, "training_batches", recorded)
    monkeypatch.setattr(ts, "training_batches", recorded)
    start = seed_dir(tmp_path / "baselines" / "g2s_vgg-cross", 2023)
    baseline.train_baseline(root / "index.csv", start, "g2s_vgg", "cross", params, 2023)
    assert torch.load(start / "best.pt", weights_only=True)["method_params"]["augment"]["mirror"]
    train_distill(root / "index.csv", tmp_path / "baselines", tmp_path / "v", "v", params, 2023)
    assert mirrored and all(mirrored)
    with pytest.raises(CheckpointError, match=r"or `runs\.g2s_vgg-cross\.augment`\) than params\.yaml"):
        train_distill(root / "index.csv", root / "baselines", tmp_path / "o", "v", params, 2023)


@pytest.mark.parametrize("bad, message", [
    ({"occlusion": {"kind": "fov", "fov_deg": [0, 180]}}, r"v\.occlusion\.fov_deg\.0: Input should be greater than 0"),
    ({"occlusion": {"kind": "fov", "fov_deg": [240, 180]}}, r"v\.occlusion\.fov_deg: .*low < high"),
    ({"target": {"kind": "sharpened", "tau": 0}}, r"v\.target\.tau: Input should be greater than 0"),
    ({"ema_alpha": 1.0}, r"v\.ema_alpha: Input should be less than 1"),
    ({"occlusion": {"kind": "cutout"}}, r"v\.occlusion: .*'cutout'.*'fov', 'random_patch', 'max_activation'"),
    ({"target": {"kind": "soft"}}, r"v\.target: .*'soft'.*'sharpened', 'raw', 'unimodal'"),
    ({"method": "g2s_vit"}, r"v\.method: unknown method 'g2s_vit'"),
])
def test_bad_variant_params_fail_before_any_work(bad, message):
    with pytest.raises(ConfigError, match=message):
        _with_variant(**bad)


def test_a_variant_overrides_a_default_key_by_key():
    params = _with_variant(target={"tau": 0.1})
    assert params.distill.variants["v"].target == SharpenedTarget(kind="sharpened", tau=0.1)
