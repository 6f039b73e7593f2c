"""`dvc repro` end to end on the smoke preset, in a scratch copy of the project."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import REPO


def _run(args, cwd):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               DVC_NO_ANALYTICS="1")
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_dvc_repro_smoke(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(REPO / "configs" / "smoke.yaml", tmp_path / "params.yaml")
    (tmp_path / "src").symlink_to(REPO / "src")                  # stages depend on their source files
    dvc = [sys.executable, "-m", "dvc"]
    _run(dvc + ["init", "--no-scm", "-q"], tmp_path)
    _run(dvc + ["repro"], tmp_path)

    table = pd.read_csv(tmp_path / "data" / "index.csv")
    assert set(table.area) == {"same", "cross"} and set(table.split) == {"train", "val", "test"}
    assert all((tmp_path / p).is_file() for p in table.pano_path.head(5))
    assert (tmp_path / "dvc.lock").is_file()
    bev = np.load(tmp_path / "data" / "bev" / "bev.npy", mmap_mode="r")
    assert bev.shape[0] == table.pano_path.nunique()
    metrics = json.loads((tmp_path / "reports" / "metrics" / "orientation.json").read_text())
    assert set(metrics) == {"same", "cross"} and all(0 <= m["mean_deg"] <= 180 for m in metrics.values())
    runs = {f"{m}-{a}": "baselines" for m in ("g2s_vgg", "g2s_dino", "ccvpe") for a in ("same", "cross")}
    runs |= {"geodistill-g2s_vgg-cross": "distill", "augment-ccvpe-same": "distill"}
    for run, folder in runs.items():
        m = json.loads((tmp_path / "reports" / "metrics" / f"{run}.json").read_text())
        assert {"2dof", "3dof", "tile_centre"} <= set(m) and m["2dof"]["n"] == m["tile_centre"]["n"] > 0
        assert (tmp_path / "data" / folder / run / "best.pt").is_file()
    shown = _run(dvc + ["metrics", "show"], tmp_path)
    assert "orientation.json" in shown and "geodistill-g2s_vgg-cross.json" in shown
    assert "up to date" in _run(dvc + ["repro"], tmp_path)     # nothing reruns on unchanged params
    assert "up to date" in _run(dvc + ["status"], tmp_path)

    # one variant's params rerun that variant's stages only
    params = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(params.replace(
        "geodistill-g2s_vgg-cross: {method: g2s_vgg, area: cross}",
        "geodistill-g2s_vgg-cross: {method: g2s_vgg, area: cross, target: {tau: 0.1}}"))
    changed = [line for line in _run(dvc + ["status"], tmp_path).splitlines() if line.endswith(":")
               and not line.startswith((" ", "\t"))]
    assert changed == ["distill@geodistill-g2s_vgg-cross:"]
