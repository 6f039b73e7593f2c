"""Data-parallel training on several processes: one line in params.yaml, no change to dvc.yaml.

    train.devices: 2          # params.yaml; the stage's one-line command relaunches itself:
    python -m stages.train_baseline ...   ->   torchrun --standalone --nproc-per-node 2 -m stages.train_baseline ...

    with data_parallel(params.train.devices):     # a training stage's block (stages/train_baseline.py)
        train_baseline_seeds(...)

Every rank draws the same global batch (same seeds), keeps its contiguous share of it
(`World.shard`), and the gradients of the ranks' losses are summed. Each rank's loss is its
samples' mean loss weighted by their share of the global batch, so the summed gradient is the
single-process gradient of the same global batch: a batch that never shares a satellite tile
stays so on every rank. Two parts of a model see across samples, and both are made global here:
batch normalisation (`global_batch_norm`: statistics over the global batch, as torch's
SyncBatchNorm, which refuses CPU tensors) and G2SWeakly's in-batch negatives (`gather_rows`:
every rank scores its panoramas against every rank's satellite tiles). Only rank 0 writes
checkpoints, metrics and logs; the distillation teacher follows the student by EMA of
parameters that are identical on every rank, so it stays identical too.

Backend: gloo for CPU training, NCCL for CUDA. Not distributed (one process), every function
here is the identity, so single-process runs are the same code and the same numbers.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of n items (the first n % size ranks get one more)."""
        small, extra = divmod(n, self.size)
        start = self.rank * small + min(self.rank, extra)
        return slice(start, start + small + (self.rank < extra))

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> World:
    """The current world: from the process group once `join` has run, else one process."""
    return World(dist.get_rank(), dist.get_world_size()) if active() else World()


def join(device: str = "cpu") -> World:
    """Join the process group torchrun set up (WORLD_SIZE > 1 in the environment); a plain run is
    a world of one. The backend follows the training device: gloo for CPU tensors, NCCL for CUDA
    (each rank on device LOCAL_RANK)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return world()


def relaunch(devices: int, argv: list[str] | None = None) -> int | None:
    """With devices > 1 and not yet under torchrun: run this same command as `devices` processes
    under torchrun and return its exit code. Otherwise None (carry on in this process)."""
    if devices <= 1 or "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ:
        return None
    argv = sys.argv[1:] if argv is None else argv
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
               *_this_program(), *argv]
    return subprocess.run(command, check=False).returncode


def _this_program() -> list[str]:
    """How this process was started, for torchrun: `-m <module>` (python -m stages.x) or the
    script's path (the `geodistill` console script)."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return ["-m", spec.name] if spec is not None else [sys.argv[0]]


@contextlib.contextmanager
def data_parallel(devices: int):
    """Run the block as `devices` data-parallel processes: this command is relaunched under
    torchrun, and this process only waits for it and exits with its code (SystemExit); inside
    torchrun, the block runs on this rank and the process group is left at the end."""
    # cuBLAS is deterministic only with a fixed workspace, set before CUDA starts (training asks for
    # deterministic algorithms); it changes nothing on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    code = relaunch(devices)
    if code is not None:
        raise SystemExit(code)
    try:
        yield
    finally:
        leave()


def print_once(message: str) -> None:
    """print on rank 0 only (every message once when data-parallel)."""
    if world().is_main:
        print(message, flush=True)


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of each rank's input is the sum of every rank's output gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Differentiable sum of x over the ranks (x itself in one process)."""
    return _AllReduceSum.apply(x) if active() else x


def stack_ranks(x: torch.Tensor) -> torch.Tensor:
    """(R, *x.shape): every rank's x (the same shape on every rank), in rank order. Differentiable:
    each rank's x gets the gradient of every rank's use of it."""
    slots = x.new_zeros((dist.get_world_size(), *x.shape))
    slots = slots.index_put((torch.tensor([dist.get_rank()], device=x.device),), x[None])
    return all_reduce_sum(slots)


def gather_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Every rank's x (n_r, ...) concatenated in rank order, and the row where this rank's own
    rows start (differentiable, as stack_ranks). Ranks may hold different numbers of rows.
    One process: (x, 0)."""
    if not active():
        return x, 0
    counts = torch.zeros(dist.get_world_size(), dtype=torch.long, device=x.device)
    counts[dist.get_rank()] = len(x)
    dist.all_reduce(counts)
    padded = torch.cat([x, x.new_zeros((int(counts.max()) - len(x), *x.shape[1:]))])   # (max n_r, ...)
    every = stack_ranks(padded)                                                        # (R, max n_r, ...)
    rows = torch.cat([every[r, :int(n)] for r, n in enumerate(counts)])
    return rows, int(counts[:dist.get_rank()].sum())


def global_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Batch norm of x (B, C, ...) with the statistics of the global batch (every rank's x), and
    the module's running statistics updated from them as torch does (unbiased running variance).
    One collective: every rank's count, mean and variance, combined exactly (pooled variance)."""
    dims = [0, *range(2, x.dim())]
    shape = [1, -1] + [1] * (x.dim() - 2)
    n = x.numel() // x.shape[1]
    mean = x.mean(dims) if n else x.new_zeros(x.shape[1])                        # (C,)
    var = (x - mean.view(shape)).square().mean(dims) if n else x.new_zeros(x.shape[1])   # (C,) biased
    every = stack_ranks(torch.cat([x.new_full((1,), float(n)), mean, var]))       # (R, 1 + 2C)
    counts, means, variances = every[:, :1], every[:, 1:1 + len(mean)], every[:, 1 + len(mean):]
    count = counts.sum()
    mean = (counts * means).sum(0) / count                                         # (C,)
    var = (counts * (variances + (means - mean).square())).sum(0) / count          # (C,) biased
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked += 1
            momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            bn.running_mean.lerp_(mean.detach(), momentum)
            bn.running_var.lerp_(var.detach() * count / (count - 1).clamp_min(1), momentum)
    y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + bn.eps)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    return y


def _global_forward(self, x: torch.Tensor) -> torch.Tensor:
    if not (self.training and active()):
        return type(self).__mro__[1].forward(self, x)
    y = global_batch_norm(self, x)
    if hasattr(self, "act"):            # timm's BatchNormAct2d: norm, then drop and activation
        y = self.act(self.drop(y))
    return y


def make_batch_norm_global(model: nn.Module) -> nn.Module:
    """Turn every batch-norm layer of `model` (torch's or timm's BatchNormAct2d) into one that
    normalises training batches with global-batch statistics when distributed. In place."""
    classes: dict[type, type] = {}
    for module in model.modules():
        cls = type(module)
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not cls.__name__.startswith("Global"):
            if cls not in classes:
                classes[cls] = type(f"Global{cls.__name__}", (cls,), {"forward": _global_forward})
            module.__class__ = classes[cls]
    return model


def broadcast_model(model: nn.Module) -> None:
    """Every rank takes rank 0's parameters and buffers."""
    if active():
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, 0)


def sum_gradients(params: list[torch.Tensor]) -> None:
    """Sum each parameter's gradient over the ranks (one flat all-reduce)."""
    if not active():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    for p, chunk in zip(params, flat.split([g.numel() for g in grads])):
        p.grad = chunk.view_as(p).clone()


def gather_objects(obj) -> list:
    """Every rank's picklable obj, in rank order ([obj] in one process)."""
    if not active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

