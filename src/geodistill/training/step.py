"""The optimisation step every training stage shares, single-process or data-parallel.

    model = prepare(model, world)                        # global batch norm, rank 0's weights
    rows, share = world_rows(len(batch), world)          # this rank's samples of the global batch (share 0: skip)
    with memory_hint("baselines.g2s_vgg.batch_size", 8):
        total = optimizer_step(model.loss(batch.rows(rows)), share, optimizer, params, 1.0, where, ckpt)

A rank's loss is the mean over its own samples; weighted by `share` (its samples / the global
batch) and summed over ranks, it is the global batch's mean loss, and so are the gradients
(distributed.py). A non-finite loss stops every rank with a message naming the last good
checkpoint, which is never overwritten by the failed epoch; running out of memory names the
batch-size param to lower.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch

from geodistill import distributed
from geodistill.distributed import World
from geodistill.training.checkpoint import Checkpointer


def prepare(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The model ready for this world: global batch norm and rank 0's weights when distributed."""
    if world.size > 1:
        distributed.make_batch_norm_global(model)
        distributed.broadcast_model(model)
    return model


def adamw(params, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with torch's fused kernel (CPU and CUDA): one pass over every parameter instead of a
    loop over the tensors, the same update to float rounding; a CPU step of g2s_dino or CCVPE
    takes ~8 % less time (docs/synthetic-default.md#the-hour-on-a-slower-machine)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def world_rows(n: int, world: World) -> tuple[slice, float]:
    """This rank's rows of a global batch of n samples, and their share of it. A batch with fewer
    samples than processes (at most an epoch's last one) gets share 0 on every rank: skip it."""
    if n < world.size:
        return slice(0, 0), 0.0
    rows = world.shard(n)
    return rows, (rows.stop - rows.start) / n


def optimizer_step(loss: torch.Tensor, share: float, optimizer: torch.optim.Optimizer, trainable: list,
                   grad_clip: float, where: str, ckpt: Checkpointer) -> float:
    """Backward, clip and step on this rank's `share` of the global batch's loss; returns the
    global batch's mean loss. A non-finite loss on any rank stops every rank (FloatingPointError)."""
    weighted = loss * share
    total = distributed.all_reduce_sum(weighted.detach()).item()
    if not np.isfinite(total):
        raise FloatingPointError(f"{where}: the loss is {total}; stopped, the last good checkpoint "
                                 f"is kept in {ckpt.path('last')} (lower the learning rate, or check the inputs)")
    optimizer.zero_grad(set_to_none=True)
    weighted.backward()
    distributed.sum_gradients(trainable)
    torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
    optimizer.step()
    return total


@contextmanager
def memory_hint(batch_size_key: str, batch_size: int):
    """Turn running out of memory (GPU or host) into a MemoryError that names the param to lower."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as e:
        raise MemoryError(f"out of memory at {batch_size_key} = {batch_size}: lower it in params.yaml "
                          f"(or train on more devices, train.devices); {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from None


def lr_schedule(optimizer: torch.optim.Optimizer, kind: str, warmup_fraction: float,
                total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning rate of step t of `total_steps` as a factor of the optimiser's lr: a linear
    ramp from 0 over the first warmup_fraction of the steps, then 1 (constant) or a cosine decay
    to 0 at the last step (cosine). Steps past total_steps keep the last factor."""
    warmup = warmup_fraction * total_steps

    def factor(step: int) -> float:
        t = step + 1                                    # the factor of the step about to be taken
        if t <= warmup:
            return t / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (t - warmup) / max(total_steps - warmup, 1))
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
