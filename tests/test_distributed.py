"""Data-parallel training: 2 gloo processes on CPU give the single-process result of the same
global batch (distributed.py)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO
from geodistill.data.index import build_index, write_index
from geodistill.data.synth.writer import write_world
from geodistill.distributed import World
from geodistill.training.step import world_rows

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]


def _env() -> dict:
    return dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}",
                OMP_NUM_THREADS="1")


def _run(args: list, cwd) -> subprocess.CompletedProcess:
    res = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(map(str, args))} failed:\n{res.stdout}\n{res.stderr[-4000:]}"
    return res


def test_shards_cover_a_batch_once_in_order_and_tiny_batches_are_skipped_everywhere():
    for n in (2, 5, 8):
        rows = [World(r, 3).shard(n) for r in range(3)]
        assert [i for s in rows for i in range(n)[s]] == list(range(n))
        assert max(s.stop - s.start for s in rows) - min(s.stop - s.start for s in rows) <= 1
    assert [world_rows(2, World(r, 3)) for r in range(3)] == [(slice(0, 0), 0.0)] * 3   # too small: all skip
    assert [world_rows(5, World(r, 2))[1] for r in range(2)] == [0.6, 0.4]


PRIMITIVES = textwrap.dedent('''
    import json, sys, torch
    from torch import nn
    from geodistill import distributed as D
    world = D.join()
    torch.manual_seed(0)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)                 # the global batch
    weight = torch.arange(5.0).view(5, 1, 1, 1)
    ref = nn.BatchNorm2d(3)
    ref_y = ref(x)
    (ref_y * weight).square().sum().backward()
    bn = D.make_batch_norm_global(nn.BatchNorm2d(3))
    rows = world.shard(5)
    mine = x[rows].detach().requires_grad_(True)
    y = bn(mine)
    (y * weight[rows]).square().sum().backward()                      # this rank's share of the loss
    a = torch.randn(5, 2, requires_grad=True)
    gathered, first = D.gather_rows(a[rows] * 1.0)
    (gathered.sum(0).square().sum() * (world.rank == 0)).backward()  # only rank 0 uses the rows
    out = {"y": (y - ref_y[rows]).abs().max().item(), "grad": (mine.grad - x.grad[rows]).abs().max().item(),
           "running_var": (bn.running_var - ref.running_var).abs().max().item(),
           "gathered": (gathered - a).abs().max().item(), "first": first, "own": rows.start,
           "gather_grad": (a.grad[rows] - 2 * a.sum(0)).abs().max().item()}
    json.dump(out, open(sys.argv[1] + f"/{world.rank}.json", "w"))
    D.leave()
''')


def test_global_batch_norm_and_gathered_rows_match_one_process(tmp_path):
    (tmp_path / "check.py").write_text(PRIMITIVES)
    _run(TORCHRUN + [str(tmp_path / "check.py"), str(tmp_path)], tmp_path)
    for rank in (0, 1):
        out = yaml.safe_load((tmp_path / f"{rank}.json").read_text())
        assert out["first"] == out["own"] == (0, 3)[rank]            # ranks hold 3 and 2 rows
        assert out["gathered"] == 0.0                                # every rank's rows, in order
        assert out["gather_grad"] < 1e-5                             # rank 1's rows get rank 0's gradient
        assert out["y"] < 1e-5 and out["grad"] < 1e-4 and out["running_var"] < 1e-6   # global statistics


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory, smoke_params):
    root = tmp_path_factory.mktemp("ddp")
    write_world(smoke_params.synth, root / "world")
    write_index(build_index(root / "world", smoke_params.index), root / "index.csv")
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["report"]["seeds"] = [2023]                                  # one seed: <out>/seed2023/
    for devices in (1, 2):
        raw["train"] = {**raw["train"], "devices": devices, "threads": 1}
        (root / f"devices{devices}.yaml").write_text(yaml.safe_dump(raw))
    return root


def _history(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv").drop(columns="seconds")


def _close_weights(a_path, b_path, atol: float) -> None:
    a, b = (torch.load(p, weights_only=True)["model"] for p in (a_path, b_path))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def test_two_gloo_processes_train_a_baseline_and_distil_it_as_one_process(world_dir):
    """The command stays one line: `train.devices: 2` makes it relaunch itself under torchrun.
    Tolerance: sub-batches change float rounding (~1e-7), and Adam's first steps turn a tiny
    gradient into a step of up to lr, so weights agree to a few lr (smoke lr 1e-3)."""
    base = ["geodistill", "train-baseline", "--method", "g2s_vgg", "--area", "cross", "--index", "index.csv"]
    for devices in (1, 2):
        res = _run(base + ["--config", f"devices{devices}.yaml", "--out", f"base{devices}/g2s_vgg-cross"], world_dir)
        assert res.stdout.count("best validation mean error") == 1           # rank 0 speaks, once
    one, two = (_history(world_dir / f"base{d}/g2s_vgg-cross/seed2023") for d in (1, 2))
    pd.testing.assert_frame_equal(one, two, rtol=1e-4, atol=0)
    _close_weights(*(world_dir / f"base{d}/g2s_vgg-cross/seed2023/best.pt" for d in (1, 2)), 3e-3)

    distil = ["geodistill", "distill", "--variant", "geodistill-g2s_vgg-cross", "--index", "index.csv",
              "--baselines", "base1"]
    for devices in (1, 2):
        _run(distil + ["--config", f"devices{devices}.yaml", "--out", f"distill{devices}"], world_dir)
    one, two = (_history(world_dir / f"distill{d}" / "seed2023") for d in (1, 2))
    pd.testing.assert_frame_equal(one, two, rtol=1e-4, atol=0)
    a, b = (torch.load(world_dir / f"distill{d}" / "seed2023" / "last.pt", weights_only=True)["teacher"] for d in (1, 2))
    for k in a:                                                              # the EMA teacher too
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=3e-3, msg=k)
