"""`dvc repro` end to end on the smoke preset, in a scratch copy of the project."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import REPO, link_code


def dvc_env() -> dict:
    """The environment a test runs DVC in: this interpreter's `geodistill` first on PATH."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                DVC_NO_ANALYTICS="1")


def _run(args, cwd):
    res = subprocess.run(args, cwd=cwd, env=dvc_env(), capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_dvc_repro_smoke(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(REPO / "configs" / "smoke.yaml", tmp_path / "params.yaml")
    link_code(tmp_path)                                          # stages depend on their source files
    dvc = [sys.executable, "-m", "dvc"]
    _run(dvc + ["init", "--no-scm", "-q"], tmp_path)
    shutil.copytree(REPO / ".dvc" / "plots", tmp_path / ".dvc" / "plots")     # the training-curve template
    _run(dvc + ["repro"], tmp_path)

    table = pd.read_csv(tmp_path / "data" / "index.csv")
    assert set(table.area) == {"same", "cross"} and set(table.split) == {"train", "val", "test"}
    assert all((tmp_path / p).is_file() for p in table.pano_path.head(5))
    assert (tmp_path / "dvc.lock").is_file()
    bev = np.load(tmp_path / "data" / "bev" / "bev.npy", mmap_mode="r")
    assert bev.shape[0] == table.pano_path.nunique()
    metrics = json.loads((tmp_path / "reports" / "results" / "orientation.json").read_text())
    assert set(metrics) == {"same", "cross"} and all(0 <= m["mean_deg"] <= 180 for m in metrics.values())
    headline = json.loads((tmp_path / "reports" / "metrics" / "orientation.json").read_text())
    assert headline == {a: {k: round(metrics[a][k], 3) for k in ("mean_deg", "median_deg")} for a in metrics}
    runs = {f"{m}-{a}": "baselines" for m in ("g2s_vgg", "g2s_dino", "ccvpe") for a in ("same", "cross")}
    runs |= {"geodistill-g2s_vgg-cross": "distill", "augment-ccvpe-same": "distill"}
    seeds = [2023, 2024]                                           # smoke.yaml report.seeds
    for run, folder in runs.items():
        m = json.loads((tmp_path / "reports" / "results" / f"{run}.json").read_text())
        models = ["best"] if folder == "baselines" else ["teacher", "student"]     # a distill run keeps both
        headline = json.loads((tmp_path / "reports" / "metrics" / f"{run}.json").read_text())
        shown = (m if folder == "baselines" else m["teacher"])["2dof"]          # smoke: report.distilled_model teacher
        assert headline == {"mean_m": round(shown["mean_m"], 4), "median_m": round(shown["median_m"], 4),
                            "within_1m": round(shown["within_1_m"], 4)}
        for model in models:
            block = m if model == "best" else m[model]
            assert {"2dof", "3dof", "tile_centre"} <= set(block) and block["2dof"]["n"] == block["tile_centre"]["n"] > 0
            assert block["seeds"] == seeds and set(block["per_seed"]) == {"2023", "2024"} and "mean_m" in block["std"]["2dof"]
            assert all((tmp_path / "data" / folder / run / f"seed{s}" / f"{model}.pt").is_file() for s in seeds)
            csvs = tmp_path / "data" / "eval" / run / ("" if model == "best" else model)
            assert all((csvs / f"seed{s}.csv").is_file() for s in seeds)
    _check_reports(tmp_path)
    shown = json.loads(_run(dvc + ["metrics", "show", "--json"], tmp_path))   # headlines only
    files = {Path(f).name: d["data"] for f, d in next(iter(shown.values()))["data"].items()}
    assert set(files) == {"orientation.json", "summary.json"} | {f"{run}.json" for run in runs} | {
        "fov60_120-g2s_vgg-cross.json"}
    assert set(files["g2s_vgg-cross.json"]) == {"mean_m", "median_m", "within_1m"}
    summary = files["summary.json"]
    assert summary["claims"]["geodistill-g2s_vgg-cross_vs_g2s_vgg-cross"]["verdict"] in {
        "holds", "does not hold", "inconclusive"}
    assert summary["main_mean_m"]["geodistill-g2s_vgg-cross/teacher"] == files["geodistill-g2s_vgg-cross.json"]["mean_m"]
    plots = json.loads(_run(dvc + ["plots", "show", "--json"], tmp_path))
    assert not plots.get("errors")
    shown = {Path(p).name for p in plots["data"]}      # one curve plot per method, the PNG figures as images
    assert {"g2s_vgg.csv", "g2s_dino.csv", "ccvpe.csv", "error_cdf.png", "training_curves.png"} <= shown
    curves = pd.read_csv(tmp_path / "reports" / "plots" / "g2s_vgg.csv")
    assert {f"{r} seed{s}" for r in ("g2s_vgg-cross", "geodistill-g2s_vgg-cross teacher") for s in seeds} <= set(
        curves.series)
    assert "up to date" in _run(dvc + ["repro"], tmp_path)     # nothing reruns on unchanged params
    assert "up to date" in _run(dvc + ["status"], tmp_path)   # its latency: benchmarks/pipeline_time.py

    # one variant's params rerun that variant's stages and the reports only
    params = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(params.replace(
        "geodistill-g2s_vgg-cross: {method: g2s_vgg, area: cross}",
        "geodistill-g2s_vgg-cross: {method: g2s_vgg, area: cross, target: {tau: 0.1}}"))
    ran = re.findall(r"^Running stage '([^']+)'", _run(dvc + ["repro"], tmp_path), re.M)
    assert sorted(ran) == ["distill@geodistill-g2s_vgg-cross", "evaluate-distill@geodistill-g2s_vgg-cross",
                           "figures", "tables"]


def _check_reports(root: Path) -> None:
    """Every table of the smoke preset has its rows and columns; every figure is a PNG."""
    tables = root / "reports" / "tables"
    main = pd.read_csv(tables / "main.csv")
    assert list(main.run) == ["g2s_vgg-cross", "geodistill-g2s_vgg-cross", "geodistill-g2s_vgg-cross", "g2s_vgg-same",
                              "g2s_dino-cross", "g2s_dino-same", "ccvpe-cross", "ccvpe-same"]
    assert list(main.model[:3]) == ["baseline", "GeoDistill teacher", "GeoDistill student"]   # the paper's model first
    assert main[["mean_m", "mean_m_std", "median_m", "median_m_std"]].notna().all().all()   # two seeds
    sweep = pd.read_csv(tables / "fov_sweep.csv")
    assert list(sweep.run) == ["fov60_120-g2s_vgg-cross", "geodistill-g2s_vgg-cross"]
    assert sweep[["mean_m", "student_mean_m", "student_median_m_std"]].notna().all().all()   # teacher and student
    augment = pd.read_csv(tables / "augment_vs_distill.csv")
    assert list(augment.run) == ["ccvpe-same", "augment-ccvpe-same"]
    assert augment.student_mean_m.isna().tolist() == [True, False]                # a baseline has no student
    claims = pd.read_csv(tables / "claims.csv")                  # two seeds, 200 bootstrap draws
    assert list(claims.run) == ["geodistill-g2s_vgg-cross", "augment-ccvpe-same", "geodistill-g2s_vgg-cross"]
    assert list(claims.reference) == ["g2s_vgg-cross", "ccvpe-same", "fov60_120-g2s_vgg-cross"]
    assert (claims.seeds == 2).all()
    assert set(claims.verdict) <= {"holds", "does not hold", "inconclusive"}
    assert (claims.ci_low_change_pct <= claims.ci_high_change_pct).all()
    assert (claims.half_width_pct > 0).all() and (claims.detectable_change_pct > claims.half_width_pct).all()
    for name in ("main", "supervised", "occlusion", "uncertainty", "augment_vs_distill", "fov_sweep", "orientation",
                 "claims"):
        for suffix in (".md", ".csv", ".tex"):
            assert (tables / f"{name}{suffix}").stat().st_size > 0
    figures = sorted(p.name for p in (root / "reports" / "figures").glob("*.png"))
    assert figures == ["error_cdf.png", "fov_sweep.png", "orientation_error.png", "qualitative-g2s_vgg.png",
                       "training_curves.png"]
    assert all((root / "reports" / "figures" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
