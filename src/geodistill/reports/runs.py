"""Which runs each table and figure reads, derived from params (never from run names), and the
readers of their outputs.

    geodistill tables --config params.yaml --results reports/results --out reports/tables

    baseline_run("g2s_vgg", "cross")                          # "g2s_vgg-cross"
    geodistill_variant(params, "g2s_vgg", "cross")            # "geodistill-g2s_vgg-cross" or None
    ablations(params, "g2s_vgg", "cross", {"occlusion"})      # variants that change only the occlusion
    load_metrics(Path("reports/results"), "g2s_vgg-cross")    # the evaluate stage's JSON
    load_errors(Path("data/eval"), "g2s_vgg-cross", [2023])   # seed -> per-sample errors
    distilled_model(params, "geodistill-g2s_vgg-cross")       # "teacher": the model its claims read

A baseline run is an entry `<method>-<area>` of `params.runs`. The
GeoDistill run of a method and area is the variant whose mode, occlusion and target equal
`distill.defaults` (its other knobs, e.g. epochs_factor, may be the method's own). An ablation
variant equals that GeoDistill variant (or, if the method and area have none, the defaults) in
every knob except the ablated ones. A missing output raises FileNotFoundError naming the file:
a report never drops a row silently.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from geodistill.config import ConfigError, DistillVariant, Params

AREAS = ("cross", "same")                          # the paper's headline protocol first
GEODISTILL_KNOBS = ("mode", "occlusion", "target")


class ReportError(ValueError):
    """An output that exists but does not belong where the report reads it."""


def baseline_run(method: str, area: str) -> str:
    return f"{method}-{area}"


def run_methods(params: Params) -> list[str]:
    """The methods that have a baseline run in `params.runs`, in its order."""
    return list(dict.fromkeys(r.method for r in params.runs.values()))


def run_pairs(params: Params) -> list[tuple[str, str]]:
    """(method, area) of every baseline run: per method of run_methods, cross-area first."""
    return [(m, a) for m in run_methods(params) for a in AREAS if baseline_run(m, a) in params.runs]


def reference_variant(params: Params, method: str, area: str) -> DistillVariant:
    """`distill.defaults` for one method and area, validated as a variant."""
    try:
        return DistillVariant.model_validate({**params.distill.defaults, "method": method, "area": area})
    except ValidationError as e:
        raise ConfigError(f"distill.defaults must set every variant knob except method and area for the "
                          f"reports ({e.error_count()} problems, first: {e.errors()[0]['loc']}: "
                          f"{e.errors()[0]['msg']})") from None


def variants_of(params: Params, method: str, area: str) -> dict[str, DistillVariant]:
    return {n: v for n, v in params.distill.variants.items() if v.method == method and v.area == area}


def geodistill_variant(params: Params, method: str, area: str) -> str | None:
    """The variant that is GeoDistill as the paper runs it for this method and area, or None."""
    ref = reference_variant(params, method, area)
    found = {n: v for n, v in variants_of(params, method, area).items()
             if all(getattr(v, k) == getattr(ref, k) for k in GEODISTILL_KNOBS)}
    if len(found) > 1:
        exact = [n for n, v in found.items() if v == ref]
        if len(exact) != 1:
            raise ConfigError(f"distill.variants: {', '.join(found)} all run GeoDistill's default mode, "
                              f"occlusion and target on {method}-{area}; the reports need exactly one")
        return exact[0]
    return next(iter(found), None)


def geodistill_or_reference(params: Params, method: str, area: str) -> DistillVariant:
    name = geodistill_variant(params, method, area)
    return params.distill.variants[name] if name else reference_variant(params, method, area)


def ablations(params: Params, method: str, area: str, knobs: set[str]) -> dict[str, DistillVariant]:
    """Variants of this method and area that differ from its GeoDistill variant (or the defaults)
    in some of `knobs` and in nothing else, in params order."""
    base = geodistill_or_reference(params, method, area)
    same_rest = lambda v: v.model_dump(exclude=knobs) == base.model_dump(exclude=knobs)
    return {n: v for n, v in variants_of(params, method, area).items() if v != base and same_rest(v)}


def ablation_groups(params: Params, knob: str, keep) -> list[tuple[str, str, dict]]:
    """(method, area, {run: variant}) for each method and area with an ablation of `knob` (variants
    that pass `keep`): its GeoDistill run first, then the ablation variants in params order."""
    groups = []
    for method, area in run_pairs(params):
        found = {n: v for n, v in ablations(params, method, area, {knob}).items() if keep(v)}
        if found:
            name = geodistill_variant(params, method, area)
            groups.append((method, area, ({name: params.distill.variants[name]} if name else {}) | found))
    return groups


def describe(section: BaseModel) -> str:
    """`key=value, ...` of an occlusion or target section, without its kind."""
    def show(value) -> str:
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(show(x) for x in value) + "]"
        return f"{value:g}" if isinstance(value, float) else str(value)
    return ", ".join(f"{k}={show(v)}" for k, v in section.model_dump().items() if k != "kind")


def require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found (run the stage that writes it; "
                                f"the reports never leave a configured run out)")
    return path


def load_metrics(metrics_dir: Path, run: str, method: str | None = None, area: str | None = None) -> dict:
    """The evaluate stage's JSON of one run, checked to be of the expected method and area."""
    path = require(Path(metrics_dir) / f"{run}.json", f"metrics of run {run!r}")
    metrics = json.loads(path.read_text())
    for key, expected in (("method", method), ("area", area)):
        if expected is not None and metrics.get(key) != expected:
            raise ReportError(f"{path}: {key} is {metrics.get(key)!r}, expected {expected!r} for run {run!r}")
    return metrics


def distilled_model(params: Params, run: str) -> str | None:
    """Which model of `run` the claims and figures read: report.distilled_model (teacher or student)
    for a distillation variant, None for a baseline run (it has one)."""
    return params.report.distilled_model if run in params.distill.variants else None


def load_predictions(eval_dir: Path, run: str, seeds: list[int], columns: tuple[str, ...],
                     model: str | None = None) -> dict[int, pd.DataFrame]:
    """Training seed -> the `columns` of one run's per-sample predictions (the evaluate stage's
    <eval_dir>/<run>/seed<s>.csv; a distillation run's `model`: <eval_dir>/<run>/<model>/seed<s>.csv),
    checked to have them."""
    tables, folder = {}, Path(eval_dir) / run / (model or "")
    for seed in seeds:
        path = require(folder / f"seed{seed}.csv", f"per-sample predictions of run {run!r}{f' ({model})' if model else ''}, "
                                                   f"seed {seed}")
        table = pd.read_csv(path, usecols=lambda c: c in columns)
        missing = [c for c in columns if c not in table]
        if missing:
            raise ReportError(f"{path}: no {', '.join(missing)} column")
        tables[seed] = table[list(columns)]
    return tables


def load_errors(eval_dir: Path, run: str, seeds: list[int], model: str | None = None) -> dict[int, np.ndarray]:
    """Training seed -> (N,) per-sample 2-DoF errors in metres of one run (of its `model` for a
    distillation run); every seed is scored on the same test samples."""
    tables = load_predictions(eval_dir, run, seeds, ("error_m",), model)
    return {seed: t.error_m.to_numpy(float) for seed, t in tables.items()}


def load_history(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A training run's history.csv, checked for the columns a figure plots."""
    table = pd.read_csv(require(Path(path), "training history"))
    missing = [c for c in ("epoch", *columns) if c not in table]
    if missing:
        raise ReportError(f"{path}: missing columns {', '.join(missing)}")
    return table
