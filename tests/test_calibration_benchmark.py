"""benchmarks/calibration.py's pure parts: grid overrides and the calibration targets."""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from calibration import VIGOR, override, with_targets  # noqa: E402

from geodistill.config import parse_params  # noqa: E402


def test_every_grid_setting_is_valid_params():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    grid = yaml.safe_load((REPO / "benchmarks" / "calibration_grid.yaml").read_text())
    assert "default" in grid
    for name, keys in grid.items():
        parse_params(override(raw, keys or {}), f"grid {name}")


def test_overrides_set_list_items_by_index_or_all_and_name_unknown_keys():
    raw = {"synth": {"cities": [{"a": 1, "b": 2}, {"a": 3, "b": 4}], "x": {"y": 0}}}
    out = override(raw, {"synth.cities.*.a": 9, "synth.cities.1.b": 7, "synth.x.y": 5})
    assert out == {"synth": {"cities": [{"a": 9, "b": 2}, {"a": 9, "b": 7}], "x": {"y": 5}}}
    assert raw["synth"]["cities"][0]["a"] == 1                            # the input is not changed
    with pytest.raises(SystemExit, match="'cites' is not a params key"):
        override(raw, {"synth.cites.*.a": 1})


def test_targets_need_all_three_and_vigor_gets_no_verdict():
    rows = [VIGOR,
            dict(setting="meets", cross_mean_m=3.0, cross_median_m=1.2, same_mean_m=2.9, same_median_m=1.0, cross_within_1_m_pct=40.0),
            dict(setting="ratio", cross_mean_m=2.9, cross_median_m=1.2, same_mean_m=2.0, same_median_m=1.0, cross_within_1_m_pct=40.0),
            dict(setting="same", cross_mean_m=3.0, cross_median_m=1.2, same_mean_m=3.1, same_median_m=1.0, cross_within_1_m_pct=40.0),
            dict(setting="recall", cross_mean_m=3.0, cross_median_m=1.0, same_mean_m=2.0, same_median_m=1.0, cross_within_1_m_pct=50.0)]
    table = with_targets(pd.DataFrame(rows)).set_index("setting")
    assert table.cross_ratio["meets"] == pytest.approx(2.5)
    assert table.meets_targets.to_dict() == {VIGOR["setting"]: "", "meets": "yes", "ratio": "no", "same": "no",
                                             "recall": "no"}
