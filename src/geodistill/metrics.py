"""Evaluation metrics (REFERENCE.md §7)."""
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
