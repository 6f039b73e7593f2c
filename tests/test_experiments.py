"""The parallel-variants recipe of docs/reproducibility.md ("Variants in parallel"), run for real
on the smoke preset: queue two variants with `dvc exp run --queue -S ...`, run them at once with
`dvc queue start -j 2`, apply one.
Slow (a git repo, a full smoke `dvc repro`, two queued experiments): `make test-full`."""
from __future__ import annotations

import csv
import io
import shutil
import time

import pytest
import yaml

from conftest import REPO, link_code
from test_pipeline import _run

pytestmark = pytest.mark.slow
TAU = "++distill.variants.geodistill-g2s_vgg-cross.target.tau"


def test_queued_variants_run_in_parallel_and_apply(tmp_path):
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(REPO / "configs" / "smoke.yaml", tmp_path / "params.yaml")
    link_code(tmp_path)
    dvc = ["dvc"]
    for command in (["git", "init", "-q"], ["git", "config", "user.email", "ci@example.org"],
                    ["git", "config", "user.name", "ci"], dvc + ["init", "-q"], dvc + ["repro", "-q"],
                    ["git", "add", "-A"], ["git", "commit", "-qm", "smoke pipeline"]):
        _run(command, tmp_path)

    for name, tau in (("tau01", 0.1), ("tau02", 0.2)):
        _run(dvc + ["exp", "run", "--queue", "-n", name, "-S", f"{TAU}={tau}"], tmp_path)
    _run(dvc + ["queue", "start", "-j", "2"], tmp_path)
    deadline = time.monotonic() + 1200
    while True:
        status = _run(dvc + ["queue", "status"], tmp_path)
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.monotonic() < deadline, f"queue still busy:\n{status}"
        time.sleep(5)
    assert status.count("Success") == 2, status

    shown = _run(dvc + ["exp", "show", "--no-pager", "--csv"], tmp_path)
    assert "tau01" in shown and "tau02" in shown
    rows = {r["Experiment"]: r for r in csv.DictReader(io.StringIO(shown)) if r["Experiment"]}
    headline = "reports/metrics/geodistill-g2s_vgg-cross.json:mean_m"      # the variant's change, one column
    assert rows["tau01"][headline] != rows["tau02"][headline]
    _run(dvc + ["exp", "apply", "tau02"], tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["distill"]["variants"]["geodistill-g2s_vgg-cross"]["target"]["tau"] == 0.2
    assert "up to date" in _run(dvc + ["status"], tmp_path)     # its outputs came with it

