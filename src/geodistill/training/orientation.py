"""Train and evaluate the orientation network, one model per area protocol.

    geodistill train-orientation --config params.yaml --index data/index.csv --bev data/bev \
        --out data/orientation --metrics reports/results/orientation.json

Yaw augmentation rotates the cached BEV about the camera instead of re-projecting: the naive
(north-at-centre) BEV of a panorama whose centre column heads at yaw psi is the true BEV rotated
counter-clockwise by psi. Every BEV is cut to a disc so that the empty corners of a rotated image
cannot reveal the angle. Training yaws are drawn from (seed, epoch, sample); validation and test
yaws are fixed per sample. Each epoch logs one line and saves `last.pt`; the best validation
error is kept in `best.pt`; a rerun resumes from `last.pt` when the params are unchanged.
With `train.devices` > 1 it trains data-parallel as the localization stages (training/step.py).
Outputs per area in `<out>/<area>/`: best.pt, last.pt, history.csv, test_predictions.csv.
The test predictions (and metrics) cover the seeded test subset the localization runs are
scored on (params `evaluate`, data/index.py seeded_subset); each panorama's fixed test yaw is the
same whatever the subset.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from geodistill import distributed
from geodistill.config import BevParams, ConfigError, CorrelateHead, EvaluateParams, OrientationParams
from geodistill.errors import FormatError
from geodistill.data.index import read_index, seeded_subset
from geodistill.geometry import bev_disc, rotate_bev
from geodistill.io import atomic_file, write_json
from geodistill.metrics import orientation_metrics
from geodistill.models.angles import AngleBins
from geodistill.models.orientation import build_orientation_net
from geodistill.training.checkpoint import Checkpointer
from geodistill.training.device import Placement, deterministic
from geodistill.training.samples import read_sample_tile, tile_keys
from geodistill.training.step import adamw, memory_hint, optimizer_step, prepare, world_rows

log = logging.getLogger(__name__)
TEST_STREAM, VAL_STREAM = 1_000_001, 1_000_002     # rng streams of the fixed evaluation yaws


@dataclass(frozen=True)
class Views:
    """How both views enter the network: the satellite side in pixels and, for a metric head, its
    metres per pixel (None = plain resize of the whole tile, the authors' way); the BEV side."""

    sat_px: int
    sat_mpp: float | None
    bev_px: int

    @classmethod
    def of(cls, p: OrientationParams, bev: BevParams) -> "Views":
        if isinstance(p.head, CorrelateHead):
            return cls(p.input_size, p.head.input_mpp, round(bev.size * bev.mpp / p.head.input_mpp))
        return cls(p.input_size, None, p.input_size)


def resample_tile(image: np.ndarray, mpp: float, views: Views) -> np.ndarray:
    """A satellite tile (S, S, 3) -> (sat_px, sat_px, 3): a plain resize, or resampled to
    views.sat_mpp and centre-cropped / zero-padded to sat_px."""
    if views.sat_mpp is None:
        return cv2.resize(image, (views.sat_px, views.sat_px), interpolation=cv2.INTER_AREA)
    n = max(1, round(image.shape[0] * mpp / views.sat_mpp))
    image = cv2.resize(image, (n, n), interpolation=cv2.INTER_AREA if n < image.shape[0] else cv2.INTER_LINEAR)
    out = np.zeros((views.sat_px, views.sat_px, 3), np.uint8)
    src, dst = max(0, (n - views.sat_px) // 2), max(0, (views.sat_px - n) // 2)
    m = min(n, views.sat_px)
    out[dst:dst + m, dst:dst + m] = image[src:src + m, src:src + m]
    return out


@dataclass
class Samples:
    """One split of one area: satellite tiles (cached in memory) and BEVs from the packed array."""

    rows: pd.DataFrame
    bev: np.ndarray
    bev_row: dict
    views: Views

    def __post_init__(self):
        self._tiles: dict[str, np.ndarray] = {}
        self._keys = tile_keys(self.rows)                   # KITTI: one aligned crop per row
        self._disc = bev_disc(self.bev.shape[1])[..., None].astype(np.uint8)     # (S, S, 1)
        missing = [p for p in self.rows.pano_path if p not in self.bev_row]
        if missing:
            raise FormatError(f"{len(missing)} panoramas have no pre-rendered BEV (first: {missing[0]}); "
                             "rerun render-bev on this index")

    def __len__(self) -> int:
        return len(self.rows)

    def _tile(self, i: int) -> np.ndarray:
        key = self._keys[i]
        if key not in self._tiles:
            row = self.rows.iloc[i]
            self._tiles[key] = resample_tile(read_sample_tile(row), row.mpp, self.views)
        return self._tiles[key]

    def batch(self, idx: np.ndarray, yaws: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, S, 3) uint8 satellite and (B, s, s, 3) rotated BEV images for indices and yaws."""
        sats, bevs = [], []
        for i, yaw in zip(idx, yaws):
            row = self.rows.iloc[int(i)]
            sats.append(self._tile(int(i)))
            bev = rotate_bev(np.asarray(self.bev[self.bev_row[row.pano_path]]), yaw) * self._disc
            if bev.shape[0] != self.views.bev_px:
                bev = cv2.resize(bev, (self.views.bev_px, self.views.bev_px), interpolation=cv2.INTER_AREA)
            bevs.append(bev)
        return torch.from_numpy(np.stack(sats)), torch.from_numpy(np.stack(bevs))


def fixed_yaws(n: int, seed: int, stream: int, range_deg: float) -> np.ndarray:
    return np.random.default_rng([seed, stream]).uniform(-range_deg, range_deg, size=n)


@torch.no_grad()
def predict(model: torch.nn.Module, data: Samples, yaws: np.ndarray, bins: AngleBins, batch_size: int,
            place: Placement = Placement.cpu()) -> np.ndarray:
    """(N,) predicted yaws of every sample; data-parallel, each rank predicts its share."""
    model.eval()
    rows = distributed.world().shard(len(data))
    out = [np.zeros(0)]
    for start in range(rows.start, rows.stop, batch_size):
        idx = np.arange(start, min(start + batch_size, rows.stop))
        sat, bev = data.batch(idx, yaws[idx])
        with place.autocast():
            logits = model(place.tensor(sat), place.tensor(bev))
        out.append(bins.decode(logits.float().cpu()).numpy())
    return np.concatenate(distributed.gather_objects(np.concatenate(out)))


def train_area(area: str, index: pd.DataFrame, bev: np.ndarray, bev_row: dict, p: OrientationParams,
               bev_params: BevParams, folder: Path, place: Placement, scored: EvaluateParams) -> dict:
    """Train on the area's train split, select on val, evaluate on the scored test subset; returns
    test metrics. Data-parallel, only rank 0 writes (checkpoints, CSVs)."""
    views = Views.of(p, bev_params)
    splits = {s: Samples(index[(index.area == area) & (index.split == s)].reset_index(drop=True), bev, bev_row,
                         views) for s in ("train", "val", "test")}
    for s, data in splits.items():
        if len(data) == 0:
            raise FormatError(f"the index has no {area}-area {s} samples")
    bins = AngleBins(p.range_deg, p.bins, p.label_sigma_bins)
    world = distributed.world()
    torch.manual_seed(p.seed)
    model = prepare(place.model(build_net(p, views.bev_px)), world)
    optimizer = adamw(model.parameters(), p.lr, p.weight_decay)
    n_train = len(splits["train"]) if p.max_train_samples == 0 else min(p.max_train_samples, len(splits["train"]))
    steps = -(-n_train // p.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=p.epochs * steps)
    samples = "\n".join(f"{s}:{path}" for s in ("train", "val") for path in splits[s].rows.pano_path)
    ckpt = Checkpointer(folder, {"area": area, "orientation": p.model_dump(), "bev": bev_params.model_dump(),
                                 "samples": hashlib.sha256(samples.encode()).hexdigest(),
                                 **({"bf16": True} if place.bf16 else {}),
                                 **({"channels_last": True} if place.channels_last else {})})
    val_yaws = fixed_yaws(len(splits["val"]), p.seed, VAL_STREAM, p.range_deg)
    history, start_epoch, best = [], 0, float("inf")
    state = ckpt.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        log.info("orientation[%s]: resuming after epoch %d", area, state["epoch"] + 1)

    for epoch in range(start_epoch, p.epochs):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([p.seed, epoch])
        order = rng.permutation(len(splits["train"]))[:n_train]
        yaws = rng.uniform(-p.range_deg, p.range_deg, size=n_train)
        total = 0.0
        where = f"orientation[{area}] epoch {epoch + 1}"
        with memory_hint("orientation.batch_size", p.batch_size):
            for s in tqdm(range(steps), desc=where, leave=False, disable=None):
                idx, yaw = order[s * p.batch_size:(s + 1) * p.batch_size], yaws[s * p.batch_size:(s + 1) * p.batch_size]
                rows, share = world_rows(len(idx), world)
                if not share:
                    continue
                sat, bev_img = splits["train"].batch(idx[rows], yaw[rows])
                labels = place.tensor(bins.soft_labels(torch.from_numpy(yaw[rows])))        # (b, bins)
                with place.autocast():
                    logits = model(place.tensor(sat), place.tensor(bev_img)).float()
                loss = -(labels * logits.log_softmax(dim=1)).sum(dim=1).mean()
                total += optimizer_step(loss, share, optimizer, list(model.parameters()), p.grad_clip,
                                        f"{where}, step {s}", ckpt) * len(idx)
                scheduler.step()
        val = orientation_metrics(predict(model, splits["val"], val_yaws, bins, p.batch_size, place), val_yaws)
        history.append({"epoch": epoch + 1, "train_loss": total / n_train, "val_mean_deg": val["mean_deg"],
                        "val_median_deg": val["median_deg"], "lr": scheduler.get_last_lr()[0],
                        "seconds": time.perf_counter() - t0})
        improved, best = val["mean_deg"] < best, min(best, val["mean_deg"])
        if world.is_main:
            log.info("orientation[%s] epoch %d/%d: loss %.4f, val mean %.2f deg, median %.2f deg (%.0fs)", area,
                     epoch + 1, p.epochs, history[-1]["train_loss"], val["mean_deg"], val["median_deg"],
                     history[-1]["seconds"])
            if improved:
                ckpt.save("best", {"model": model.state_dict(), "epoch": epoch, "val": val})
            ckpt.save("last", {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "epoch": epoch, "best": best,
                               "history": history})
        world.barrier()

    best_state = ckpt.load("best")
    model.load_state_dict(best_state["model"])
    test_yaws = fixed_yaws(len(splits["test"]), p.seed, TEST_STREAM, p.range_deg)     # one per test panorama
    rows = seeded_subset(splits["test"].rows.assign(true_yaw_deg=test_yaws), scored.max_samples, scored.seed)
    test, test_yaws = Samples(rows, bev, bev_row, views), rows.true_yaw_deg.to_numpy()
    pred = predict(model, test, test_yaws, bins, p.batch_size, place)
    if world.is_main:
        _write_csv(pd.DataFrame({"pano_path": test.rows.pano_path, "true_yaw_deg": test_yaws, "pred_yaw_deg": pred}),
                   folder / "test_predictions.csv")
        _write_csv(pd.DataFrame(history), folder / "history.csv")
    return {**orientation_metrics(pred, test_yaws), "best_epoch": best_state["epoch"] + 1,
            "uniform_guess_mean_deg": p.range_deg / 2}


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as tmp:
        table.to_csv(tmp, index=False)


def train_orientation(index_path: Path, bev_dir: Path, out: Path, metrics_path: Path, p: OrientationParams,
                      bev_params: BevParams, place: Placement = Placement.cpu(),
                      scored: EvaluateParams = EvaluateParams(max_samples=0, seed=0)) -> dict:
    from geodistill.data.bev import load_bev
    if p.threads:
        torch.set_num_threads(p.threads)
    deterministic(place.device)
    world = distributed.join(place.device.type)
    index = read_index(index_path)
    bev, bev_row = load_bev(bev_dir)
    metrics = {area: train_area(area, index, bev, bev_row, p, bev_params, out / area, place, scored)
               for area in p.areas}
    if world.is_main:
        write_json(metrics_path, metrics)
    return metrics


def build_net(p: OrientationParams, bev_px: int) -> torch.nn.Module:
    """build_orientation_net; params it cannot be built from (an unknown timm backbone, a feature
    level it lacks) raise ConfigError naming the `orientation` section."""
    try:
        return build_orientation_net(p, bev_px)
    except ValueError as e:
        raise ConfigError(f"orientation: {e}") from None
