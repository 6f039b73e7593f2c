"""The GPU path's switches (train.device, precision, channels_last), exercised on CPU: device
resolution and its error, batches moved whole, bf16 autocast and NHWC training end to end.
The CUDA test runs only where torch sees a GPU."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import REPO
from stages.cli import app
from geodistill.config import ConfigError
from geodistill.data.index import build_index, write_index
from geodistill.data.synth.writer import write_world
from geodistill.distill.teacher_student import train_distill
from geodistill.evaluation import evaluate
from geodistill.models.localizer import Batch
from geodistill.training import baseline
from geodistill.training.device import Placement, deterministic, resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@no_cuda
def test_cuda_without_a_gpu_fails_naming_the_param_before_any_work(tmp_path):
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(ConfigError, match="train.device is 'cuda' but torch sees no CUDA device"):
        resolve_device("cuda")
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["train"]["device"] = "cuda"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "index.csv").write_text("not read\n")
    res = CliRunner().invoke(app, ["train-baseline", "--config", str(tmp_path / "p.yaml"), "--method", "g2s_vgg",
                                   "--area", "cross", "--index", str(tmp_path / "index.csv"),
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 2 and "train.device is 'cuda'" in res.output
    assert not (tmp_path / "run").exists()


def test_a_batch_moves_whole_and_keeps_its_dtypes():
    batch = Batch(torch.zeros(2, 4, 8, 3, dtype=torch.uint8), torch.zeros(2, 4, 4, 3, dtype=torch.uint8),
                  torch.ones(2), torch.zeros(2, 2), torch.zeros(2), None)
    moved = Placement(torch.device("meta")).batch(batch)
    tensors = [moved.pano, moved.sat, moved.sat_mpp, moved.gt_px, moved.yaw_deg]
    assert all(t.device.type == "meta" for t in tensors) and moved.column_mask is None
    assert [t.dtype for t in tensors] == [torch.uint8, torch.uint8, torch.float32, torch.float32, torch.float32]
    cpu = Placement.cpu().batch(batch)
    assert cpu.pano is batch.pano and cpu.sat is batch.sat          # the CPU default copies nothing


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory, smoke_params):
    root = tmp_path_factory.mktemp("device")
    write_world(smoke_params.synth, root / "world")
    write_index(build_index(root / "world", smoke_params.index), root / "index.csv")
    return root


def _with_train(params, **train):
    return params.model_copy(update={"train": params.train.model_copy(update=train)})


def _orientation_csv(index_csv, out, area):
    index = pd.read_csv(index_csv)
    test = index[(index.area == area) & (index.split == "test")]
    pd.DataFrame({"pano_path": test.pano_path, "true_yaw_deg": 0.0, "pred_yaw_deg": 0.0}).to_csv(out, index=False)
    return out


@pytest.mark.slow
def test_bf16_channels_last_trains_distills_and_evaluates_on_cpu(smoke_world, smoke_params, tmp_path):
    root = smoke_world
    fp32 = baseline.train_baseline(root / "index.csv", tmp_path / "fp32", "g2s_vgg", "cross", smoke_params)
    params = _with_train(smoke_params, precision="bf16", channels_last=True)
    place = Placement.of(params.train)
    assert place.bf16 and place.channels_last
    model = place.model(baseline.build_model(params.baselines["g2s_vgg"], 2.0, 0))
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)

    bf16 = baseline.train_baseline(root / "index.csv", tmp_path / "bf16", "g2s_vgg", "cross", params)
    assert math.isfinite(bf16["best_val_mean_m"])
    losses = [pd.read_csv(tmp_path / run / "history.csv").train_loss for run in ("fp32", "bf16")]
    assert losses[1].notna().all() and not losses[0].equals(losses[1])      # autocast took effect
    assert math.isfinite(fp32["best_val_mean_m"])

    (tmp_path / "baselines" / "g2s_vgg-cross").mkdir(parents=True)
    (tmp_path / "bf16").rename(tmp_path / "baselines" / "g2s_vgg-cross" / f"seed{params.report.seeds[0]}")
    out = train_distill(root / "index.csv", tmp_path / "baselines", tmp_path / "distill",
                        "geodistill-g2s_vgg-cross", params)
    assert all(math.isfinite(x) for x in out["best_val_mean_m"].values())

    orient = _orientation_csv(root / "index.csv", tmp_path / "orient.csv", "cross")
    m = evaluate(tmp_path / "distill" / "teacher.pt", root / "index.csv", orient, tmp_path / "pred.csv",
                 tmp_path / "m.json", place)
    assert json.loads((tmp_path / "m.json").read_text()) == m and math.isfinite(m["2dof"]["mean_m"])


@needs_cuda
def test_training_and_evaluation_run_on_cuda(smoke_world, smoke_params, tmp_path):
    params = _with_train(smoke_params, device="cuda", precision="bf16", channels_last=True)
    result = baseline.train_baseline(smoke_world / "index.csv", tmp_path / "run", "ccvpe", "cross", params)
    assert math.isfinite(result["best_val_mean_m"])
    orient = _orientation_csv(smoke_world / "index.csv", tmp_path / "orient.csv", "cross")
    m = evaluate(tmp_path / "run" / "best.pt", smoke_world / "index.csv", orient, tmp_path / "pred.csv",
                 tmp_path / "m.json", Placement.of(params.train))
    assert math.isfinite(m["2dof"]["mean_m"]) and math.isfinite(m["3dof_own"]["mean_m"])


def test_determinism_is_strict_on_cpu_and_warns_on_cuda():
    """CUDA has no deterministic backward for grid_sample or bilinear interpolation (training/
    device.py): there the mode only warns; on CPU it stays strict."""
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        deterministic(torch.device("cuda"))               # sets flags only: no GPU needed
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
        deterministic(torch.device("cpu"))
        assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def test_the_gpu_smoke_script_runs_its_path_on_cpu():
    """benchmarks/gpu_smoke.py (what benchmarks/gpu_smoke.sh runs on a GPU) at the smoke preset's
    sizes: bf16, channels_last, every method's training, distillation and prediction."""
    res = subprocess.run([sys.executable, "benchmarks/gpu_smoke.py", "--config", "configs/smoke.yaml", "--device",
                          "cpu", "--size", "params", "--batch", "2", "--steps", "1", "--predict-batch", "2"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["failed"] == [] and set(out["methods"]) == {"g2s_vgg", "g2s_dino", "ccvpe"}
    assert all(math.isfinite(m["distill_loss"]) and m["peak_memory_gib"] > 0 for m in out["methods"].values())
    assert subprocess.run(["bash", "-n", "benchmarks/gpu_smoke.sh"], cwd=REPO).returncode == 0
