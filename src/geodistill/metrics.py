"""Evaluation metrics (docs/paper-reference.md#metrics)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from geodistill.geometry import angle_error_deg


def orientation_metrics(pred_deg, true_deg) -> dict:
    """Mean / median yaw error with wrap-around, and the share within 1, 3 and 5 degrees."""
    err = angle_error_deg(np.asarray(pred_deg, float), np.asarray(true_deg, float))
    return {"n": int(err.size), "mean_deg": float(err.mean()), "median_deg": float(np.median(err)),
            **{f"within_{t}_deg": float((err <= t).mean()) for t in (1, 3, 5)}}


def localization_metrics(error_m) -> dict:
    """Mean / median position error in metres and the share within 1, 3 and 5 m."""
    err = np.asarray(error_m, float)
    return {"n": int(err.size), "mean_m": float(err.mean()), "median_m": float(np.median(err)),
            **{f"within_{t}_m": float((err <= t).mean()) for t in (1, 3, 5)}}


def localization_report(table: pd.DataFrame, column: str = "error_m") -> dict:
    """localization_metrics over all rows and per city (table has `city` and the error column)."""
    return {**localization_metrics(table[column]),
            "per_city": {city: localization_metrics(part[column]) for city, part in table.groupby("city", sort=True)}}


def across_seeds(per_seed: dict[str, dict]) -> dict:
    """One metrics dict from the same metrics of several training seeds (seed -> metrics): every
    number is the mean over the seeds (equal counts stay as they are), `seeds` lists them, and
    with two seeds or more `std` holds the same tree of sample standard deviations (ddof 1) and
    `per_seed` the inputs. Text (method, area) must agree across the seeds.

        across_seeds({"1": {"2dof": {"mean_m": 2.0}}, "2": {"2dof": {"mean_m": 4.0}}})
        # {"2dof": {"mean_m": 3.0}, "seeds": [1, 2], "std": {"2dof": {"mean_m": 1.414...}}, "per_seed": ...}
    """
    if not per_seed:
        raise ValueError("across_seeds needs the metrics of at least one seed")

    def combine(values: list, where: str, spread: bool):
        first = values[0]
        if isinstance(first, dict):
            if any(not isinstance(v, dict) or v.keys() != first.keys() for v in values):
                raise ValueError(f"metrics {where or 'top level'}: the seeds do not have the same keys")
            parts = {k: combine([v[k] for v in values], f"{where}.{k}".lstrip("."), spread) for k in first}
            return {k: v for k, v in parts.items() if v is not None}
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            x = np.asarray(values, float)
            if spread:
                return float(x.std(ddof=1))
            return first if (x == x[0]).all() else float(x.mean())     # counts stay whole
        if any(v != first for v in values):
            raise ValueError(f"metrics {where}: the seeds disagree ({values})")
        return None if spread else first                               # text has no spread

    runs = list(per_seed.values())
    merged = combine(runs, "", spread=False)
    merged["seeds"] = [int(s) for s in per_seed]
    if len(runs) > 1:
        merged["std"] = combine(runs, "", spread=True)
        merged["per_seed"] = dict(per_seed)
    return merged
