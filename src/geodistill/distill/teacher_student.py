"""GeoDistill: fine-tune a trained baseline by teacher-student self-distillation (its facts:
docs/paper-reference.md#geodistill), or, in `augment` mode, retrain it with the same occlusion as
plain augmentation.

    geodistill distill --config params.yaml --variant geodistill-g2s_vgg-cross \
        --index data/index.csv --baselines data/baselines --out data/distill/geodistill-g2s_vgg-cross

One run per seed of `report.seeds`, <out>/seed<s>/, each from the same seed's baseline.

The student starts from the baseline checkpoint of the variant's method and area (never from
scratch) and sees the occluded panorama; the teacher, a copy of it that sees the full
panorama, follows it by EMA of the parameters, once per epoch as the authors' code or every
step. The loss is distill_loss (targets.py) only; the baseline's own loss is not kept.
Normalisation statistics are never re-estimated while fine-tuning (keep_norm_statistics): the
student's batch norms keep the baseline's running statistics, which were measured on full
panoramas, instead of learning those of occluded ones that test time never shows them (the
authors' networks have no batch norm, so this is the faithful equivalent); the teacher's
buffers stay the baseline's too. After each epoch both models are scored on the validation
split and each keeps its best epoch: `student.pt` (the authors' code evaluates it) and
`teacher.pt` (the paper evaluates it), both in the baseline checkpoint format, so
`geodistill evaluate` scores both. Resumable from `last.pt` (student, teacher, optimiser,
epoch); out/history.csv.
Data-parallel with `train.devices` > 1 as the baselines (training/baseline.py): the occlusion
draws are made for the global batch, so every rank's samples get their single-process draws.
"""
from __future__ import annotations

import copy
import logging
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from geodistill import distributed
from geodistill.config import ConfigError, DistillVariant, Params
from geodistill.distill.occlusion import occlude
from geodistill.distill.targets import distill_loss
from geodistill.io import atomic_file
from geodistill.metrics import localization_metrics
from geodistill.models.localizer import Batch
from geodistill.training.baseline import (RESUMABLE_ACROSS, load_checkpoint, load_splits, training_batches,
                                         validation_errors)
from geodistill.training.checkpoint import DISTILLED_MODELS as MODELS, CheckpointError, Checkpointer, file_digest, seed_dir
from geodistill.training.device import Placement, deterministic
from geodistill.training.seeds import run_seeds
from geodistill.training.step import adamw, memory_hint, optimizer_step, prepare, world_rows

log = logging.getLogger(__name__)


def make_teacher(student: torch.nn.Module) -> torch.nn.Module:
    """The teacher: a frozen copy of the student, in eval mode."""
    return copy.deepcopy(student).eval().requires_grad_(False)


def keep_norm_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Every batch norm of `model` to eval mode (in place): it normalises with its running
    statistics and no longer updates them, while its affine weights still train. Call after
    model.train()."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, alpha: float) -> None:
    """Every teacher parameter <- alpha * teacher + (1 - alpha) * student (as the authors' code:
    parameters only; the teacher's buffers are left as they are)."""
    for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
        t.lerp_(s, 1.0 - alpha)


def variant_loss(v: DistillVariant, student, teacher, batch: Batch, rng: np.random.Generator,
                 rows: slice = slice(None)) -> torch.Tensor:
    """One step's loss on the samples `rows` of the batch (all by default; a distributed rank's
    share): the student on the occluded panorama against the teacher on the full one (distill),
    or the student's own loss on the occluded panorama (augment)."""
    occluded, columns = occlude(v.occlusion, batch.pano, rng, teacher.ground_features, rows)
    batch = batch.rows(rows)
    if v.mode == "augment":
        return student.loss(replace(batch, pano=occluded, column_mask=columns))
    with torch.no_grad():
        target = teacher.score_maps(batch.pano, batch.sat, batch.sat_mpp, camera=batch.camera)
    return distill_loss(student.score_maps(occluded, batch.sat, batch.sat_mpp, columns, batch.camera), target,
                        v.target)


def train_distill(index_path: Path, baselines: Path, out: Path, name: str, params: Params,
                  seed: int | None = None) -> dict:
    """Run variant `name` of params.distill with `seed` (default: the first of report.seeds) on
    the same seed's baseline checkpoint, <baselines>/<method>-<area>/seed<s>/best.pt."""
    if name not in params.distill.variants:
        raise ConfigError(f"unknown distill variant {name!r}: params `distill.variants` has "
                          f"{', '.join(params.distill.variants) or 'none'}")
    v, t = params.distill.variants[name], params.train
    p = params.method_params(v.method, v.area)
    seed = params.report.seeds[0] if seed is None else seed
    start = seed_dir(Path(baselines) / f"{v.method}-{v.area}", seed) / "best.pt"
    student, base = load_checkpoint(start, v.method)
    if base["area"] != v.area:
        raise CheckpointError(f"{start} holds a {v.method}-{base['area']} model, not the {v.method}-{v.area} "
                              f"baseline variant {name} starts from")
    if base["method_params"] != p.model_dump(mode="json"):
        run = f"{v.method}-{v.area}"
        raise CheckpointError(f"{start} was trained with other `baselines.{v.method}` params (or `runs.{run}.augment`) "
                              f"than params.yaml has now: retrain it first (dvc repro train-baseline@{run})")
    if t.threads:
        torch.set_num_threads(t.threads)
    place = Placement.of(t)
    deterministic(place.device)
    world = distributed.join(place.device.type)
    splits = load_splits(index_path, v.area, p, name, t.max_val_samples, params.index.seed)
    val_shard = splits["val"].subset(world.shard(len(splits["val"])))
    student = prepare(place.model(student), world)
    teacher = make_teacher(student)
    trainable = [q for q in student.parameters() if q.requires_grad]
    optimizer = adamw(trainable, v.lr, v.weight_decay)
    epochs = max(1, round(v.epochs_factor * p.epochs))
    drawn = p if v.max_train_samples == 0 else p.model_copy(update={"max_train_samples": v.max_train_samples})
    key = {"variant": v.model_dump(), "seed": seed, "train": t.model_dump(exclude=RESUMABLE_ACROSS), "baseline": file_digest(start),
           "index": file_digest(index_path)}
    ckpt = Checkpointer(out, key)
    history, first_epoch, best = [], 0, {m: float("inf") for m in MODELS}
    state = ckpt.resume(MODELS)
    if state is not None:
        student.load_state_dict(state["model"])
        teacher.load_state_dict(state["teacher"])
        optimizer.load_state_dict(state["optimizer"])
        first_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        log.info("%s seed %d: resuming after epoch %d", name, seed, state["epoch"] + 1)
    meta = {k: base[k] for k in ("method", "area", "method_params", "camera_height_m")} | {"variant": name,
                                                                                          "seed": seed}

    for epoch in range(first_epoch, epochs):
        t0 = time.perf_counter()
        torch.manual_seed(seed + epoch)
        occlusion_rng = np.random.default_rng([seed, epoch, 2])
        keep_norm_statistics(student.train())
        total, seen = 0.0, 0
        where = f"{name} seed {seed} epoch {epoch + 1}"
        with memory_hint(f"baselines.{v.method}.batch_size", p.batch_size):
            for batch in training_batches(splits["train"], drawn, seed, epoch, student.train_yaw_deg, where):
                rows, share = world_rows(len(batch.pano), world)
                if not share:
                    continue
                with place.autocast():
                    loss = variant_loss(v, student, teacher, place.batch(batch), occlusion_rng, rows).float()
                total += optimizer_step(loss, share, optimizer, trainable, v.grad_clip, where, ckpt) * len(batch.pano)
                seen += len(batch.pano)
                if v.ema_every == "step":
                    ema_update(teacher, student, v.ema_alpha)
        if v.ema_every == "epoch":
            ema_update(teacher, student, v.ema_alpha)
        models = {"student": student, "teacher": teacher}
        val = {k: localization_metrics(validation_errors(m, val_shard, t.predict_batch_size, place))
               for k, m in models.items()}
        history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1),
                        **{f"val_{k}_{s}_m": val[k][f"{s}_m"] for k in models for s in ("mean", "median")},
                        "seconds": time.perf_counter() - t0})
        improved = {m: val[m]["mean_m"] < best[m] for m in MODELS}
        best = {m: min(best[m], val[m]["mean_m"]) for m in MODELS}
        if world.is_main:
            log.info("%s seed %d epoch %d/%d: loss %.4f, val mean student %.2f m, teacher %.2f m (%.0fs)", name,
                     seed, epoch + 1, epochs, history[-1]["train_loss"], val["student"]["mean_m"], val["teacher"]["mean_m"],
                     history[-1]["seconds"])
            for m in MODELS:
                if improved[m]:
                    ckpt.save(m, {**meta, "model": models[m].state_dict(), "epoch": epoch, "val": val[m],
                                  "distilled_model": m})
            ckpt.save("last", {**meta, "model": student.state_dict(), "teacher": teacher.state_dict(),
                               "optimizer": optimizer.state_dict(), "epoch": epoch, "best": best,
                               "history": history})
    if world.is_main:
        with atomic_file(Path(out) / "history.csv") as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
    world.barrier()
    return {"best_val_mean_m": best, "epochs": epochs}     # best: model -> its best validation mean


def train_distill_seeds(index_path: Path, baselines: Path, run_dir: Path, name: str, params: Params) -> dict:
    """train_distill once per seed of report.seeds into <run_dir>/seed<s>/, each from the same
    seed's baseline, train.parallel_seeds at a time (training/seeds.py); returns seed -> result."""
    return run_seeds(partial(_distill_seed, index_path, baselines, run_dir, name, params), params.report.seeds,
                     params.train)


def _distill_seed(index_path: Path, baselines: Path, run_dir: Path, name: str, params: Params, seed: int) -> dict:
    return train_distill(index_path, baselines, seed_dir(run_dir, seed), name, params, seed)
