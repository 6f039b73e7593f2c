"""Presets and the dataset switch: configs/vigor.yaml holds the paper's settings, `geodistill
preset` turns params.yaml onto one, and `data.source` picks the pipeline's first stages without
editing dvc.yaml."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conftest import REPO, link_code
from stages.cli import app
from geodistill.config import ConfigError, load_params, parse_params
from test_pipeline import _run, dvc_env
from vigor_fixture import N_TEST, N_TRAIN, make_vigor_root


def test_the_vigor_preset_holds_the_papers_settings():
    p = load_params(REPO / "configs" / "vigor.yaml")
    assert (p.data.source, p.data.generate, p.data.check_totals) == ("vigor", [], True)
    assert p.index.same_area_cities == ["NewYork", "Seattle", "SanFrancisco", "Chicago"]
    assert (p.index.cross_area_train, p.index.cross_area_test) == (["NewYork", "Seattle"], ["SanFrancisco", "Chicago"])
    o = p.orientation
    assert (o.backbone, o.head.kind, o.head.hidden, o.bins, o.range_deg) == ("efficientnet_b0", "concat", [1024, 512], 90, 45)
    assert (o.epochs, o.batch_size, o.lr, o.weight_decay, o.label_sigma_bins) == (16, 16, 1e-4, 1e-4, 1.0)
    vgg, dino, ccvpe = (p.baselines[m] for m in ("g2s_vgg", "g2s_dino", "ccvpe"))
    assert (vgg.encoder.backbone, vgg.encoder.channels, vgg.pano_size, vgg.sat_size) == ("vgg16", [256, 64, 16], (640, 320), 512)
    assert (dino.encoder.backbone, dino.encoder.blocks, dino.encoder.freeze) == ("vit_base_patch14_dinov2", [2, 5, 8, 11], True)
    assert (ccvpe.backbone, ccvpe.epochs, ccvpe.heatmap_sigma_px, ccvpe.infonce_temperature) == ("efficientnet_b0", 15, 4.0, 0.1)
    for b in (vgg, dino):
        assert (b.epochs, b.batch_size, b.lr, b.margin_scale, b.crop_fraction) == (10, 8, 1e-4, 10.0, 0.4)
    assert all(b.pretrained for b in (vgg, dino, ccvpe)) and o.pretrained
    d = p.distill.variants["geodistill-g2s_vgg-cross"]                # the defaults, resolved
    assert (d.target.tau, d.ema_alpha, d.ema_every, d.epochs_factor, d.lr, d.weight_decay) == (0.06, 0.9, "epoch", 2.0, 1e-4, 1e-5)
    assert d.occlusion.fov_deg == (180, 240) and p.report.distilled_model == "teacher"
    assert all(v.epochs_factor == 2.0 for v in p.distill.variants.values())


def test_preset_writes_a_validated_params_file_with_the_root(tmp_path):
    out = tmp_path / "params.yaml"
    res = CliRunner().invoke(app, ["preset", "vigor", "--root", str(tmp_path / "VIGOR"), "--presets",
                                   str(REPO / "configs"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert load_params(out).data.root == str(tmp_path / "VIGOR")
    assert "# VIGOR preset" in out.read_text()                        # comments kept
    assert "stage download@vigor fills" in res.output and "data.archives" in res.output
    res = CliRunner().invoke(app, ["preset", "nuscenes", "--presets", str(REPO / "configs"), "--out", str(out)])
    assert res.exit_code == 2 and "no preset 'nuscenes'" in res.output
    assert "kitti, smoke, synthetic-full, synthetic-large, vigor" in res.output


def test_the_kitti_preset_holds_the_kitti_protocol():
    p = load_params(REPO / "configs" / "kitti.yaml")
    assert (p.data.source, p.data.root, p.bev.camera_height_m) == ("kitti", "/data/KITTI", 1.65)
    assert set(p.runs) == {"g2s_vgg-same", "g2s_vgg-cross", "g2s_dino-same", "g2s_dino-cross"}
    assert p.baselines["g2s_vgg"].pano_size == (1024, 256) and p.baselines["g2s_vgg"].sat_size == 512
    assert (p.orientation.range_deg, p.orientation.bins) == (10, 20)
    d = p.distill.variants["geodistill-g2s_vgg-cross"]
    assert d.occlusion.fov_deg == (270, 300) and (d.target.tau, d.ema_alpha) == (0.06, 0.9)
    assert all(b.pretrained for b in p.baselines.values())


@pytest.mark.parametrize("data, message", [
    ({"source": "synthetic", "root": "/data/VIGOR", "generate": ["world"]}, "the synthetic source needs"),
    ({"source": "vigor", "root": "/data/VIGOR", "generate": ["world"]}, "is read, not generated"),
    ({"source": "vigor", "root": "data/world", "generate": []}, "pointing at your copy"),
    ({"source": "kitti", "root": "/data/KITTI", "generate": ["world"]}, "is read, not generated"),
    ({"source": "kitti", "root": "/data/KITTI", "generate": []}, "CCVPE reads equirectangular panoramas"),
    ({"download": ["vigor"]}, r"the synthetic source needs .* and download: \[\]; got .* download: \['vigor'\]"),
    ({"source": "vigor", "root": "/data/VIGOR", "generate": [], "download": ["kitti"]},
     r"download must be \[vigor\] \(stage download@vigor fills root\) or \[\] .*, got \['kitti'\]"),
    ({"archives": {"Chicago": "/d/Chicago.zip"}}, r"archives Chicago: nothing reads them \(download is \[\]\)"),
])
def test_inconsistent_data_params_fail_before_any_work(data, message):
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["data"] |= data
    with pytest.raises(ConfigError, match=message):
        parse_params(raw, "p.yaml")


def _vigor_project(tmp_path, check_totals: bool):
    """A scratch project on the VIGOR fixture: the smoke preset with data.source vigor."""
    fx = make_vigor_root(tmp_path / "VIGOR")
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    link_code(project)
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["data"] |= {"source": "vigor", "root": str(fx.root), "generate": [], "check_totals": check_totals}
    raw["index"].update(same_area_cities=["NewYork", "Seattle", "Chicago"], cross_area_train=["NewYork"],
                        cross_area_test=["Chicago"])
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    _run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], project)
    return project


def test_a_real_dataset_runs_verify_data_then_index_and_no_synth_stage(tmp_path):
    project = _vigor_project(tmp_path, check_totals=False)
    stages = _run([sys.executable, "-m", "dvc", "stage", "list", "--name-only"], project).split()
    assert "verify-data" in stages and not [s for s in stages if s.startswith("synth")]
    _run([sys.executable, "-m", "dvc", "repro", "index"], project)
    assert "present and decodable" in (project / "reports" / "verify-data.txt").read_text()
    index = (project / "data" / "index.csv").read_text().splitlines()
    assert len(index) - 1 == 3 * (N_TRAIN + N_TEST) + (N_TRAIN + N_TEST) * 2   # same-area all + cross NewYork, Chicago


def test_an_incomplete_real_dataset_stops_the_pipeline_at_verify_data(tmp_path):
    project = _vigor_project(tmp_path, check_totals=True)
    res = subprocess.run([sys.executable, "-m", "dvc", "repro", "index"], cwd=project, capture_output=True, text=True,
                         env=dvc_env())
    assert res.returncode != 0
    assert "expected 52,605" in res.stdout + res.stderr
    assert not (project / "data" / "index.csv").exists()


@pytest.mark.slow
def test_a_vigor_layout_root_runs_through_evaluate_with_exact_ground_truth(tmp_path):
    """The real-VIGOR path end to end (no dataset.json: 640-px tiles, the corrected metres per
    pixel of params): verify-data -> index -> render-bev -> orientation -> a tiny g2s_vgg ->
    evaluate. The evaluated ground-truth pixels are VIGOR's row = 320 + dy, col = 320 - dx."""
    project = _vigor_project(tmp_path, check_totals=False)
    _run([sys.executable, "-m", "dvc", "repro", "evaluate@g2s_vgg-cross"], project)
    fx_lines = (tmp_path / "VIGOR" / "splits__corrected" / "Chicago" / "pano_label_balanced__corrected.txt")
    expected = {}
    for line in fx_lines.read_text().split("\n"):
        if line:
            name, _, dy, dx = line.split()[:4]
            expected[name] = (320 + float(dy), 320 - float(dx))
    table = pd.read_csv(project / "data" / "eval" / "g2s_vgg-cross" / "seed2023.csv")
    assert len(table) == N_TRAIN + N_TEST == len(expected)             # cross-area test: Chicago's whole list
    names = [Path(p).name for p in table.pano_path]
    assert sorted(names) == sorted(expected)
    np.testing.assert_allclose(table[["gt_row", "gt_col"]].to_numpy(), [expected[n] for n in names], rtol=0, atol=1e-9)
    metrics = json.loads((project / "reports" / "results" / "g2s_vgg-cross.json").read_text())
    assert metrics["2dof"]["n"] == len(table) and set(metrics["2dof"]["per_city"]) == {"Chicago"}
    mpp = 0.111262                                                       # Chicago, corrected, at 640 px
    centre = np.hypot(table.gt_row - 320, table.gt_col - 320) * mpp
    assert metrics["tile_centre"]["mean_m"] == pytest.approx(centre.mean())


def test_the_full_synthetic_preset_is_the_default_plus_the_runs_the_budget_leaves_out():
    default = yaml.safe_load((REPO / "params.yaml").read_text())
    full = yaml.safe_load((REPO / "configs" / "synthetic-full.yaml").read_text())
    extra = {n: v for n, v in full["distill"]["variants"].items() if n not in default["distill"]["variants"]}
    assert sorted(extra) == ["fov120_180-g2s_vgg-cross", "fov240_300-g2s_vgg-cross", "fov300_360-g2s_vgg-cross",
                             "fov60_120-g2s_vgg-cross", "geodistill-ccvpe-same", "geodistill-g2s_dino-same"]
    full["distill"]["variants"] = {n: v for n, v in full["distill"]["variants"].items() if n not in extra}
    assert full == default                                        # every other value is the default's
    load_params(REPO / "configs" / "synthetic-full.yaml")
