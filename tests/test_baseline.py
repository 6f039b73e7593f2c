"""Baseline training machinery: tile-disjoint batches, resume, checkpoints, evaluate, localize."""
from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from stages.cli import app
from geodistill.config import ConfigError, parse_params
from geodistill.data.bev import ImageError
from geodistill.data.index import build_index, write_index
from geodistill.data.synth.writer import write_world
from geodistill.data.index import seeded_subset
from geodistill.evaluation import evaluate, evaluate_seeds
from geodistill.training import baseline
from geodistill.training.checkpoint import CheckpointError
from geodistill.training.samples import LocalizationSamples, tile_disjoint_batches
from geodistill.training.seeds import start_method
from geodistill.training.step import adamw, lr_schedule


def test_batches_never_share_a_tile_and_lose_nothing_they_can_keep():
    rng = np.random.default_rng(0)
    tiles = [{f"t{a}", f"t{a + 1}", f"t{a + 10}", f"t{a + 11}"} for a in rng.integers(0, 60, size=200)]
    batches = tile_disjoint_batches(tiles, batch_size=8, seed=1, epoch=0)
    for b in batches:
        assert 2 <= len(b) <= 8
        seen: set = set()
        for i in b:
            assert not (tiles[i] & seen)
            seen |= tiles[i]
    used = np.concatenate(batches)
    assert len(set(used)) == len(used) >= 190                       # only unmatched leftovers drop
    again = tile_disjoint_batches(tiles, batch_size=8, seed=1, epoch=0)
    assert all((a == b).all() for a, b in zip(batches, again))     # deterministic
    assert not all((a == b).all() for a, b in zip(batches, tile_disjoint_batches(tiles, 8, 1, 1)))
    assert sum(map(len, tile_disjoint_batches(tiles, 8, 1, 0, limit=40))) <= 40


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, smoke_params):
    """The smoke world and index, and params for a short g2s_vgg run."""
    root = tmp_path_factory.mktemp("baseline")
    write_world(smoke_params.synth, root / "world")
    write_index(build_index(root / "world", smoke_params.index), root / "index.csv")
    return root, smoke_params


def test_samples_name_a_corrupt_image(smoke_run, tmp_path):
    root, params = smoke_run
    rows = pd.read_csv(root / "index.csv").head(3).copy()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    rows.loc[1, "sat_path"] = str(bad)
    with pytest.raises(ImageError, match="broken.png"):
        LocalizationSamples(rows, (128, 64), 64).load()
    data = LocalizationSamples(pd.read_csv(root / "index.csv").head(3), (128, 64), 64)
    pano, sat, mpp = data.batch([2, 0])
    assert pano.shape == (2, 64, 128, 3) and sat.shape == (2, 64, 64, 3) and pano.dtype == torch.uint8
    np.testing.assert_allclose(mpp.numpy(), data.rows.sat_size[[2, 0]] * data.rows.mpp[[2, 0]] / 64,
                               rtol=1e-5)                                           # a float32 tensor


def test_every_seed_trains_its_own_folder_and_a_finished_seed_is_not_trained_again(smoke_run, tmp_path):
    root, params = smoke_run
    one = params.model_copy(update={"report": params.report.model_copy(update={"seeds": [2023]})})
    first = baseline.train_baseline_seeds(root / "index.csv", tmp_path / "run", "g2s_vgg", "cross", one)
    done = (tmp_path / "run" / "seed2023" / "last.pt").stat().st_mtime_ns
    both = baseline.train_baseline_seeds(root / "index.csv", tmp_path / "run", "g2s_vgg", "cross", params)
    assert list(both) == [2023, 2024] and both[2023] == first[2023]
    assert (tmp_path / "run" / "seed2023" / "last.pt").stat().st_mtime_ns == done        # not retrained
    a, b = (torch.load(tmp_path / "run" / f"seed{s}" / "best.pt", weights_only=True) for s in (2023, 2024))
    assert (a["seed"], b["seed"]) == (2023, 2024)
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])         # another initialisation
    # the default seed of a single run is the first of report.seeds
    again = baseline.train_baseline(root / "index.csv", tmp_path / "single", "g2s_vgg", "cross", params)
    assert again == first[2023]


def test_training_resumes_to_the_same_result_and_checkpoints_are_checked(smoke_run, killed_after_first_epoch):
    root, params = smoke_run
    clean = baseline.train_baseline(root / "index.csv", root / "a", "g2s_vgg", "same", params)
    with killed_after_first_epoch():
        baseline.train_baseline(root / "index.csv", root / "b", "g2s_vgg", "same", params)
    assert baseline.train_baseline(root / "index.csv", root / "b", "g2s_vgg", "same", params) == clean
    a = torch.load(root / "a" / "best.pt", weights_only=True)["model"]
    b = torch.load(root / "b" / "best.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

    model, state = baseline.load_checkpoint(root / "a" / "best.pt", "g2s_vgg")
    assert state["area"] == "same" and not model.training
    with pytest.raises(CheckpointError, match="holds method 'g2s_vgg', not 'g2s_dino'"):
        baseline.load_checkpoint(root / "a" / "best.pt", "g2s_dino")
    with pytest.raises(CheckpointError, match="not found.*nothing is trained implicitly"):
        baseline.load_checkpoint(root / "missing" / "best.pt")
    with pytest.raises(ConfigError, match="unknown method 'g2s_vit'"):
        baseline.train_baseline(root / "index.csv", root / "c", "g2s_vit", "same", params)
    torch.save({"weights": torch.zeros(2)}, root / "other.pt")
    with pytest.raises(CheckpointError, match="not a localization checkpoint"):
        baseline.load_checkpoint(root / "other.pt")


def test_the_scored_test_subset_is_seeded_exact_and_in_index_order():
    test = pd.DataFrame({"pano_path": [f"p{i}.jpg" for i in range(50)], "city": ["A", "B"] * 25})
    sub = seeded_subset(test, 12, seed=3)
    assert len(sub) == 12 and sub.pano_path.is_unique and set(sub.pano_path) <= set(test.pano_path)
    order = [int(p[1:-4]) for p in sub.pano_path]
    assert order == sorted(order) and list(sub.index) == list(range(12))
    assert sub.equals(seeded_subset(test, 12, seed=3))                # every run draws the same rows
    assert not sub.equals(seeded_subset(test, 12, seed=4))
    assert seeded_subset(test, 0, seed=3) is test and seeded_subset(test, 50, seed=3) is test


@pytest.mark.parametrize("method", ["g2s_vgg", "ccvpe"])
def test_evaluate_and_localize(smoke_run, tmp_path, method):
    root, params = smoke_run
    baseline.train_baseline(root / "index.csv", tmp_path / "run", method, "cross", params)
    index = pd.read_csv(root / "index.csv")
    test = index[(index.area == "cross") & (index.split == "test")]
    orient = pd.DataFrame({"pano_path": test.pano_path, "true_yaw_deg": 10.0, "pred_yaw_deg": 7.0})
    orient.to_csv(tmp_path / "orient.csv", index=False)
    m = evaluate(tmp_path / "run" / "best.pt", root / "index.csv", tmp_path / "orient.csv",
                 tmp_path / "pred.csv", tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == m
    assert m["2dof"]["n"] == m["3dof"]["n"] == len(test) and set(m["2dof"]["per_city"]) == set(test.city)
    assert m["3dof"]["orientation"]["mean_deg"] == pytest.approx(3.0)
    table = pd.read_csv(tmp_path / "pred.csv")
    centre = np.hypot(test.gt_row - test.sat_size / 2, test.gt_col - test.sat_size / 2) * test.mpp
    np.testing.assert_allclose(table.error_centre_m, centre)
    assert m["tile_centre"]["mean_m"] == pytest.approx(centre.mean())
    assert (table.yaw_residual_deg == 3.0).all()
    if method == "ccvpe":                       # its own yaw, from panoramas turned by the true 10 degrees
        assert m["headline_3dof"] == "3dof_own" and m["3dof_own"]["n"] == len(test)
        own = table.pred_yaw_own_deg.to_numpy()
        assert m["3dof_own"]["orientation"]["mean_deg"] == pytest.approx(   # float32 yaw, read back from the CSV
            np.abs((own - 10 + 180) % 360 - 180).mean(), abs=1e-4)
    else:
        assert m["headline_3dof"] == "3dof" and "3dof_own" not in m

    sub = evaluate(tmp_path / "run" / "best.pt", root / "index.csv", tmp_path / "orient.csv",
                   tmp_path / "sub.csv", tmp_path / "sub.json", max_samples=3, seed=7, batch_size=2)
    kept = pd.read_csv(tmp_path / "sub.csv")
    assert sub["2dof"]["n"] == 3 and m["2dof"]["n"] == len(test)
    assert list(kept.pano_path) == list(seeded_subset(test.reset_index(drop=True), 3, 7).pano_path)
    whole = table.set_index("pano_path").loc[kept.pano_path]        # the same predictions as in the full run,
    #                                                                 made in other batches
    np.testing.assert_allclose(kept.error_m, whole.error_m, rtol=1e-5, atol=1e-6)

    orient.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ValueError, match="no yaw prediction for 1 of the"):
        evaluate(tmp_path / "run" / "best.pt", root / "index.csv", tmp_path / "short.csv",
                 tmp_path / "p2.csv", tmp_path / "m2.json")

    row = test.iloc[0]
    runner = CliRunner()
    args = ["localize", "--checkpoint", str(tmp_path / "run" / "best.pt"), "--pano", row.pano_path,
            "--sat", row.sat_path, "--mpp", str(row.mpp), "--heatmap", str(tmp_path / "heat.png")]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    S = row.sat_size
    assert out["offset_m"]["east"] == pytest.approx((out["pixel"]["col"] - S / 2) * row.mpp)
    assert out["offset_m"]["north"] == pytest.approx((S / 2 - out["pixel"]["row"]) * row.mpp)
    assert (out["predicted_turn_deg"] is None) == (method != "ccvpe")
    assert cv2.imread(str(tmp_path / "heat.png")).shape == (S, S, 3)
    wide = tmp_path / "wide.png"
    cv2.imwrite(str(wide), np.zeros((S, S + 10, 3), np.uint8))
    res = runner.invoke(app, args[:6] + [str(wide), "--mpp", "0.2"])
    assert res.exit_code == 2 and "must be square" in res.output
    res = runner.invoke(app, ["localize", "--checkpoint", str(tmp_path / "none.pt"), "--pano", row.pano_path,
                              "--sat", row.sat_path, "--mpp", "0.2"])
    assert res.exit_code == 2 and "checkpoint not found" in res.output


def test_samples_decode_only_what_a_batch_asks_for(smoke_run):
    """A training epoch draws a few hundred of a split's samples: only those are decoded, and a
    lazily filled batch equals the one of a fully loaded copy."""
    root, _ = smoke_run
    rows = pd.read_csv(root / "index.csv").head(6)
    lazy, eager = LocalizationSamples(rows, (128, 64), 64), LocalizationSamples(rows, (128, 64), 64).load()
    first = lazy.batch([4, 1])
    assert lazy._decoded.tolist() == [False, True, False, False, True, False]
    assert set(lazy._tiles) == set(rows.sat_path.iloc[[1, 4]])
    for got, want in zip(lazy.batch([1, 4, 0]), eager.batch([1, 4, 0])):
        assert torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(first, eager.batch([4, 1])))


def test_the_validation_cap_keeps_a_seeded_subset_of_the_val_split(smoke_run):
    root, params = smoke_run
    p = params.baselines["g2s_vgg"]
    every = baseline.load_splits(root / "index.csv", "same", p, "t")
    capped = baseline.load_splits(root / "index.csv", "same", p, "t", max_val=3, seed=5)
    assert len(every["val"]) > 3 and len(capped["val"]) == 3
    assert capped["train"].rows.equals(every["train"].rows)
    assert capped["val"].rows.equals(seeded_subset(every["val"].rows, 3, 5))
    uncapped = baseline.load_splits(root / "index.csv", "same", p, "t", max_val=0, seed=5)
    assert uncapped["val"].rows.equals(every["val"].rows)


def test_the_lr_schedule_ramps_then_holds_or_decays_to_zero():
    def factors(kind: str, warmup: float, steps: int = 10) -> list[float]:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
        schedule = lr_schedule(optimizer, kind, warmup, steps)
        seen = []
        for _ in range(steps + 2):                             # two steps past the end keep the last factor
            seen.append(optimizer.param_groups[0]["lr"] / 2.0)
            optimizer.step()
            schedule.step()
        return seen
    assert factors("constant", 0.0) == [1.0] * 12
    assert factors("constant", 0.2)[:3] == [0.5, 1.0, 1.0]     # 2 warm-up steps: 1/2, 2/2
    cosine = factors("cosine", 0.2)
    assert cosine[:2] == [0.5, 1.0]
    decay = [0.5 * (1 + np.cos(np.pi * k / 8)) for k in range(1, 9)]   # steps 3..10 of 10
    np.testing.assert_allclose(cosine[2:10], decay, rtol=1e-12)
    assert cosine[9] == pytest.approx(0.0, abs=1e-15) and cosine[10:] == [cosine[9]] * 2


def test_the_fused_optimiser_makes_the_reference_adamw_update():
    """adamw (torch's fused kernel) against torch's per-tensor AdamW: the same update, to float32
    rounding, over steps with weight decay, on tensors of several shapes."""
    torch.manual_seed(0)
    start = [torch.randn(3, 5), torch.randn(7), torch.randn(2, 3, 4, 4)]
    grads = [[torch.randn_like(w) for w in start] for _ in range(5)]
    ends = []
    for make in (lambda ws: adamw(ws, 1e-2, 1e-3), lambda ws: torch.optim.AdamW(ws, lr=1e-2, weight_decay=1e-3)):
        weights = [w.clone().requires_grad_(True) for w in start]
        optimizer = make(weights)
        for step in grads:
            for w, g in zip(weights, step):
                w.grad = g.clone()
            optimizer.step()
        ends.append([w.detach() for w in weights])
    for fused, reference, first in zip(*ends, start):
        assert not torch.equal(fused, first)                          # it moved: 5 steps of 1e-2
        torch.testing.assert_close(fused, reference, rtol=1e-5, atol=1e-6)


def test_parallel_seeds_give_each_seed_exactly_its_one_process_result(smoke_run, tmp_path):
    """Two seeds trained at once, each in its own process, end as they do one after another with the
    same thread count: bit for bit, whatever runs beside them."""
    root, params = smoke_run
    runs = {}
    for parallel in (1, 2):
        p = params.model_copy(update={"train": params.train.model_copy(update={"threads": 1, "parallel_seeds": parallel})})
        results = baseline.train_baseline_seeds(root / "index.csv", tmp_path / f"p{parallel}", "g2s_vgg", "cross", p)
        assert list(results) == p.report.seeds
        runs[parallel] = {s: pd.read_csv(tmp_path / f"p{parallel}" / f"seed{s}" / "history.csv").drop(columns="seconds")
                          for s in p.report.seeds}
    for seed in params.report.seeds:
        pd.testing.assert_frame_equal(runs[1][seed], runs[2][seed], check_exact=True)
    assert not runs[1][2023].equals(runs[1][2024])

    index = pd.read_csv(root / "index.csv")
    test = index[(index.area == "cross") & (index.split == "test")]
    pd.DataFrame({"pano_path": test.pano_path, "true_yaw_deg": 5.0, "pred_yaw_deg": 1.0}).to_csv(
        tmp_path / "orient.csv", index=False)
    scored = {}
    for parallel in (1, 2):                                   # scoring side by side changes nothing either
        t = params.train.model_copy(update={"threads": 1, "parallel_seeds": parallel})
        scored[parallel] = evaluate_seeds(tmp_path / "p1", params.report.seeds, root / "index.csv", tmp_path / "orient.csv",
                                          tmp_path / f"e{parallel}", tmp_path / f"e{parallel}.json", parallel=t)
    assert scored[1] == scored[2] and scored[1]["seeds"] == params.report.seeds


def test_seed_workers_are_forked_only_where_it_is_safe(monkeypatch):
    """One-thread workers on Linux inherit this process's imports (the test above forks them from a
    process that has trained already); multi-thread workers, other systems and a process that
    touched CUDA spawn."""
    assert start_method(1) == ("fork" if sys.platform.startswith("linux") else "spawn")
    assert start_method(2) == "spawn"
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert start_method(1) == "spawn"
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert start_method(1) == "spawn"


def test_several_kinds_of_parallelism_at_once_are_refused(smoke_params):
    with pytest.raises(ConfigError, match="parallel_seeds.*devices"):
        parse_params({**smoke_params.model_dump(mode="json"),
                      "train": {**smoke_params.train.model_dump(mode="json"), "devices": 2, "parallel_seeds": 2}})
