"""A training stage killed mid-run resumes to the same numbers; the same seed gives byte-identical
metrics; a NaN loss or running out of memory stops it with a message that says what to do; every stage
process keeps freed memory for reuse."""
from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import REPO
from stages.cli import app
from stages.common import keep_freed_memory
from geodistill.data.index import build_index, write_index
from geodistill.data.synth.writer import write_world
from geodistill.models.g2s import G2SWeakly
from geodistill.training import baseline


def _env() -> dict:
    return dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.fixture(scope="module")
def stage(tmp_path_factory, smoke_params):
    """The smoke world, and a g2s_vgg run long enough to be killed in the middle (4 epochs of
    every training sample); `train(out)` starts the stage as DVC does, in its own process."""
    root = tmp_path_factory.mktemp("robust")
    write_world(smoke_params.synth, root / "world")
    write_index(build_index(root / "world", smoke_params.index), root / "index.csv")
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["baselines"]["g2s_vgg"] |= {"epochs": 4, "max_train_samples": 0}
    raw["report"]["seeds"] = [2023]                         # one seed: <out>/seed2023/
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    orient = pd.read_csv(root / "index.csv").query("area == 'cross' and split == 'test'")[["pano_path"]]
    orient.assign(true_yaw_deg=0.0, pred_yaw_deg=0.0).to_csv(root / "orient.csv", index=False)

    def train(out: str) -> subprocess.Popen:
        return subprocess.Popen(["geodistill", "train-baseline", "--config", "params.yaml", "--method", "g2s_vgg",
                                 "--area", "cross", "--index", "index.csv", "--out", out], cwd=root, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def metrics(out: str) -> bytes:
        res = subprocess.run(["geodistill", "evaluate", "--run", out, "--index", "index.csv",
                              "--orientation", "orient.csv", "--predictions", f"{out}-eval", "--metrics",
                              f"{out}.json"], cwd=root, env=_env(), capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr
        return (root / f"{out}.json").read_bytes()

    assert train("clean").wait(timeout=600) == 0
    return root, train, metrics


def test_the_same_seed_twice_gives_byte_identical_metrics(stage):
    root, train, metrics = stage
    assert train("again").wait(timeout=600) == 0
    assert metrics("again") == metrics("clean")


def test_a_stage_killed_mid_run_resumes_to_identical_metrics(stage):
    root, train, metrics = stage
    run = train("killed")
    last = root / "killed" / "seed2023" / "last.pt"
    while not last.exists() and run.poll() is None:            # epoch 1 checkpointed: now in epoch 2
        time.sleep(0.02)
    time.sleep(0.3)
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=60) == -signal.SIGKILL              # it really died before finishing
    assert last.exists() and not (root / "killed" / "seed2023" / "history.csv").exists()
    assert torch.load(last, weights_only=True)["epoch"] < 3
    assert train("killed").wait(timeout=600) == 0
    assert metrics("killed") == metrics("clean")
    assert pd.read_csv(root / "killed" / "seed2023" / "history.csv").drop(columns="seconds").equals(
        pd.read_csv(root / "clean" / "seed2023" / "history.csv").drop(columns="seconds"))


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_checkpoint(stage, tmp_path, monkeypatch):
    root, _, _ = stage
    real_loss, calls = G2SWeakly.loss, []

    def loss_turning_nan(self, batch):
        calls.append(1)
        loss = real_loss(self, batch)
        return loss * float("nan") if len(calls) > 2 else loss    # epoch 1 has 2 steps at most here

    monkeypatch.setattr(G2SWeakly, "loss", loss_turning_nan)
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train-baseline", "--config", str(tmp_path / "params.yaml"), "--method", "g2s_vgg",
                                   "--area", "cross", "--index", str(root / "index.csv"), "--out", str(out)])
    assert res.exit_code == 2
    assert "g2s_vgg-cross seed 2023 epoch 2: the loss is nan; stopped, the last good checkpoint is kept in" \
        in res.output
    out = out / "seed2023"                                   # the first of smoke's seeds
    assert str(out / "last.pt") in res.output.replace("\n", "")
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and all(torch.isfinite(t).all() for t in state["model"].values())
    assert (out / "best.pt").is_file() and not (out / "history.csv").exists()


def test_running_out_of_memory_names_the_batch_size_param(stage, tmp_path, monkeypatch, smoke_params):
    root, _, _ = stage

    def out_of_memory(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(G2SWeakly, "loss", out_of_memory)
    with pytest.raises(MemoryError, match=r"out of memory at baselines.g2s_vgg.batch_size = 4: lower it"):
        baseline.train_baseline(root / "index.csv", tmp_path / "run", "g2s_vgg", "cross", smoke_params)


def test_freed_memory_is_kept_on_glibc_unless_the_user_set_its_thresholds(monkeypatch):
    """stages.common.keep_freed_memory, which every stage process runs first."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert keep_freed_memory() is False                  # the user's own setting wins
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert keep_freed_memory() is (platform.libc_ver()[0] == "glibc")
