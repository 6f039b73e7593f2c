"""Evaluation metrics (REFERENCE.md §7)."""
from __future__ import annotations

import numpy as np

from geodistill.geometry import angle_error_deg


def orientation_metrics(pred_deg, true_deg) -> dict:
    """Mean / median yaw error with wrap-around, and the share within 1, 3 and 5 degrees."""
    err = angle_error_deg(np.asarray(pred_deg, float), np.asarray(true_deg, float))
    return {"n": int(err.size), "mean_deg": float(err.mean()), "median_deg": float(np.median(err)),
            **{f"within_{t}_deg": float((err <= t).mean()) for t in (1, 3, 5)}}
