"""Train a localization baseline (any method of models/localizer.py) on one area protocol.

    geodistill train-baseline --config params.yaml --method g2s_vgg --area cross \
        --index data/index.csv --out data/baselines/g2s_vgg-cross

A batch never holds two samples that share any tile (weak supervision needs true negatives;
fully supervised methods do not mind). Weakly supervised methods never see camera positions
in their loss; positions score the validation split after each epoch, which picks `best.pt`.
Methods that learn orientation get training panoramas turned by a seeded random yaw.
Each epoch logs one line and saves `last.pt`; a rerun resumes from it when params and code
are unchanged. Every draw of an epoch is seeded by (seed, epoch), so a run killed at any moment
and rerun repeats the unfinished epoch from `last.pt` and ends with the same numbers. With
`train.devices` > 1 the stage runs as that many data-parallel processes (distributed.py), with
the single-process result. Outputs in <out>/: best.pt, last.pt, history.csv; the stage trains
one such folder per seed of `report.seeds`, <out>/seed<s>/. A checkpoint carries its method's
params, so evaluation rebuilds the model from it.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from pydantic import TypeAdapter, ValidationError

from geodistill import distributed
from geodistill.config import BaselineParams, ConfigError, Params
from geodistill.errors import FormatError
from geodistill.data.index import read_index, seeded_subset
from geodistill.io import atomic_file
from geodistill.metrics import localization_metrics
from geodistill.models.localizer import Batch, build_localizer, predict_tile_pixels
from geodistill.training.augment import augment_batch
from geodistill.training.checkpoint import CheckpointError, Checkpointer, file_digest, seed_dir
from geodistill.training.device import Placement, deterministic
from geodistill.training.samples import LocalizationSamples
from geodistill.training.seeds import run_seeds
from geodistill.training.step import adamw, lr_schedule, memory_hint, optimizer_step, prepare, world_rows

log = logging.getLogger(__name__)
# train params a checkpoint may be resumed under (how many processes, which device, the
# prediction batch): the rest
# changes the numbers, so a last.pt made under other values is not resumed
RESUMABLE_ACROSS = {"devices", "device", "predict_batch_size"}


def build_model(p: BaselineParams, camera_height_m: float, seed: int, key: str = "baselines") -> torch.nn.Module:
    """A freshly initialised model; its weights depend only on the params and the seed. Params
    the model cannot be built from (an unknown timm backbone, a feature level it lacks) raise
    ConfigError naming `key`, the method's params section."""
    torch.manual_seed(seed)
    try:
        return build_localizer(p, camera_height_m)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None


def read_checkpoint(path: Path, method: str | None = None, mmap: bool = False) -> tuple[dict, BaselineParams]:
    """A baseline checkpoint's state and its method's params, checked without building the model:
    CheckpointError for a missing or unreadable file, one without a method, or, when `method` is
    given, one of another method. mmap: leave the weights on disk (to read the metadata only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train it first; nothing is trained implicitly)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except OSError:
        raise
    except Exception:               # torch's own text suggests weights_only=False: never for a checkpoint of ours
        raise CheckpointError(f"cannot read checkpoint {path}: not a complete PyTorch checkpoint; "
                              "restore it or retrain the run") from None
    if not isinstance(state, dict) or "method" not in state or "method_params" not in state:
        raise CheckpointError(f"{path} is not a localization checkpoint (no method recorded)")
    if method is not None and state["method"] != method:
        raise CheckpointError(f"{path} holds method {state['method']!r}, not {method!r}")
    try:
        return state, TypeAdapter(BaselineParams).validate_python(state["method_params"])
    except ValidationError as e:
        raise CheckpointError(f"{path}: its method params do not validate with this version "
                              f"({e.error_count()} problems, first: {e.errors()[0]['msg']})") from None


def load_checkpoint(path: Path, method: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The model saved in a baseline checkpoint, and the checkpoint's metadata (read_checkpoint's
    checks, and weights that fit the model its params describe)."""
    state, p = read_checkpoint(path, method)
    try:
        model = build_localizer(p, state["camera_height_m"])
    except ValueError as e:
        raise CheckpointError(f"{path}: this version builds no model from its method params ({e})") from None
    want, given = model.state_dict(), state.get("model")
    given = given if isinstance(given, dict) else {}
    missing, extra = want.keys() - given.keys(), given.keys() - want.keys()
    reshaped = [k for k in want.keys() & given.keys() if want[k].shape != given[k].shape]
    if missing or extra or reshaped:
        raise CheckpointError(f"{path}: its weights do not fit the {state['method']} model its params describe "
                              f"({len(missing)} missing, {len(extra)} unexpected, {len(reshaped)} of another shape)")
    model.load_state_dict(given)
    return model.eval(), state


def predict(model: torch.nn.Module, data: LocalizationSamples, batch_size: int, roll_deg=None,
            place: Placement = Placement.cpu()) -> pd.DataFrame:
    """Per-sample predicted tile pixel and error in metres, and the predicted yaw for methods that
    have one (roll_deg: optional (N,) panorama turns). The model must already be on `place`."""
    model.eval()
    pixels, yaws = [], []
    for start in tqdm(range(0, len(data), batch_size), desc=f"{data.desc}: predict", leave=False, disable=None):
        idx = np.arange(start, min(start + batch_size, len(data)))
        roll = None if roll_deg is None else roll_deg[idx]
        pano, sat, mpp = data.batch(idx, roll)
        tile_px = torch.from_numpy(data.rows.sat_size.to_numpy()[idx])
        camera = data.camera(idx, roll)
        with place.autocast():
            pixel, out = predict_tile_pixels(model, *map(place.tensor, (pano, sat, mpp, tile_px)),
                                             camera=None if camera is None else place.tensor(camera))
        pixels.append(pixel.float().cpu().numpy())
        if out.yaw_deg is not None:
            yaws.append(out.yaw_deg.float().cpu().numpy())
    pred = np.concatenate(pixels) if pixels else np.zeros((0, 2))
    truth = data.rows[["gt_row", "gt_col"]].to_numpy()
    error = np.hypot(*(pred - truth).T) * data.rows.mpp.to_numpy()
    table = pd.DataFrame({"pano_path": data.rows.pano_path, "city": data.rows.city, "gt_row": truth[:, 0],
                          "gt_col": truth[:, 1], "pred_row": pred[:, 0], "pred_col": pred[:, 1], "error_m": error})
    if yaws:
        table["pred_yaw_deg"] = np.concatenate(yaws)
    return table


def load_splits(index_path: Path, area: str, p: BaselineParams, desc: str, max_val: int = 0,
                seed: int = 0) -> dict[str, LocalizationSamples]:
    """The area protocol's train and val samples at the method's input sizes (at least 2 each);
    max_val > 0 keeps a subset of the val split drawn with `seed` (seeded_subset)."""
    index = read_index(index_path)
    rows = {s: index[(index.area == area) & (index.split == s)].reset_index(drop=True) for s in ("train", "val")}
    rows["val"] = seeded_subset(rows["val"], max_val, seed)
    splits = {s: LocalizationSamples(r, p.pano_size, p.sat_size, desc=f"{desc} {s}") for s, r in rows.items()}
    for s, data in splits.items():
        if len(data) < 2:
            raise FormatError(f"{index_path}: the {area}-area {s} split has {len(data)} samples (need 2)")
    return splits


def training_batches(data: LocalizationSamples, p: BaselineParams, seed: int, epoch: int, turn_deg: float,
                     desc: str) -> Iterator[Batch]:
    """One epoch of training batches (LocalizationSamples.batches, with a progress bar), seeded by (seed, epoch);
    with turn_deg > 0 each panorama is turned by a seeded random yaw in [-turn_deg, turn_deg),
    then the method's `augment` draws are applied (training/augment.py)."""
    batches = data.batches(p.batch_size, seed, epoch, p.max_train_samples)
    yaw_rng = np.random.default_rng([seed, epoch, 1])
    augment_rng = np.random.default_rng([seed, epoch, 3])
    for idx in tqdm(batches, desc=desc, leave=False, disable=None):
        yaw = yaw_rng.uniform(-turn_deg, turn_deg, len(idx)) if turn_deg else np.zeros(len(idx))
        pano, sat, mpp = data.batch(idx, yaw if turn_deg else None)
        batch = Batch(pano, sat, mpp, data.gt_px(idx), torch.from_numpy(yaw.astype(np.float32)),
                      camera=data.camera(idx, yaw if turn_deg else None))
        yield augment_batch(batch, p.augment, augment_rng)


def steps_per_epoch(data: LocalizationSamples, p: BaselineParams) -> int:
    """Optimiser steps of one training epoch (its last batch may be short): the schedule's unit."""
    n = len(data) if p.max_train_samples == 0 else min(p.max_train_samples, len(data))
    return -(-n // p.batch_size)


def validation_errors(model: torch.nn.Module, shard: LocalizationSamples, batch_size: int,
                      place: Placement) -> np.ndarray:
    """(N,) metres: the errors of every rank's shard of the validation split, in order."""
    errors = predict(model, shard, batch_size, place=place).error_m.to_numpy()
    return np.concatenate(distributed.gather_objects(errors))


def train_baseline(index_path: Path, out: Path, method: str, area: str, params: Params,
                   seed: int | None = None) -> dict:
    """Train `method` on the area's train split with `seed` (default: the first of report.seeds),
    keep the best by validation mean error. The stage runs it once per seed (train_baseline_seeds)."""
    if method not in params.baselines:
        raise ConfigError(f"unknown method {method!r}: params `baselines` has {', '.join(params.baselines)}")
    p, t = params.method_params(method, area), params.train
    seed = params.report.seeds[0] if seed is None else seed
    if t.threads:
        torch.set_num_threads(t.threads)
    place = Placement.of(t)
    deterministic(place.device)
    world = distributed.join(place.device.type)
    splits = load_splits(index_path, area, p, f"{method}-{area}", t.max_val_samples, params.index.seed)
    val_shard = splits["val"].subset(world.shard(len(splits["val"])))
    model = prepare(place.model(build_model(p, params.bev.camera_height_m, seed, f"baselines.{method}")), world)
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = adamw(trainable, p.lr, p.weight_decay)
    scheduler = lr_schedule(optimizer, p.lr_schedule, p.warmup_fraction, p.epochs * steps_per_epoch(splits["train"], p))
    key = {"method": method, "area": area, "seed": seed, "baseline": p.model_dump(),
           "train": t.model_dump(exclude=RESUMABLE_ACROSS),
           "camera_height_m": params.bev.camera_height_m, "index": file_digest(index_path)}
    ckpt = Checkpointer(out, key)
    history, start_epoch, best = [], 0, float("inf")
    state = ckpt.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        log.info("%s-%s seed %d: resuming after epoch %d", method, area, seed, state["epoch"] + 1)
    meta = {"method": method, "area": area, "seed": seed, "method_params": p.model_dump(mode="json"),
            "camera_height_m": params.bev.camera_height_m}

    for epoch in range(start_epoch, p.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(seed + epoch)
        model.train()
        total, seen = 0.0, 0
        where = f"{method}-{area} seed {seed} epoch {epoch + 1}"
        with memory_hint(f"baselines.{method}.batch_size", p.batch_size):
            for batch in training_batches(splits["train"], p, seed, epoch, model.train_yaw_deg, where):
                rows, share = world_rows(len(batch.pano), world)
                if not share:
                    continue
                with place.autocast():
                    loss = model.loss(place.batch(batch.rows(rows))).float()
                total += optimizer_step(loss, share, optimizer, trainable, p.grad_clip, where, ckpt) * len(batch.pano)
                seen += len(batch.pano)
                scheduler.step()
        val = localization_metrics(validation_errors(model, val_shard, t.predict_batch_size, place))
        history.append({"epoch": epoch + 1, "train_loss": total / max(seen, 1), "val_mean_m": val["mean_m"],
                        "val_median_m": val["median_m"], "seconds": time.perf_counter() - t0})
        improved, best = val["mean_m"] < best, min(best, val["mean_m"])
        if world.is_main:
            log.info("%s-%s seed %d epoch %d/%d: loss %.4f, val mean %.2f m, median %.2f m (%.0fs)", method,
                     area, seed, epoch + 1, p.epochs, history[-1]["train_loss"], val["mean_m"], val["median_m"],
                     history[-1]["seconds"])
            if improved:
                ckpt.save("best", {**meta, "model": model.state_dict(), "epoch": epoch, "val": val})
            ckpt.save("last", {**meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "epoch": epoch, "best": best, "history": history})
    if world.is_main:
        with atomic_file(Path(out) / "history.csv") as tmp:
            pd.DataFrame(history).to_csv(tmp, index=False)
    world.barrier()
    return {"best_val_mean_m": best, "epochs": p.epochs}


def train_baseline_seeds(index_path: Path, run_dir: Path, method: str, area: str, params: Params) -> dict:
    """train_baseline once per seed of report.seeds into <run_dir>/seed<s>/, train.parallel_seeds
    at a time (training/seeds.py; a seed finished under the same params and code is not retrained:
    its last.pt has every epoch); returns seed -> result."""
    return run_seeds(partial(_train_seed, index_path, run_dir, method, area, params), params.report.seeds,
                     params.train)


def _train_seed(index_path: Path, run_dir: Path, method: str, area: str, params: Params, seed: int) -> dict:
    return train_baseline(index_path, seed_dir(run_dir, seed), method, area, params, seed)

