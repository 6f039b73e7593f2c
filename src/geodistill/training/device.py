"""Where a stage computes and at what precision: params `train.device`, `train.precision`,
`train.channels_last` (every training stage and `evaluate`).

    place = Placement.of(params.train)              # cuda -> cuda:<LOCAL_RANK> under torchrun
    world = distributed.join(place.device.type)     # NCCL on CUDA, gloo on CPU
    model = place.model(model)                      # moved, channels_last if asked
    with place.autocast():                          # bf16 autocast if asked
        loss = model.loss(place.batch(batch))

Nothing names a GPU id: a process uses the GPU its torchrun rank is given (LOCAL_RANK) among
those CUDA_VISIBLE_DEVICES shows it. `cpu` with `fp32` is the exact path of the synthetic
default (deterministic, bitwise reproducible); on CUDA, runs are reproducible to float tolerance
(docs/reproducibility.md).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, fields, is_dataclass, replace

import torch

from geodistill.config import ConfigError, TrainParams


def deterministic(device: torch.device = torch.device("cpu")) -> None:
    """Deterministic kernels for a training stage on `device`, without torch's NaN-filling of
    every fresh buffer that deterministic mode also turns on: a correct kernel overwrites what it
    allocates, so the fill changes no result, and it took ~9% of a CPU training step (aten::fill_).

    On CUDA, two backward kernels the localization models need have no deterministic
    implementation (they accumulate with atomic adds): bilinear interpolation's (F.interpolate,
    in every model's decoder) and grid_sample's (G2SWeakly's ground-to-BEV projection). Strict
    mode raises at the first backward there, so on CUDA the mode warns for those kernels instead
    (warn_only) and keeps the deterministic choice everywhere else: CUDA runs are reproducible
    to float tolerance, not bit for bit (docs/reproducibility.md). On CPU every kernel is
    deterministic, and the mode stays strict."""
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    torch.utils.deterministic.fill_uninitialized_memory = False


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda` (this rank's GPU: LOCAL_RANK, 0 without torchrun) or `auto` (cuda when there
    is one). Asking for CUDA on a machine without it is a ConfigError naming the param."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but torch sees no CUDA device "
                          f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
                          "set train.device: cpu or auto")
    rank = int(os.environ.get("LOCAL_RANK", "0"))
    if rank >= torch.cuda.device_count():
        raise ConfigError(f"train.devices asks for more processes than the {torch.cuda.device_count()} "
                          f"visible GPUs (rank {rank}); lower train.devices or widen CUDA_VISIBLE_DEVICES")
    return torch.device("cuda", rank)


@dataclass(frozen=True)
class Placement:
    device: torch.device
    bf16: bool = False            # autocast matmuls and convolutions to bfloat16
    channels_last: bool = False   # NHWC memory format for the convolutions (tensor cores)

    @classmethod
    def of(cls, t: TrainParams) -> "Placement":
        return cls(resolve_device(t.device), t.precision == "bf16", t.channels_last)

    @classmethod
    def cpu(cls) -> "Placement":
        return cls(torch.device("cpu"))

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model on this device (in place; returned for chaining)."""
        if self.channels_last:
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def tensor(self, x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.to(self.device, non_blocking=True)

    def batch(self, batch):
        """A dataclass of tensors (models/localizer.Batch) with every tensor field on this device."""
        assert is_dataclass(batch)
        moved = {f.name: self.tensor(getattr(batch, f.name)) for f in fields(batch)
                 if isinstance(getattr(batch, f.name), torch.Tensor)}
        return replace(batch, **moved)

    def autocast(self):
        """bf16 autocast on this device when asked; otherwise a no-op context."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)
