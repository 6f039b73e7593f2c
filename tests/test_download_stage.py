"""Stage download@vigor under `dvc repro`, as a user runs it: `geodistill preset vigor --root D`,
the archive paths set under data.archives, then `dvc repro download verify-data`. The label files
come from a local HTTP server (fixture files whose git blob ids the test computes, in a fixture
sources file named by data.manifest); a file that does not match its pin stops the stage.

    .venv/bin/pytest -q tests/test_download_stage.py
"""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from typer.testing import CliRunner

from conftest import REPO, link_code
from stages.cli import app
from geodistill.data.fetch import git_blob_id
from test_download import server  # noqa: F401  (the local HTTP server fixture)
from test_pipeline import _run, dvc_env
from vigor_fixture import CITIES, SPLIT_FILES, make_vigor_root

DVC = [sys.executable, "-m", "dvc"]


def vigor_sources(tmp_path: Path, server) -> tuple[Path, dict[str, str], dict[str, bytes]]:
    """A fixture VIGOR: its label files served by `server`, one zip per city, and a sources file
    pinning each label file by its git blob id. Returns (sources file, archives, label bytes)."""
    made = make_vigor_root(tmp_path / "made").root
    labels, archives = {}, {}
    for city in CITIES:
        for name in SPLIT_FILES.values():
            path = f"splits__corrected/{city}/{name}"
            labels[path] = (made / path).read_bytes()
            server.files[f"/{path}"] = labels[path]
        archives[city] = str(tmp_path / f"{city}.zip")
        with zipfile.ZipFile(archives[city], "w") as zf:
            for image in sorted((made / city).rglob("*.*")):
                zf.write(image, image.relative_to(made).as_posix())
    manifest = {"vigor": {
        "obtain": "the test's fixture",
        "files": {path: {"url": server.url(f"/{path}"), "git_blob": git_blob_id(data)} for path, data in labels.items()},
        "archives": {city: {"expect": [f"{city}/panorama", f"{city}/satellite"], "unverified": "made by the test"}
                     for city in CITIES}}}
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path / "sources.yaml", archives, labels


def vigor_project(tmp_path: Path, root: Path, manifest: Path, archives: dict[str, str]) -> Path:
    """A project switched onto the vigor preset, with the archives' paths set as a user does."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    link_code(project)
    res = CliRunner().invoke(app, ["preset", "vigor", "--root", str(root), "--presets", str(REPO / "configs"),
                                   "--out", str(project / "params.yaml")])
    assert res.exit_code == 0 and "set their paths first" in res.output, res.output
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"] |= {"archives": archives, "manifest": str(manifest),
                       "check_totals": False}                 # a fixture, not VIGOR's published totals
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(DVC + ["init", "--no-scm", "-q"], project)
    return project


def test_the_vigor_preset_downloads_then_verifies(tmp_path, server):  # noqa: F811
    manifest, archives, labels = vigor_sources(tmp_path, server)
    root = tmp_path / "VIGOR"
    project = vigor_project(tmp_path, root, manifest, archives)
    stages = _run(DVC + ["stage", "list", "--name-only"], project).split()
    assert stages[:2] == ["download@vigor", "verify-data"] and not [s for s in stages if s.startswith("synth")]
    _run(DVC + ["repro", "download", "verify-data"], project)
    assert all((root / path).read_bytes() == data for path, data in labels.items())
    every = labels["splits__corrected/Chicago/pano_label_balanced__corrected.txt"].splitlines()
    assert len(list((root / "Chicago" / "panorama").iterdir())) == len(every)       # the archive's images
    assert "present and decodable" in (project / "reports" / "verify-data.txt").read_text()
    assert not list(root.rglob("*.part")) and not (root / ".download" / "incoming").exists()
    assert "up to date" in _run(DVC + ["status", "download", "verify-data"], project)


def test_a_label_file_that_does_not_match_its_pin_stops_the_stage_and_leaves_nothing(tmp_path, server):  # noqa: F811
    manifest, archives, _ = vigor_sources(tmp_path, server)
    bad = "splits__corrected/Seattle/same_area_balanced_test__corrected.txt"
    server.always_corrupt.add(f"/{bad}")
    root = tmp_path / "VIGOR"
    project = vigor_project(tmp_path, root, manifest, archives)
    res = subprocess.run(DVC + ["repro", "download", "verify-data"], cwd=project, capture_output=True, text=True,
                         env=dvc_env())
    output = res.stdout + res.stderr
    assert res.returncode != 0 and f"error: {bad}: refused: " in output and "git_blob mismatch" in output, output
    assert not root.exists()                                  # nothing fetched or extracted is left
    assert not (project / "reports" / "verify-data.txt").exists()

