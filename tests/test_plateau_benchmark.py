"""benchmarks/plateau.py's pure parts: the scaled budget and the rows of the plateau table."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from plateau import factor_rows, scaled  # noqa: E402

RAW = yaml.safe_load((REPO / "params.yaml").read_text())


def test_only_the_method_epochs_scale_and_the_raw_params_stay_as_they_were():
    epochs = RAW["baselines"]["g2s_vgg"]["epochs"]
    doubled = scaled(RAW, "g2s_vgg", 2, "params.yaml")
    assert doubled.baselines["g2s_vgg"].epochs == 2 * epochs
    assert RAW["baselines"]["g2s_vgg"]["epochs"] == epochs
    assert doubled.baselines["g2s_dino"] == scaled(RAW, "g2s_vgg", 1, "params.yaml").baselines["g2s_dino"]
    assert scaled(RAW, "g2s_vgg", 0.01, "params.yaml").baselines["g2s_vgg"].epochs == 1


def test_a_row_per_seed_and_one_over_all_with_changes_intervals_and_the_teachers_verdict():
    params = scaled(RAW, "g2s_vgg", 1, "params.yaml")
    assert params.report.seeds == [2023, 2024] and params.report.distilled_model == "teacher"
    base = np.array([[2.0, 2.0, 2.0, 2.0], [4.0, 4.0, 4.0, 4.0]])     # (seeds, N)
    errors = {"baseline": base, "teacher": base * 0.99, "student": base * np.array([[1.2], [0.6]])}
    rows = factor_rows(errors, 1.0, params, "g2s_vgg")
    assert [r["seeds"] for r in rows] == ["2023", "2024", "all"] and rows[0]["budget"] == "1x"
    assert [r["baseline_mean_m"] for r in rows] == pytest.approx([2.0, 4.0, 3.0])
    assert [r["teacher_change_pct"] for r in rows] == pytest.approx([-1.0, -1.0, -1.0])
    assert [r["student_change_pct"] for r in rows] == pytest.approx([20.0, -40.0, -20.0])
    # every panorama of a seed changes alike: the per-seed intervals have no width
    assert (rows[0]["student_ci_low_change_pct"], rows[0]["student_ci_high_change_pct"]) == pytest.approx((20.0, 20.0))
    assert [r["plateau"] for r in rows] == ["holds"] * 3               # the teacher's -1 % is within +-5 %
    assert rows[2]["baseline_epochs"] == RAW["baselines"]["g2s_vgg"]["epochs"] and rows[2]["val_samples"] == 4
