"""Each dvc.yaml stage depends on exactly the source files it runs: the import closure of its
command (geodistill/codedeps.py), checked for every stage DVC resolves on the default params and
on the real-data presets (the download stage exists only there).

    .venv/bin/pytest -q tests/test_codedeps.py

A failure names the stage and the file; `python -m geodistill.codedeps "python -m stages.<stage>"`
prints the list to put under the stage's deps.
"""
from __future__ import annotations

import ast
import importlib
import shutil
from pathlib import Path

import pytest
from dvc.repo import Repo

from conftest import REPO, link_code
from geodistill.codedeps import _absolute, closure, stage_entry
from geodistill.config import Params, load_params

SRC = "src/geodistill"
PRESETS = ["params.yaml", "configs/vigor.yaml", "configs/kitti.yaml"]
ONE_MODEL = ("train-baseline", "evaluate")     # stages of one baseline run: only that run's models/<kind>.py
MODEL_KINDS = ("g2s", "ccvpe")                 # models/<kind>.py: the values of baselines.<method>.kind


def skipped_models(stage: str, params: Params) -> frozenset[str]:
    """The model modules a stage never runs: a run's training and evaluation run its own model only
    (models/localizer.py imports every model, each inside its branch)."""
    group, _, key = stage.partition("@")
    if group not in ONE_MODEL:
        return frozenset()
    model = params.runs[key].model
    assert model in MODEL_KINDS, f"{stage}: a model kind {model!r} this test does not know"
    return frozenset(f"geodistill.models.{kind}" for kind in MODEL_KINDS if kind != model)


def listed_sources(deps: list[str]) -> set[str]:
    """The package files a stage's deps name, a folder standing for every file under it."""
    out = set()
    for dep in (d for d in deps if d.split("/")[0] in ("src", "stages")):
        path = REPO / dep
        files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts] if path.is_dir() else [path]
        out |= {p.relative_to(REPO).as_posix() for p in files}
    return out


def stage_problems(stage: str, cmd: str, deps: list[str], params: Params) -> list[str]:
    """One line per file the stage runs but does not list, or lists but does not run.

    A foreach template cannot list a file for some items only, so a one-model stage may also list
    the helpers of the other model kinds (models/correlation.py, G2SWeakly's, in CCVPE's stages),
    never a file no model reaches."""
    entry = stage_entry(cmd)
    runs = {p.relative_to(REPO).as_posix() for p in closure(entry, skipped_models(stage, params))}
    may_run = {p.relative_to(REPO).as_posix() for p in closure(entry)} - model_files(skipped_models(stage, params))
    listed = listed_sources(deps)
    return ([f"{stage}: {f} is imported by its command but missing from its deps" for f in sorted(runs - listed)]
            + [f"{stage}: {f} is in its deps but its command never imports it" for f in sorted(listed - may_run)])


def model_files(modules: frozenset[str]) -> set[str]:
    """The files of skipped model modules themselves (models/<kind>.py), which the template names
    through ${item.model} and so never lists for another item."""
    return {f"src/{m.replace('.', '/')}.py" for m in modules}


@pytest.fixture(scope="module", params=PRESETS)
def resolved(request, tmp_path_factory):
    """(params, [(stage name, cmd, deps as written after templating)]) of dvc.yaml on one params file."""
    project = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "dvc.yaml", project / "dvc.yaml")
    shutil.copy(REPO / request.param, project / "params.yaml")
    link_code(project)
    Repo.init(str(project), no_scm=True)
    with Repo(str(project)) as repo:
        stages = [(s.name, s.cmd, [d.def_path for d in s.deps]) for s in repo.index.stages]
    return load_params(project / "params.yaml"), stages


def test_every_stage_lists_exactly_the_code_it_runs(resolved):
    params, stages = resolved
    problems = [line for stage, cmd, deps in stages for line in stage_problems(stage, cmd, deps, params)]
    assert not problems, "\n".join(problems)


def test_the_real_data_presets_have_a_download_stage_and_the_default_has_none(resolved):
    params, stages = resolved
    names = {name for name, _, _ in stages}
    assert ({f"download@{params.data.source}"} & names) == ({f"download@{params.data.source}"}
                                                            if params.data.source != "synthetic" else set())
    assert not [n for n in names if n.startswith("download") and n != f"download@{params.data.source}"]


def test_a_file_missing_from_the_deps_is_named_with_its_stage(smoke_params):
    cmd = "python -m stages.verify_data --config params.yaml --root data/world"
    deps = [p.relative_to(REPO).as_posix() for p in closure(stage_entry(cmd))]
    assert stage_problems("verify-data", cmd, deps, smoke_params) == []
    dropped = [d for d in deps if d != f"{SRC}/data/totals.yaml"]
    assert stage_problems("verify-data", cmd, dropped + ["data/world"], smoke_params) == [
        f"verify-data: {SRC}/data/totals.yaml is imported by its command but missing from its deps"]
    assert stage_problems("verify-data", cmd, deps + [f"{SRC}/models"], smoke_params)[0] == (
        f"verify-data: {SRC}/models/__init__.py is in its deps but its command never imports it")


def files(entry: str, skip=frozenset()) -> set[str]:
    return {p.relative_to(REPO).as_posix().removeprefix(SRC + "/") for p in closure(entry, skip)}


def test_closure_follows_imports_inside_functions_and_packages_and_finds_data_files():
    verify = files("geodistill.data.verify")
    assert {"__init__.py", "data/__init__.py", "data/vigor.py", "data/verify.py", "data/totals.yaml",
            "parallel.py", "errors.py"} <= verify
    assert not {f for f in verify if f.startswith(("models/", "training/"))}
    localizer = files("geodistill.models.localizer")                     # both models: imported inside a function
    assert {"models/g2s.py", "models/ccvpe.py", "models/__init__.py"} <= localizer
    assert "models/ccvpe.py" not in files("geodistill.models.localizer", frozenset({"geodistill.models.ccvpe"}))
    assert "reports/published.yaml" in files("geodistill.reports.tables")


def test_a_stage_module_reaches_its_own_imports_and_not_the_other_stages():
    tables = files("stages.tables")
    assert {"stages/tables.py", "stages/common.py", "stages/__init__.py", "reports/tables.py", "reports/claims.py",
            "config.py", "errors.py"} <= tables
    assert not {f for f in tables if f.startswith(("models/", "training/", "data/", "stages/train"))}
    train = files("stages.train_baseline")
    assert {"stages/train_baseline.py", "training/baseline.py", "training/device.py", "distributed.py"} <= train
    assert "stages/cli.py" not in train and "stages/distill.py" not in train


def test_stage_entry_reads_the_module_from_the_cmd():
    assert stage_entry("python -m stages.render_bev --config params.yaml") == "stages.render_bev"
    with pytest.raises(ValueError, match="no module stages.nope"):
        stage_entry("python -m stages.nope --config params.yaml")
    with pytest.raises(ValueError, match="not a `python -m stages.<stage>` cmd"):
        stage_entry("geodistill index --config params.yaml")


def test_every_stage_module_is_a_geodistill_command_of_the_same_name():
    """One definition per stage: dvc.yaml's `python -m stages.<module>` and `geodistill <stage>`
    run the same function."""
    from stages import cli
    modules = {p.stem for p in (REPO / "stages").glob("*.py")} - {"__init__", "common", "cli", "tools"}
    assert {name.replace("-", "_") for name in cli.STAGES} == modules
    for name, command in cli.STAGES.items():
        module = importlib.import_module(f"stages.{name.replace('-', '_')}")
        assert getattr(module, name.replace("-", "_")) is command


def test_relative_imports_resolve_against_the_importing_module():
    def module_of(name: str, code: str) -> str:
        return _absolute(name, ast.parse(code).body[0])
    assert module_of("geodistill.data.download", "from .fetch import fetch") == "geodistill.data.fetch"
    assert module_of("geodistill.data.download", "from ..io import atomic_file") == "geodistill.io"
    assert module_of("geodistill.data", "from . import fetch") == "geodistill.data"      # in a package's __init__
    assert module_of("geodistill.data.download", "from geodistill.config import read_yaml") == "geodistill.config"
