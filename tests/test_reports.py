"""Reports: which runs each table reads, exact rows, columns and values, published numbers in their
cells, a missing metrics file named, the written files, every figure a valid PNG."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from stages.cli import app
from geodistill.config import ConfigError, parse_params
from geodistill.metrics import across_seeds, localization_report, orientation_metrics
from geodistill.reports.figures import write_figures
from geodistill.reports.qualitative import load_teacher_student
from geodistill.reports.readme import blocks, fill, update_readme
from geodistill.reports.claims import claims_table, detectable_change, paired_change, verdict
from geodistill.reports.runs import ReportError, geodistill_variant
from geodistill.reports.tables import build_tables, describe_dataset, load_published, write_tables
from geodistill.training.baseline import build_model
from geodistill.training.checkpoint import CheckpointError, seed_dir
from conftest import REPO

EXTRA_VARIANTS = {   # on top of smoke.yaml's geodistill-g2s_vgg-cross, augment-ccvpe-same, fov60_120-g2s_vgg-cross
    "geodistill-ccvpe-cross": {"method": "ccvpe", "area": "cross", "epochs_factor": 0.5},
    "ema_step-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross", "ema_every": "step"},
    "random_patch-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross",
                                   "occlusion": {"kind": "random_patch", "block_px": 7, "ratio": [0.3, 0.5]}},
    "max_activation-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross",
                                     "occlusion": {"kind": "max_activation", "fraction": 0.2}},
    "raw-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross", "target": {"kind": "raw"}},
    "unimodal-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross",
                               "target": {"kind": "unimodal", "sigma_cells": 4.0, "tau": 0.06}},
    "augment-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross", "mode": "augment"},
    "continue-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross", "mode": "augment",
                               "occlusion": {"fov_deg": [360, 361]}},
    "fov240_300-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross", "occlusion": {"fov_deg": [240, 300]}},
    "fov120_180-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross", "occlusion": {"fov_deg": [120, 180]}},
}
BASELINES = [f"{m}-{a}" for m in ("g2s_vgg", "g2s_dino", "ccvpe") for a in ("same", "cross")]
ERRORS = {"g2s_vgg-cross": [1.0, 2.0, 3.0, 4.0, 10.0],                 # mean 4.0, median 3.0
          "geodistill-g2s_vgg-cross": [1.0, 1.5, 2.0, 3.0, 5.0]}       # mean 2.5, median 2.0
NAN = float("nan")
STATS = ["mean_m", "mean_m_std", "median_m", "median_m_std"]        # every run's 2-DoF columns
STUDENT = [f"student_{c}" for c in STATS]                           # a distillation run's other model
STUDENT_SCALE = 1.2                                                  # its errors, x the teacher's


def raw_params(seeds: list[int] = (2023,)) -> dict:
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["distill"]["variants"].update(EXTRA_VARIANTS)
    raw["report"]["seeds"] = list(seeds)
    return raw


def errors_of(run: str, i: int) -> np.ndarray:
    """Fixed per-sample errors of a run: ERRORS where given, else a run-specific scale of one pattern."""
    return np.array(ERRORS.get(run, [(0.5 + 0.1 * i) * e for e in (1.0, 2.0, 3.0, 4.0, 10.0)]))


def write_run(root, run: str, method: str, area: str, errors: np.ndarray, own_yaw: bool, seeds,
              distilled: bool = False) -> None:
    """reports/metrics/<run>.json and data/eval/<run>/seed<s>.csv as evaluation.evaluate_seeds writes
    them; seed number k (0, 1, ...) has every error + k metres. A distillation run has two models:
    the teacher with `errors`, the student with STUDENT_SCALE x them (<run>/<model>/seed<s>.csv)."""
    models = {"teacher": errors, "student": STUDENT_SCALE * errors} if distilled else {"": errors}
    blocks = {model: across_seeds({str(s): seed_metrics(root / "data" / "eval" / run / model / f"seed{s}.csv", method,
                                                        area, e + k, own_yaw) for k, s in enumerate(seeds)})
              for model, e in models.items()}
    metrics = blocks[""] if not distilled else {"method": method, "area": area, "seeds": list(seeds), **blocks}
    (root / "reports" / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "reports" / "metrics" / f"{run}.json").write_text(json.dumps(metrics, indent=2) + "\n")


def seed_metrics(csv, method: str, area: str, errors: np.ndarray, own_yaw: bool) -> dict:
    """One seed's metrics (returned) and per-sample CSV (written), as evaluation.evaluate."""
    n = len(errors)
    table = pd.DataFrame({"pano_path": [f"data/world/C/panorama/p{k},1.0,2.0,.jpg" for k in range(n)],
                          "city": ["Calderport" if k % 2 else "Ashford" for k in range(n)],
                          "gt_row": 30.0, "gt_col": 31.0, "pred_row": 30.0 + errors, "pred_col": 31.0,
                          "error_m": errors, "error_3dof_m": errors + 0.5, "pred_row_3dof": 30.5 + errors,
                          "pred_col_3dof": 31.0, "yaw_residual_deg": 1.0, "error_centre_m": 12.0})
    metrics = {"method": method, "area": area, "checkpoint_epoch": 2, "2dof": localization_report(table, "error_m"),
               "3dof": {**localization_report(table, "error_3dof_m"),
                        "orientation": orientation_metrics(np.full(n, 1.0), np.zeros(n))},
               "tile_centre": localization_report(table, "error_centre_m"), "headline_3dof": "3dof"}
    if own_yaw:
        table = table.assign(pred_yaw_deg=2.0, error_3dof_own_m=errors + 1, true_yaw_deg=10.0, pred_yaw_own_deg=8.0)
        metrics["3dof_own"] = {**localization_report(table, "error_3dof_own_m"),
                               "orientation": orientation_metrics([8.0, 12.0, 14.0, 10.0, 16.0][:n], np.full(n, 10.0))}
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    return metrics


def write_history(path, distill: bool, epochs: int, start: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    val = start - 0.5 * np.arange(epochs)
    columns = ({"val_student_mean_m": val, "val_student_median_m": val / 2, "val_teacher_mean_m": val - 0.2,
                "val_teacher_median_m": val / 2 - 0.1} if distill else {"val_mean_m": val, "val_median_m": val / 2})
    pd.DataFrame({"epoch": np.arange(1, epochs + 1), "train_loss": 1.0 / np.arange(1, epochs + 1), **columns,
                  "seconds": 3.0}).to_csv(path, index=False)


def write_world_and_checkpoints(root, params) -> None:
    """Three cross-area test samples (PNG panorama 128x64, tile 64x64) in data/index.csv, and the
    last.pt of each cross-area GeoDistill run's first seed."""
    rng = np.random.default_rng(0)
    rows = []
    for k in range(3):
        pano, sat = root / "world" / f"pano{k}.png", root / "world" / f"sat{k}.png"
        pano.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(pano), rng.integers(0, 255, (64, 128, 3), dtype=np.uint8))
        cv2.imwrite(str(sat), rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
        rows.append({"pano_path": str(pano), "sat_path": str(sat), "city": "Calderport", "split": "test",
                     "area": "cross", "gt_row": 20.0 + 5 * k, "gt_col": 40.0 - 5 * k, "mpp": 1.0, "sat_size": 64,
                     "yaw_deg": 0.0, "tiles": str(sat)})
    pd.DataFrame(rows).to_csv(root / "data" / "index.csv", index=False)
    for method in ("g2s_vgg", "ccvpe"):                               # tiny untrained teacher and student
        p, name = params.baselines[method], f"geodistill-{method}-cross"
        student, teacher = build_model(p, 2.0, seed=1), build_model(p, 2.0, seed=2)
        torch.save({"method": method, "area": "cross", "method_params": p.model_dump(mode="json"),
                    "camera_height_m": 2.0, "variant": name, "epoch": 1,
                    "model": student.state_dict(), "teacher": teacher.state_dict()},
                   seed_dir(root / "data" / "distill" / name, params.report.seeds[0]) / "last.pt")


def make_project(tmp_path, seeds: list[int]):
    """A params file and every output the reports read, in tmp_path (the repository layout)."""
    raw = raw_params(seeds)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))   # table rows follow params order
    params = parse_params(raw)
    runs = [(r, *r.split("-")) for r in BASELINES]
    runs += [(n, v.method, v.area) for n, v in params.distill.variants.items()]
    for i, (run, method, area) in enumerate(runs):
        write_run(tmp_path, run, method, area, errors_of(run, i), method == "ccvpe", seeds,
                  distilled=run in params.distill.variants)
    for seed in seeds:
        for run in BASELINES:
            write_history(seed_dir(tmp_path / "data" / "baselines" / run, seed) / "history.csv", False, 3, 8.0)
        for name in params.distill.variants:
            write_history(seed_dir(tmp_path / "data" / "distill" / name, seed) / "history.csv", True, 2, 6.0)
    orientation = {}
    for area, pred in (("same", [1.0, -2.0, 3.0, -179.0]), ("cross", [4.0, -5.0, 0.0, 178.0])):
        true = [0.0, 0.0, 0.0, 179.0]                                 # last pair wraps: 358 -> -2 degrees
        out = tmp_path / "data" / "orientation" / area / "test_predictions.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"pano_path": [f"p{k}" for k in range(4)], "true_yaw_deg": true, "pred_yaw_deg": pred}) \
            .to_csv(out, index=False)
        orientation[area] = {**orientation_metrics(pred, true), "best_epoch": 2, "uniform_guess_mean_deg": 22.5}
    (tmp_path / "reports" / "metrics" / "orientation.json").write_text(json.dumps(orientation, indent=2))
    write_world_and_checkpoints(tmp_path, params)
    return tmp_path, params


@pytest.fixture
def project(tmp_path):
    """One training seed: the tables hold that seed's numbers, the std columns NaN."""
    return make_project(tmp_path, [2023])


@pytest.fixture
def project_two_seeds(tmp_path):
    """Two training seeds, the second's errors 1 m above the first's."""
    return make_project(tmp_path, [7, 8])


def key_rows(table: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return [tuple(r) for r in table[columns].itertuples(index=False)]


def cell(table: pd.DataFrame, column: str, **where) -> float:
    match = table
    for k, v in where.items():
        match = match[match[k] == v]
    assert len(match) == 1, where
    return match[column].iloc[0]


def test_geodistill_variant_is_the_one_with_the_default_knobs_and_duplicates_fail():
    params = parse_params(raw_params())
    assert geodistill_variant(params, "g2s_vgg", "cross") == "geodistill-g2s_vgg-cross"   # not ema_step-...
    assert geodistill_variant(params, "ccvpe", "cross") == "geodistill-ccvpe-cross"       # own epochs_factor
    assert geodistill_variant(params, "g2s_dino", "cross") is None
    raw = raw_params()
    raw["distill"]["variants"]["copy-g2s_vgg-cross"] = {"method": "g2s_vgg", "area": "cross"}
    with pytest.raises(ConfigError, match="copy-g2s_vgg-cross"):
        geodistill_variant(parse_params(raw), "g2s_vgg", "cross")


def test_every_table_has_exactly_its_rows_and_columns(project):
    root, params = project
    tables = build_tables(params, root / "reports" / "metrics", load_published())
    assert list(tables) == ["main", "supervised", "occlusion", "uncertainty", "augment_vs_distill", "fov_sweep",
                            "orientation"]
    main = tables["main"]
    assert list(main.columns) == ["method", "area", "model", "run", *STATS, "mean_change_pct",
                                  "median_change_pct", "paper_mean_m", "paper_median_m", "paper_mean_change_pct",
                                  "paper_median_change_pct"]
    assert key_rows(main, ["method", "area", "model", "run"]) == [
        ("g2s_vgg", "cross", "baseline", "g2s_vgg-cross"),
        ("g2s_vgg", "cross", "GeoDistill teacher", "geodistill-g2s_vgg-cross"),
        ("g2s_vgg", "cross", "GeoDistill student", "geodistill-g2s_vgg-cross"),
        ("g2s_vgg", "same", "baseline", "g2s_vgg-same"), ("g2s_dino", "cross", "baseline", "g2s_dino-cross"),
        ("g2s_dino", "same", "baseline", "g2s_dino-same"), ("ccvpe", "cross", "baseline", "ccvpe-cross"),
        ("ccvpe", "cross", "GeoDistill teacher", "geodistill-ccvpe-cross"),
        ("ccvpe", "cross", "GeoDistill student", "geodistill-ccvpe-cross"), ("ccvpe", "same", "baseline", "ccvpe-same")]
    sup = tables["supervised"]
    assert list(sup.columns) == ["supervision", "method", "model", "cross_run", "same_run",
                                 *[f"{a}_{s}" for a in ("cross", "same") for s in STATS], "paper_cross_mean_m",
                                 "paper_cross_median_m", "paper_same_mean_m", "paper_same_median_m"]
    assert key_rows(sup, ["supervision", "method", "model", "cross_run", "same_run"]) == [
        ("full", "ccvpe", "baseline", "ccvpe-cross", "ccvpe-same"),
        ("full", "ccvpe", "GeoDistill teacher", "geodistill-ccvpe-cross", ""),
        ("full", "ccvpe", "GeoDistill student", "geodistill-ccvpe-cross", ""),
        ("full", "hcnet", "baseline (not replicated)", "", ""),
        ("weak", "g2s_vgg", "baseline", "g2s_vgg-cross", "g2s_vgg-same"),
        ("weak", "g2s_vgg", "GeoDistill teacher", "geodistill-g2s_vgg-cross", ""),
        ("weak", "g2s_vgg", "GeoDistill student", "geodistill-g2s_vgg-cross", ""),
        ("weak", "g2s_dino", "baseline", "g2s_dino-cross", "g2s_dino-same")]
    occ = tables["occlusion"]
    assert list(occ.columns) == ["method", "area", "occlusion", "settings", "run", *STATS, *STUDENT,
                                 "paper_mean_m", "paper_median_m"]
    assert key_rows(occ, ["method", "area", "occlusion", "settings", "run"]) == [
        ("g2s_vgg", "cross", "fov", "fov_deg=[180, 240]", "geodistill-g2s_vgg-cross"),
        ("g2s_vgg", "cross", "random_patch", "block_px=7, ratio=[0.3, 0.5]", "random_patch-g2s_vgg-cross"),
        ("g2s_vgg", "cross", "max_activation", "fraction=0.2", "max_activation-g2s_vgg-cross")]
    unc = tables["uncertainty"]
    assert list(unc.columns) == ["method", "area", "target", "settings", "run", *STATS, *STUDENT,
                                 "paper_mean_m", "paper_median_m"]
    assert key_rows(unc, ["target", "settings", "run"]) == [
        ("none (no distillation)", "", "g2s_vgg-cross"), ("sharpened", "tau=0.06", "geodistill-g2s_vgg-cross"),
        ("raw", "", "raw-g2s_vgg-cross"), ("unimodal", "sigma_cells=4, tau=0.06", "unimodal-g2s_vgg-cross")]
    aug = tables["augment_vs_distill"]
    assert list(aug.columns) == ["method", "area", "training", "occlusion", "run", *STATS, *STUDENT,
                                 "paper_mean_m", "paper_median_m"]
    assert key_rows(aug, ["method", "area", "training", "occlusion", "run"]) == [
        ("g2s_vgg", "cross", "baseline", "", "g2s_vgg-cross"),
        ("g2s_vgg", "cross", "augment", "fov: fov_deg=[180, 240]", "augment-g2s_vgg-cross"),
        ("g2s_vgg", "cross", "augment", "fov: fov_deg=[360, 361] (nothing occluded)", "continue-g2s_vgg-cross"),
        ("g2s_vgg", "cross", "GeoDistill", "fov: fov_deg=[180, 240]", "geodistill-g2s_vgg-cross"),
        ("ccvpe", "same", "baseline", "", "ccvpe-same"),
        ("ccvpe", "same", "augment", "fov: fov_deg=[180, 240]", "augment-ccvpe-same")]
    fov = tables["fov_sweep"]
    assert list(fov.columns) == ["method", "area", "fov_low_deg", "fov_high_deg", "run", *STATS, *STUDENT,
                                 "mean_change_pct", "median_change_pct"]
    assert key_rows(fov, ["fov_low_deg", "fov_high_deg", "run"]) == [
        (60, 120, "fov60_120-g2s_vgg-cross"), (120, 180, "fov120_180-g2s_vgg-cross"),
        (180, 240, "geodistill-g2s_vgg-cross"), (240, 300, "fov240_300-g2s_vgg-cross")]
    ori = tables["orientation"]
    assert list(ori.columns) == ["area", "model", "run", "n", "mean_deg", "median_deg", "within_1_deg_pct",
                                 "within_3_deg_pct", "within_5_deg_pct"]
    assert key_rows(ori, ["area", "model", "run", "n"]) == [
        ("same", "orientation network", "orientation", 4), ("same", "ccvpe own yaw", "ccvpe-same", 5),
        ("cross", "orientation network", "orientation", 4), ("cross", "ccvpe own yaw", "ccvpe-cross", 5)]


def test_values_changes_and_published_numbers_land_in_their_cells(project):
    root, params = project
    t = build_tables(params, root / "reports" / "metrics", load_published())
    main = t["main"]
    g = dict(method="g2s_vgg", area="cross", model="GeoDistill teacher")
    assert cell(main, "mean_m", **g) == 2.5 and cell(main, "median_m", **g) == 2.0
    st = dict(method="g2s_vgg", area="cross", model="GeoDistill student")       # its errors 1.2 x the teacher's
    assert cell(main, "mean_m", **st) == pytest.approx(3.0) and cell(main, "median_m", **st) == pytest.approx(2.4)
    assert cell(main, "mean_change_pct", **st) == pytest.approx(-25.0) and cell(main, "paper_mean_m", **st) == 4.49
    assert cell(main, "mean_change_pct", **g) == pytest.approx(-37.5)              # (2.5 - 4) / 4
    assert cell(main, "median_change_pct", **g) == pytest.approx(-100 / 3)         # (2 - 3) / 3
    assert cell(main, "paper_mean_m", **g) == 4.49 and cell(main, "paper_median_m", **g) == 1.22
    assert cell(main, "paper_mean_change_pct", **g) == pytest.approx(-13.653846, abs=1e-5)   # (4.49 - 5.20) / 5.20
    assert cell(main, "paper_median_change_pct", **g) == pytest.approx(-15.277778, abs=1e-5)  # (1.22 - 1.44) / 1.44
    b = dict(method="g2s_vgg", area="cross", model="baseline")
    assert (cell(main, "mean_m", **b), cell(main, "median_m", **b)) == (4.0, 3.0)
    assert math.isnan(cell(main, "mean_change_pct", **b)) and math.isnan(cell(main, "paper_mean_change_pct", **b))
    assert (cell(main, "paper_mean_m", **b), cell(main, "paper_median_m", **b)) == (5.20, 1.44)
    s = dict(method="g2s_vgg", area="same", model="baseline")
    assert cell(main, "paper_mean_m", **s) == 4.81 and math.isnan(cell(main, "paper_median_m", **s))
    c = dict(method="ccvpe", area="cross", model="GeoDistill teacher")
    assert cell(main, "paper_mean_change_pct", **c) == pytest.approx(-18.511066, abs=1e-5)   # (4.05 - 4.97) / 4.97

    sup = t["supervised"]
    hc = dict(method="hcnet")
    assert [cell(sup, k, **hc) for k in ("paper_cross_mean_m", "paper_cross_median_m", "paper_same_mean_m",
                                         "paper_same_median_m")] == [3.35, 1.59, 2.65, 1.17]
    assert math.isnan(cell(sup, "cross_mean_m", **hc))
    assert cell(sup, "cross_mean_m", method="g2s_vgg", model="GeoDistill teacher") == 2.5
    assert cell(sup, "cross_mean_m", method="g2s_vgg", model="GeoDistill student") == pytest.approx(3.0)
    assert math.isnan(cell(sup, "same_mean_m", method="g2s_vgg", model="GeoDistill teacher"))
    assert cell(sup, "paper_same_mean_m", method="ccvpe", model="GeoDistill teacher") == 3.21

    occ = t["occlusion"]
    paper = lambda kind: (cell(occ, "paper_mean_m", occlusion=kind), cell(occ, "paper_median_m", occlusion=kind))
    assert paper("random_patch") == (5.21, 1.44) and paper("max_activation") == (5.14, 1.42)
    assert cell(occ, "mean_m", occlusion="fov") == 2.5 and cell(occ, "paper_mean_m", occlusion="fov") == 4.49
    assert cell(occ, "student_mean_m", occlusion="fov") == pytest.approx(3.0)
    unc = t["uncertainty"]
    assert [cell(unc, "paper_mean_m", target=k) for k in ("none (no distillation)", "sharpened", "raw", "unimodal")] \
        == [5.20, 4.49, 5.23, 4.96]
    assert cell(unc, "paper_median_m", target="unimodal") == 1.36
    assert cell(unc, "mean_m", target="none (no distillation)") == 4.0
    assert math.isnan(cell(unc, "student_mean_m", target="none (no distillation)"))      # a baseline has no student
    aug = t["augment_vs_distill"]
    assert cell(aug, "paper_mean_m", run="augment-g2s_vgg-cross") == 5.64
    assert math.isnan(cell(aug, "paper_median_m", run="augment-g2s_vgg-cross"))
    assert math.isnan(cell(aug, "paper_mean_m", run="continue-g2s_vgg-cross"))       # nothing occluded: not the paper's
    assert math.isnan(cell(aug, "paper_mean_m", run="augment-ccvpe-same"))           # the paper's number is cross-area
    fov = t["fov_sweep"]
    assert cell(fov, "mean_change_pct", run="geodistill-g2s_vgg-cross") == pytest.approx(-37.5)
    ori = t["orientation"]
    assert cell(ori, "mean_deg", area="cross", model="ccvpe own yaw") == pytest.approx(2.8)   # |[-2, 2, 4, 0, 6]|
    assert cell(ori, "within_3_deg_pct", area="cross", model="ccvpe own yaw") == pytest.approx(60.0)
    assert cell(ori, "mean_deg", area="same", model="orientation network") == pytest.approx(2.0)   # 1, 2, 3, 2


def test_a_missing_metrics_file_is_named(project):
    root, params = project
    (root / "reports" / "metrics" / "unimodal-g2s_vgg-cross.json").unlink()
    with pytest.raises(FileNotFoundError, match="unimodal-g2s_vgg-cross.json"):
        build_tables(params, root / "reports" / "metrics", load_published())
    res = CliRunner().invoke(app, ["tables", "--config", str(root / "params.yaml"), "--results",
                                   str(root / "reports" / "metrics"), "--out", str(root / "reports" / "tables")])
    assert res.exit_code == 2 and "unimodal-g2s_vgg-cross.json" in res.output
    assert not (root / "reports" / "tables").exists()


def test_written_tables_carry_their_caption_and_rows(project):
    root, params = project
    out = root / "reports" / "tables"
    res = CliRunner().invoke(app, ["tables", "--config", str(root / "params.yaml"), "--results",
                                   str(root / "reports" / "metrics"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    tables = build_tables(params, root / "reports" / "metrics", load_published())
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{s}" for n in tables for s in ("md", "csv", "tex"))
    for name, table in tables.items():
        md = (out / f"{name}.md").read_text()
        assert "synthetic world (params.yaml)" in md
        assert ("published numbers, on VIGOR" in md) == (name != "fov_sweep" and name != "orientation")
        assert sum(line.startswith("| ") for line in md.splitlines()) == len(table) + 2     # header, alignment
        pd.testing.assert_frame_equal(blank_nan(pd.read_csv(out / f"{name}.csv")), blank_nan(table), check_dtype=False)
        tex = (out / f"{name}.tex").read_text()
        assert "\\begin{tabular}" in tex and f"\\label{{tab:{name}}}" in tex and "synthetic world" in tex
    md = (out / "main.md").read_text()
    assert "| g2s_vgg | cross | GeoDistill teacher | geodistill-g2s_vgg-cross | 2.50 | 2.00 | -37.5 | -33.3 | 4.49 | 1.22 " \
           "| -13.7 | -15.3 |" in md
    assert "| g2s_vgg | same | baseline | g2s_vgg-same |" in md and "| 4.81 | – |" in md
    assert "geodistill-g2s\\_vgg-cross & 2.50 & 2.00 & -37.5 & -33.3" in (out / "main.tex").read_text()


def test_empty_tables_are_written_with_their_columns(tmp_path, smoke_params):
    tables = {"fov_sweep": pd.DataFrame(columns=["method", "run", "mean_m"])}
    write_tables(tables, tmp_path, "VIGOR")
    md = (tmp_path / "fov_sweep.md").read_text()
    assert "| method | run | mean_m |" in md and "(no such runs in params)" in md
    assert describe_dataset(smoke_params, REPO / "configs" / "smoke.yaml") == "synthetic world (smoke.yaml)"
    vigor = smoke_params.model_copy(update={"index": smoke_params.index.model_copy(update={
        "same_area_cities": ["NewYork", "Chicago"], "cross_area_train": ["NewYork"], "cross_area_test": ["Chicago"]})})
    assert describe_dataset(vigor, REPO / "configs" / "vigor.yaml") == "VIGOR"


def blank_nan(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype(object).where(table.notna(), "")


def is_png(path) -> bool:
    with Image.open(path) as image:
        image.verify()
        return image.format == "PNG" and image.size[0] > 100 and image.size[1] > 100


def test_every_figure_is_written_as_a_valid_png(project):
    root, params = project
    out = root / "reports" / "figures"
    data = root / "data"
    res = CliRunner().invoke(app, ["figures", "--config", str(root / "params.yaml"), "--eval", str(data / "eval"),
                                   "--runs", str(data), "--out", str(out), "--index", str(data / "index.csv")])
    assert res.exit_code == 0, res.output
    names = ["error_cdf.png", "fov_sweep.png", "training_curves.png", "orientation_error.png",
             "qualitative-g2s_vgg.png", "qualitative-ccvpe.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert all(is_png(out / n) for n in names)


def test_figures_name_a_missing_input(project):
    root, params = project
    (root / "data" / "eval" / "fov240_300-g2s_vgg-cross" / "teacher" / "seed2023.csv").unlink()
    with pytest.raises(FileNotFoundError, match="fov240_300-g2s_vgg-cross/teacher/seed2023.csv"):
        write_figures(params, root / "data" / "eval", root / "data", root / "figures", "VIGOR")


def test_qualitative_needs_a_checkpoint_with_a_teacher(project):
    root, _ = project
    path = root / "data" / "distill" / "geodistill-g2s_vgg-cross" / "seed2023" / "last.pt"
    state = torch.load(path, weights_only=True)
    teacher, student, _ = load_teacher_student(path)
    assert torch.equal(teacher.state_dict()[next(iter(state["teacher"]))], next(iter(state["teacher"].values())))
    assert not all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), student.state_dict().values()))
    del state["teacher"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="no teacher"):
        load_teacher_student(path)


def test_readme_blocks_are_filled_from_the_generated_tables(tmp_path):
    (tmp_path / "main.md").write_text("| a |\n|---|\n| 1 |\n")
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table:main -->\nold numbers\n<!-- /table:main -->\nend\n")
    assert update_readme(readme, tmp_path) == ["main"]
    assert readme.read_text() == "intro\n<!-- table:main -->\n| a |\n|---|\n| 1 |\n<!-- /table:main -->\nend\n"
    readme.write_text("<!-- table:claims -->\n<!-- /table:claims -->\n")
    with pytest.raises(FileNotFoundError, match="table:claims needs .*claims.md"):
        update_readme(readme, tmp_path)


def test_readme_values_in_prose_are_computed_from_the_reports(tmp_path):
    (tmp_path / "tables").mkdir()
    pd.DataFrame({"stage": ["a", "b"], "how": "ran", "seconds": [90.0, 3.0], "cpu": "AMD EPYC", "cores": 2,
                  "gflops": 136.94}).to_csv(tmp_path / "pipeline_time.csv", index=False)
    pd.DataFrame({"run": ["g-x"], "reference": ["b-x"], "mean_change_pct": [-3.66], "ci_low_change_pct": [-8.14],
                  "ci_high_change_pct": [0.26], "half_width_pct": [4.2], "detectable_change_pct": [5.84],
                  "verdict": ["inconclusive"]}).to_csv(tmp_path / "tables" / "claims.csv", index=False)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "b-x.json").write_text(json.dumps(
        {"2dof": {"mean_m": 2.0, "median_m": 1.0}, "tile_centre": {"mean_m": 5.0, "median_m": 8.0}}))
    readme = tmp_path / "README.md"
    readme.write_text("takes <!-- value:minutes -->48<!-- /value --> min on <!-- value:machine --><!-- /value -->; "
                      "<!-- value:change:g-x:b-x -->?<!-- /value --> (<!-- value:ci:g-x:b-x --><!-- /value -->, "
                      "<!-- value:verdict:g-x:b-x --><!-- /value -->), <!-- value:vs_centre:b-x --><!-- /value -->\n")
    update_readme(readme, tmp_path / "tables")
    assert readme.read_text() == (
        "takes <!-- value:minutes -->1.6<!-- /value --> min on <!-- value:machine -->AMD EPYC, 2 cores, 137 float32 "
        "GFLOPS<!-- /value -->; <!-- value:change:g-x:b-x -->−3.7 %<!-- /value --> (<!-- value:ci:g-x:b-x -->−8.1 to "
        "+0.3 %<!-- /value -->, <!-- value:verdict:g-x:b-x -->inconclusive<!-- /value -->), "
        "<!-- value:vs_centre:b-x -->0.40/0.12<!-- /value -->\n")
    readme.write_text("<!-- value:change:nope:b-x -->1<!-- /value -->")
    with pytest.raises(KeyError, match="change:nope:b-x"):
        update_readme(readme, tmp_path / "tables")



def test_the_readme_shows_the_committed_tables_and_values_verbatim():
    """README.md's results are the tables stage's output as committed, and every number in its
    prose marked as a value is the committed reports' (pipeline time, claims, baselines against
    the tile centre): `geodistill readme` changes nothing (after `dvc repro`, run it and commit both)."""
    text = (REPO / "README.md").read_text()
    assert {"main", "occlusion", "uncertainty", "augment_vs_distill", "fov_sweep"} <= set(blocks(text))
    assert fill(text, REPO / "reports" / "tables") == text


def test_several_seeds_give_mean_and_std_in_every_table_and_a_curve_per_seed(project_two_seeds):
    root, params = project_two_seeds
    metrics = json.loads((root / "reports" / "metrics" / "g2s_vgg-cross.json").read_text())
    assert metrics["seeds"] == [7, 8] and set(metrics["per_seed"]) == {"7", "8"}
    assert metrics["per_seed"]["8"]["2dof"]["mean_m"] == 5.0 and metrics["2dof"]["n"] == 5   # counts stay whole
    main = build_tables(params, root / "reports" / "metrics", load_published())["main"]
    g, b = dict(model="GeoDistill teacher", area="cross", method="g2s_vgg"), dict(model="baseline", area="cross",
                                                                            method="g2s_vgg")
    assert (cell(main, "mean_m", **b), cell(main, "median_m", **b)) == (4.5, 3.5)      # seeds: 4 and 5, 3 and 4
    assert cell(main, "mean_m", **g) == 3.0 and cell(main, "mean_m_std", **g) == pytest.approx(math.sqrt(0.5))
    assert cell(main, "median_m_std", **b) == pytest.approx(math.sqrt(0.5))
    assert cell(main, "mean_change_pct", **g) == pytest.approx(-100 / 3)             # (3 - 4.5) / 4.5: of the means
    out = root / "reports" / "tables"
    res = CliRunner().invoke(app, ["tables", "--config", str(root / "params.yaml"), "--results",
                                   str(root / "reports" / "metrics"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "main.md").read_text()
    assert "mean ± standard deviation over 2 training seeds (7, 8)" in md
    assert "| g2s_vgg | cross | GeoDistill teacher | geodistill-g2s_vgg-cross | 3.00 ± 0.71 | 2.50 ± 0.71 | -33.3 |" in md
    assert "mean_m_std" not in md.splitlines()[2] and "mean_m_std" in (out / "main.csv").read_text()
    assert "3.00 ± 0.71" in (out / "main.tex").read_text()

    res = CliRunner().invoke(app, ["figures", "--config", str(root / "params.yaml"), "--eval",
                                   str(root / "data" / "eval"), "--runs", str(root / "data"), "--out",
                                   str(root / "figures"), "--no-qualitative", "--plots", str(root / "plots")])
    assert res.exit_code == 0, res.output
    assert all(is_png(p) for p in (root / "figures").glob("*.png"))
    curves = {p.stem: pd.read_csv(p) for p in (root / "plots").glob("*.csv")}     # one per method
    assert set(curves) == {params.runs[r].method for r in params.runs}
    series = set(curves["g2s_vgg"].series)
    assert {"g2s_vgg-cross seed7", "g2s_vgg-cross seed8", "geodistill-g2s_vgg-cross teacher seed8"} <= series
    assert sum(t.series.nunique() for t in curves.values()) == 2 * (len(BASELINES) + 2 * len(params.distill.variants))


def test_across_seeds_averages_numbers_and_rejects_disagreeing_text():
    merged = across_seeds({"1": {"method": "m", "2dof": {"n": 4, "mean_m": 2.0}},
                           "3": {"method": "m", "2dof": {"n": 4, "mean_m": 5.0}}})
    assert merged["2dof"] == {"n": 4, "mean_m": 3.5} and merged["seeds"] == [1, 3]
    assert merged["std"] == {"2dof": {"n": 0.0, "mean_m": pytest.approx(2.1213203)}}       # sqrt(4.5)
    single = across_seeds({"5": {"method": "m", "2dof": {"mean_m": 2.0}}})
    assert single == {"method": "m", "2dof": {"mean_m": 2.0}, "seeds": [5]}               # no std, no copy
    with pytest.raises(ValueError, match="method"):
        across_seeds({"1": {"method": "a"}, "2": {"method": "b"}})
    with pytest.raises(ValueError, match="same keys"):
        across_seeds({"1": {"2dof": {"mean_m": 1.0}}, "2": {"2dof": {}}})


def test_paired_bootstrap_intervals_are_exact_on_constructed_errors():
    ref = np.ones((1, 50))
    assert paired_change(0.5 * ref, ref, 500, 0.95, np.random.default_rng(0)) == (-50.0, -50.0, -50.0, 0.0)
    assert verdict(-50.0, -50.0, True) == "holds" and verdict(-50.0, -50.0, False) == "does not hold"
    assert paired_change(ref, ref, 500, 0.95, np.random.default_rng(0)) == (0.0, 0.0, 0.0, 0.0)
    assert verdict(0.0, 0.0, True) == verdict(0.0, 0.0, False) == "inconclusive"     # no side of 0
    # two seeds, -10% and +10%: a draw takes one seed twice a quarter of the time each way
    run = np.stack([np.full(50, 0.9), np.full(50, 1.1)])
    change, low, high, se = paired_change(run, np.ones((2, 50)), 2000, 0.95, np.random.default_rng(0))
    assert change == pytest.approx(0.0) and (low, high) == pytest.approx((-10.0, 10.0))
    assert se == pytest.approx(10 / np.sqrt(2), rel=0.05)       # the draws' changes: -10, 0, 0, +10 equally often
    assert detectable_change(se, 0.95, 0.8) == pytest.approx((1.959964 + 0.841621) * se, rel=1e-6)
    assert verdict(low, high, True) == "inconclusive" and verdict(5.0, 9.0, False) == "holds"
    # the plateau check: inside the +-5% band, wholly outside it, or across its edge
    assert verdict(-4.9, 4.9, 5.0) == "holds" and verdict(-4.0, 6.0, 5.0) == "inconclusive"
    assert verdict(-9.0, -5.5, 5.0) == verdict(5.5, 9.0, 5.0) == "does not hold"


def test_the_claims_table_compares_each_claim_on_the_same_samples(project):
    root, params = project
    table = claims_table(params, root / "data" / "eval")
    assert list(table.columns) == ["claim", "method", "area", "run", "reference", "mean_m", "reference_mean_m",
                                   "mean_change_pct", "ci_low_change_pct", "ci_high_change_pct", "half_width_pct",
                                   "detectable_change_pct", "samples", "seeds", "verdict"]
    assert key_rows(table, ["claim", "run", "reference"]) == [
        ("GeoDistill beats its baseline", "geodistill-g2s_vgg-cross", "g2s_vgg-cross"),
        ("GeoDistill beats its baseline", "geodistill-ccvpe-cross", "ccvpe-cross"),
        ("FoV occlusion beats random_patch", "geodistill-g2s_vgg-cross", "random_patch-g2s_vgg-cross"),
        ("FoV occlusion beats max_activation", "geodistill-g2s_vgg-cross", "max_activation-g2s_vgg-cross"),
        ("the sharpened target beats raw", "geodistill-g2s_vgg-cross", "raw-g2s_vgg-cross"),
        ("the sharpened target beats unimodal", "geodistill-g2s_vgg-cross", "unimodal-g2s_vgg-cross"),
        ("FoV as augmentation does not help", "augment-g2s_vgg-cross", "g2s_vgg-cross"),
        ("distillation beats FoV augmentation", "geodistill-g2s_vgg-cross", "augment-g2s_vgg-cross"),
        ("the baseline is at a plateau: its extra epochs unoccluded change it by less than 5% (a control)",
         "continue-g2s_vgg-cross", "g2s_vgg-cross"),
        ("GeoDistill beats the same extra epochs unoccluded (a control, not a paper claim)",
         "geodistill-g2s_vgg-cross", "continue-g2s_vgg-cross"),
        ("FoV as augmentation does not help", "augment-ccvpe-same", "ccvpe-same"),
        ("FoV 180-240 beats 60-120 degrees", "geodistill-g2s_vgg-cross", "fov60_120-g2s_vgg-cross"),
        ("FoV 180-240 beats 120-180 degrees", "geodistill-g2s_vgg-cross", "fov120_180-g2s_vgg-cross"),
        ("FoV 180-240 beats 240-300 degrees", "geodistill-g2s_vgg-cross", "fov240_300-g2s_vgg-cross")]
    main = table.iloc[0]                 # [1, 1.5, 2, 3, 5] against [1, 2, 3, 4, 10]: never worse, 4 of 5 better
    assert (main.mean_m, main.reference_mean_m, main.mean_change_pct) == (2.5, 4.0, -37.5)
    assert main.ci_low_change_pct < -37.5 < main.ci_high_change_pct < 0 and main.verdict == "holds"
    assert (main.samples, main.seeds) == (5, 1)
    assert main.half_width_pct == pytest.approx((main.ci_high_change_pct - main.ci_low_change_pct) / 2)
    assert main.detectable_change_pct > main.half_width_pct                         # power 0.8 needs more than 0.5
    csv = root / "data" / "eval" / "raw-g2s_vgg-cross" / "teacher" / "seed2023.csv"   # the claims read the teacher
    other = pd.read_csv(csv)
    other.loc[0, "pano_path"] = "elsewhere.jpg"
    other.to_csv(csv, index=False)
    with pytest.raises(ReportError, match="raw-g2s_vgg-cross.*not scored on the same test samples"):
        claims_table(params, root / "data" / "eval")
