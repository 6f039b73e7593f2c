"""Evaluate a localization run on its area's test split (docs/paper-reference.md#metrics).

    geodistill evaluate --config params.yaml --run data/baselines/g2s_vgg-cross --index data/index.csv \
        --orientation data/orientation/cross/test_predictions.csv \
        --predictions data/eval/g2s_vgg-cross --metrics reports/results/g2s_vgg-cross.json

A run folder holds one seed<s>/ folder per training seed (report.seeds). A baseline's holds
best.pt: each seed is scored (evaluate, predictions/seed<s>.csv) and the metrics JSON holds their
mean, with the standard deviation and each seed's metrics when there are several
(metrics.across_seeds). A distillation run's holds teacher.pt and student.pt: both models are
scored (predictions/<model>/seed<s>.csv) and the metrics JSON holds one such block per model,
{"method", "area", "teacher": {...}, "student": {...}}. The test samples are decoded once for
every seed and model of the run.

- 2-DoF: the yaw is known (the panorama as indexed, north at its centre column);
- 3-DoF: each test panorama is turned by the orientation stage's fixed test yaw and turned back
  by that stage's prediction, so the localizer sees the residual yaw error;
- 3-DoF own (methods that predict yaw, e.g. CCVPE): each test panorama is turned by the same
  fixed test yaw and the method predicts position and yaw itself;
- tile centre: the trivial reference that always predicts the tile's centre pixel (S/2, S/2).
With `max_samples` > 0 (params `evaluate`), every run is scored on the same seeded subset of
the area's test split, so two runs' per-sample CSVs pair row by row.
`headline_3dof` names the block the paper's tables read (the method's `orientation_source`).
Metrics: mean, median, share within 1/3/5 m, overall and per city; the 3-DoF block also holds
the orientation errors. Per-sample predictions go to a CSV for figures. On KITTI (pinhole rows)
the 2-DoF and 3-DoF blocks add `lateral` and `longitudinal`: the error across and along the
camera's heading (data/kitti.py lateral_longitudinal), as the KITTI protocol reports them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd

from geodistill.config import TrainParams
from geodistill.data.index import read_index, read_table, seeded_subset
from geodistill.errors import FormatError
from geodistill.io import atomic_file, write_json
from geodistill.data.kitti import lateral_longitudinal
from geodistill.metrics import across_seeds, localization_metrics, localization_report, orientation_metrics
from geodistill.training.baseline import load_checkpoint, predict, read_checkpoint
from geodistill.training.checkpoint import DISTILLED_MODELS, CheckpointError, seed_dir
from geodistill.training.device import Placement
from geodistill.training.samples import LocalizationSamples
from geodistill.training.seeds import run_seeds

RUN_NAME = re.compile(r"(?:.+-)?(?P<method>[a-z][a-z0-9_]*)-(?P<area>same|cross)")   # dvc.yaml's run folders


def residual_turns(test: pd.DataFrame, orientation_csv: Path, area: str = "") -> tuple[np.ndarray, np.ndarray, dict]:
    """Per test sample, the turn left after undoing the predicted yaw (true - predicted), the
    true test yaw, and the orientation metrics over these samples. FormatError naming the file
    when it lacks a test panorama of the area or a yaw is not a finite number."""
    orient = read_table(orientation_csv, ("pano_path", "true_yaw_deg", "pred_yaw_deg"), "orientation predictions",
                        "the test_predictions.csv of `geodistill train-orientation`")
    orient = orient.drop_duplicates("pano_path").set_index("pano_path")
    missing = test.pano_path[~test.pano_path.isin(orient.index)]
    if len(missing):
        raise FormatError(f"{orientation_csv}: no yaw prediction for {len(missing)} of the {len(test)} {area}-area "
                          f"test panoramas (first: {missing.iloc[0]}); pass the orientation stage's "
                          f"{area}/test_predictions.csv made from this index")
    yaws = orient.loc[test.pano_path, ["true_yaw_deg", "pred_yaw_deg"]].apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(yaws.to_numpy(np.float64))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise FormatError(f"{orientation_csv}: {yaws.columns[column]} of {yaws.index[row]} is "
                          f"{orient.loc[yaws.index[row], yaws.columns[column]]}, not a finite number")
    true, pred = yaws.true_yaw_deg.to_numpy(), yaws.pred_yaw_deg.to_numpy()
    return true - pred, true, orientation_metrics(pred, true)


@dataclass
class TestSplit:
    """The scored test samples of one area, their orientation-stage turns, and the samples at one
    method's input sizes (decoded on first use, then shared by every checkpoint scored on them)."""
    rows: pd.DataFrame          # the (subset of the) area's test rows, in scoring order
    turns: np.ndarray           # (N,) degrees left after undoing the predicted yaw (true - predicted)
    true_yaw: np.ndarray        # (N,) the orientation stage's fixed test yaw
    orientation: dict           # orientation metrics over these samples
    inputs: dict = field(default_factory=dict)   # (pano_size, sat_size) -> LocalizationSamples

    @classmethod
    def read(cls, index_path: Path, area: str, orientation_csv: Path, max_samples: int = 0,
             seed: int = 0) -> "TestSplit":
        """The area's test split of the sample table (a subset of max_samples > 0 drawn with `seed`,
        data/index.py seeded_subset) and the orientation stage's predictions for it."""
        index = read_index(index_path)
        test = index[(index.area == area) & (index.split == "test")].reset_index(drop=True)
        if test.empty:
            raise FormatError(f"{index_path}: no {area}-area test samples")
        test = seeded_subset(test, max_samples, seed)
        return cls(test, *residual_turns(test, orientation_csv, area))

    def samples(self, p: dict, desc: str) -> LocalizationSamples:
        key = (tuple(p["pano_size"]), p["sat_size"])
        if key not in self.inputs:
            self.inputs[key] = LocalizationSamples(self.rows, p["pano_size"], p["sat_size"], desc=desc)
        return self.inputs[key]


def evaluate(checkpoint: Path, index_path: Path, orientation_csv: Path, predictions: Path,
             metrics_path: Path | None, place: Placement = Placement.cpu(), max_samples: int = 0, seed: int = 0,
             batch_size: int = 0, three_dof: bool = True) -> dict:
    """Score one checkpoint on its area's test split: write the per-sample predictions CSV and
    (unless None) the metrics JSON; returns the metrics. max_samples > 0 scores a subset of the
    test split drawn with `seed` (data/index.py seeded_subset); batch_size: samples per forward
    pass (0 = the method's training batch); three_dof: also with unknown orientation."""
    area = read_checkpoint(checkpoint, mmap=True)[0]["area"]
    metrics = score(checkpoint, TestSplit.read(index_path, area, orientation_csv, max_samples, seed), predictions,
                    place, batch_size, three_dof)
    if metrics_path is not None:
        write_json(metrics_path, metrics)
    return metrics


def score(checkpoint: Path, split: TestSplit, predictions: Path, place: Placement = Placement.cpu(),
          batch_size: int = 0, three_dof: bool = True) -> dict:
    """Score `checkpoint` on the test split: write its per-sample predictions CSV and return its
    metrics. batch_size: samples per forward pass (0 = the method's training batch); three_dof:
    also with unknown orientation (the `3dof` and, for methods that predict yaw, `3dof_own` blocks)."""
    model, state = load_checkpoint(checkpoint)
    model = place.model(model)
    p, area, test = state["method_params"], state["area"], split.rows
    batch_size = batch_size or p["batch_size"]
    turns, true_yaw, orient = split.turns, split.true_yaw, split.orientation
    data = split.samples(p, f"{state['method']}-{area} test")
    known = predict(model, data, batch_size, place=place)
    if not np.isfinite(known.error_m).all():
        raise FloatingPointError(f"{checkpoint}: {int((~np.isfinite(known.error_m)).sum())} of {len(known)} test "
                                 "predictions are not finite (a diverged model?)")
    centre = np.hypot(test.gt_row - test.sat_size / 2, test.gt_col - test.sat_size / 2) * test.mpp
    table = known.assign(error_centre_m=centre)
    metrics = {"method": state["method"], "area": area, "checkpoint_epoch": int(state["epoch"]) + 1,
               "2dof": localization_report(table, "error_m"), "tile_centre": localization_report(table, "error_centre_m")}
    if three_dof:
        unknown = predict(model, data, batch_size, roll_deg=turns, place=place)
        table = table.assign(error_3dof_m=unknown.error_m, pred_row_3dof=unknown.pred_row,
                             pred_col_3dof=unknown.pred_col, yaw_residual_deg=turns)
        metrics |= {"3dof": {**localization_report(table, "error_3dof_m"), "orientation": orient},
                    "headline_3dof": "3dof"}
        if "pred_yaw_deg" in known:
            own = predict(model, data, batch_size, roll_deg=true_yaw, place=place)
            table = table.assign(error_3dof_own_m=own.error_m, true_yaw_deg=true_yaw,
                                 pred_yaw_own_deg=own.pred_yaw_deg)
            metrics["3dof_own"] = {**localization_report(table, "error_3dof_own_m"),
                                   "orientation": orientation_metrics(own.pred_yaw_deg, true_yaw)}
            if p.get("orientation_source") == "own":
                metrics["headline_3dof"] = "3dof_own"
    if data.pinhole:
        for block, suffix in (("2dof", ""), ("3dof", "_3dof")):
            if block not in metrics:                                   # 3dof: only when three_dof
                continue
            pred = table[[f"pred_row{suffix}", f"pred_col{suffix}"]].to_numpy()
            lateral, longitudinal = lateral_longitudinal(pred, table[["gt_row", "gt_col"]], test.yaw_deg, test.mpp)
            table = table.assign(**{f"lateral{suffix}_m": lateral, f"longitudinal{suffix}_m": longitudinal})
            metrics[block] |= {"lateral": localization_metrics(lateral), "longitudinal": localization_metrics(longitudinal)}
    with atomic_file(predictions) as tmp:
        table.to_csv(tmp, index=False)
    return metrics


def run_models(run_dir: Path, seed: int) -> list[str]:
    """The checkpoints of one seed of a run, by name: ["best"] for a baseline run,
    ["teacher", "student"] for a distillation run (checkpoint.DISTILLED_MODELS)."""
    folder = seed_dir(run_dir, seed)
    if (folder / "best.pt").is_file():
        return ["best"]
    if all((folder / f"{m}.pt").is_file() for m in DISTILLED_MODELS):
        return list(DISTILLED_MODELS)
    raise CheckpointError(f"{folder}: no best.pt (a train-baseline run) nor {' and '.join(f'{m}.pt' for m in DISTILLED_MODELS)} "
                          f"(a distill run): train it first")


def evaluate_seeds(run_dir: Path, seeds: list[int], index_path: Path, orientation_csv: Path, predictions_dir: Path,
                   metrics_path: Path, place: Placement = Placement.cpu(), max_samples: int = 0, seed: int = 0,
                   batch_size: int = 0, three_dof: tuple[str, ...] = ("baselines", "distill"),
                   parallel: TrainParams | None = None) -> dict:
    """evaluate every checkpoint of <run_dir>/seed<s>/ for every training seed s (run_models) on the
    same test samples (`seed` draws the subset), then write the metrics of all seeds together
    (across_seeds) to `metrics_path`, one block per model of a distillation run; returns them.
    three_dof: the kinds of run (baselines, distill) also scored with unknown orientation;
    parallel: train params whose parallel_seeds and threads score checkpoints side by side."""
    models = run_models(run_dir, seeds[0])
    area = run_area(run_dir, seeds, models)
    with_yaw = ("baselines" if models == ["best"] else "distill") in three_dof
    one = partial(_score_seed, Path(run_dir), Path(predictions_dir), (Path(index_path), area, Path(orientation_csv),
                                                                       max_samples, seed), place, batch_size, with_yaw)
    keys = [(model, s) for model in models for s in seeds]
    try:
        scores = run_seeds(one, keys, parallel)
    finally:
        _test_split.cache_clear()              # the next run may read other files under the same names
    blocks = {model: across_seeds({str(s): scores[(model, s)] for s in seeds}) for model in models}
    if models == ["best"]:
        metrics = blocks["best"]
    else:
        first = blocks[models[0]]
        metrics = {"method": first["method"], "area": first["area"], "seeds": first["seeds"], **blocks}
    write_json(metrics_path, metrics)
    return metrics


def run_area(run_dir: Path, seeds: list[int], models: list[str]) -> str:
    """The area of a run, once every checkpoint of it is found readable (read_checkpoint) and of
    one method and area: the run folder's, when its name follows dvc.yaml's (<method>-<area>, a
    distillation's <variant>-<method>-<area>), else the first checkpoint's."""
    named = RUN_NAME.fullmatch(Path(run_dir).name)
    want, source = ((named["method"], named["area"]), "the name of its run folder") if named else (None, "")
    for model in models:
        for s in seeds:
            path = seed_dir(run_dir, s) / f"{model}.pt"
            state = read_checkpoint(path, mmap=True)[0]
            got = (state["method"], state["area"])
            if want is not None and got != want:
                raise CheckpointError(f"{path} holds a {'-'.join(got)} model, not {'-'.join(want)} ({source}); "
                                      "score each run from its own folder")
            if want is None:
                want, source = got, f"as {path} holds"
    return want[1]


def headline_metrics(metrics: dict, distilled_model: str = "teacher") -> dict[str, float]:
    """The numbers `dvc exp show` lists for a run: 2-DoF mean and median error (m) and the share
    within 1 m, over the seeds; of `distilled_model` (teacher | student) for a distillation run."""
    block = metrics.get(distilled_model, metrics)["2dof"]
    return {"mean_m": round(block["mean_m"], 4), "median_m": round(block["median_m"], 4),
            "within_1m": round(block["within_1_m"], 4)}


@lru_cache(maxsize=2)
def _test_split(index_path: Path, area: str, orientation_csv: Path, max_samples: int, seed: int) -> TestSplit:
    """The test split, read once per process: every checkpoint a process scores shares its decoded images."""
    return TestSplit.read(index_path, area, orientation_csv, max_samples, seed)


def _score_seed(run_dir: Path, predictions_dir: Path, split_key: tuple, place: Placement, batch_size: int,
                three_dof: bool, key: tuple[str, int]) -> dict:
    """score() of one (model, seed) of a run: <predictions_dir>/seed<s>.csv, or <model>/seed<s>.csv."""
    model, s = key
    out = predictions_dir if model == "best" else predictions_dir / model
    return score(seed_dir(run_dir, s) / f"{model}.pt", _test_split(*split_key), out / f"seed{s}.csv", place,
                 batch_size, three_dof)
