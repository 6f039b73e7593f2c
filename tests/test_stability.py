"""Verdict agreement between two claims tables (reports/stability.py, `geodistill stability`)."""
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from geodistill.reports.stability import (StabilityError, agreement, archived_checks, compare_verdicts,
                                          read_claims, verdicts_markdown)
from stages.cli import app
from conftest import REPO

COLUMNS = ["claim", "method", "area", "run", "reference", "mean_change_pct", "verdict"]
FIRST = [["GeoDistill beats its baseline", "g2s_vgg", "cross", "gd-vgg-cross", "vgg-cross", -3.66, "inconclusive"],
         ["GeoDistill beats its baseline", "g2s_vgg", "same", "gd-vgg-same", "vgg-same", -5.41, "holds"],
         ["FoV occlusion beats random_patch", "g2s_vgg", "cross", "gd-vgg-cross", "rp-vgg-cross", -5.2, "holds"]]
SECOND = [["FoV occlusion beats random_patch", "g2s_vgg", "cross", "gd-vgg-cross", "rp-vgg-cross", 0.8, "inconclusive"],
          ["GeoDistill beats its baseline", "g2s_vgg", "same", "gd-vgg-same", "vgg-same", -3.5, "holds"],
          ["GeoDistill beats its baseline", "g2s_vgg", "cross", "gd-vgg-cross", "vgg-cross", 0.7, "inconclusive"]]


def claims(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def test_rows_pair_by_claim_run_and_reference_in_the_first_tables_order():
    table = compare_verdicts(claims(FIRST), claims(SECOND), ("a", "b"))
    assert table.to_dict("list") == {
        "claim": ["GeoDistill beats its baseline"] * 2 + ["FoV occlusion beats random_patch"],
        "method": ["g2s_vgg"] * 3, "area": ["cross", "same", "cross"],
        "a": ["-3.7 % inconclusive", "-5.4 % holds", "-5.2 % holds"],
        "b": ["+0.7 % inconclusive", "-3.5 % holds", "+0.8 % inconclusive"],
        "agree": ["yes", "yes", "**no**"]}
    assert agreement(table) == ("Main claims (GeoDistill beats its baseline): 2 of 2 verdicts agree; "
                                "all rows: 2 of 3.")


def test_a_comparison_missing_from_one_side_is_named():
    with pytest.raises(StabilityError, match=r"'FoV occlusion beats random_patch' \(gd-vgg-cross against "
                                             r"rp-vgg-cross\) is only in the a table"):
        compare_verdicts(claims(FIRST), claims(SECOND[1:]), ("a", "b"))


def test_cli_writes_the_table_and_refuses_a_file_that_is_not_a_claims_table(tmp_path: Path):
    claims(FIRST).to_csv(tmp_path / "first.csv", index=False)
    claims(SECOND).to_csv(tmp_path / "second.csv", index=False)
    out = tmp_path / "verdicts.md"
    result = CliRunner().invoke(app, ["stability", "--first", str(tmp_path / "first.csv"),
                                      "--second", str(tmp_path / "second.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[2] == ("| GeoDistill beats its baseline | g2s_vgg | cross | "
                                               "-3.7 % inconclusive | +0.7 % inconclusive | yes |")
    (tmp_path / "other.csv").write_text("run,mean_m\nx,1.0\n")
    with pytest.raises(StabilityError, match="other.csv: not a claims table .no column claim, reference, method"):
        read_claims(tmp_path / "other.csv")
    result = CliRunner().invoke(app, ["stability", "--second", str(tmp_path / "other.csv"),
                                      "--first", str(tmp_path / "first.csv")])
    assert result.exit_code == 2
    assert "not a claims table" in result.output


def test_readme_values_count_the_verdicts_a_rerun_kept(tmp_path: Path):
    from geodistill.reports.readme import readme_values
    (tmp_path / "tables").mkdir()
    (tmp_path / "stability" / "seeds-7-8").mkdir(parents=True)
    interval = dict(ci_low_change_pct=-1.0, ci_high_change_pct=1.0, half_width_pct=1.0, detectable_change_pct=1.4)
    claims(FIRST).assign(**interval).to_csv(tmp_path / "tables" / "claims.csv", index=False)
    claims(SECOND).to_csv(tmp_path / "stability" / "seeds-7-8" / "claims.csv", index=False)
    earlier = tmp_path / "stability" / "abc1234"                  # an earlier default's check, kept whole
    for seeds, rows in (("seeds-2023-2024", SECOND), ("seeds-2025-2026", FIRST)):
        (earlier / seeds).mkdir(parents=True)
        claims(rows).to_csv(earlier / seeds / "claims.csv", index=False)
    values = readme_values(tmp_path)
    assert values["stability:seeds-7-8:main"] == "2 of 2"
    assert values["stability:seeds-7-8:all"] == "2 of 3"
    assert values["stability:abc1234:main"] == "2 of 2"
    assert values["stability:abc1234:all"] == "2 of 3"


def committed_comparisons() -> list[tuple[Path, Path, Path, tuple[str, str]]]:
    """(verdicts.md, first claims, second claims, labels) of every committed stability check: the
    current default's seeds rerun (reports/stability/verdicts.md), each rerun folder with its own
    verdicts.md (reports/stability/<rerun>/, against reports/tables/claims.csv; the labels are its
    table's two run headings) and each earlier default's, kept whole in reports/stability/<commit>/."""
    stability, committed = REPO / "reports/stability", REPO / "reports/tables/claims.csv"
    seeds = ("2023-2024", "2025-2026")
    found = [(folder / "verdicts.md", first, second, seeds) for folder, first, second in archived_checks(stability)]
    if (stability / "verdicts.md").is_file():
        found.append((stability / "verdicts.md", committed, stability / "seeds-2025-2026/claims.csv", seeds))
    for verdicts in sorted(stability.glob("*/verdicts.md")):
        if (verdicts.parent / "claims.csv").is_file():
            headings = [c.strip() for c in verdicts.read_text().splitlines()[0].strip("|").split("|")]
            found.append((verdicts, committed, verdicts.parent / "claims.csv", (headings[3], headings[4])))
    return found


def test_committed_verdicts_are_those_of_the_committed_claims_tables():
    comparisons = committed_comparisons()
    assert comparisons, "no committed stability check under reports/stability"
    for verdicts, first, second, labels in comparisons:
        assert verdicts.read_text() == verdicts_markdown(first, second, labels), verdicts
