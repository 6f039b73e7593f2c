"""Do two runs of the claims table, on disjoint training seeds, reach the same verdicts?

    geodistill stability --first reports/tables/claims.csv \
        --second reports/stability/seeds-2025-2026/claims.csv --out reports/stability/verdicts.md

    table = compare_verdicts(first, second, ("2023-2024", "2025-2026"))   # one row per comparison

Both inputs are claims.csv files of the tables stage (claims.py). A comparison is the same when
its claim, run and reference are; one that only one file has is an error, not a silent drop.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from geodistill.reports.claims import MAIN_CLAIM

KEY = ["claim", "run", "reference"]


class StabilityError(ValueError):
    """The two claims tables cannot be compared row by row."""


def read_claims(path: Path) -> pd.DataFrame:
    """A claims.csv with the columns the comparison needs; names the file and what it lacks."""
    if not path.is_file():
        raise StabilityError(f"{path}: not found (the tables stage writes claims.csv)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise StabilityError(f"{path}: not a readable CSV ({' '.join(str(error).split())})") from None
    return checked_claims(table, path)


def checked_claims(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`table` (read from `path`) if it has the columns the comparison needs and no comparison twice."""
    missing = [c for c in [*KEY, "method", "area", "mean_change_pct", "verdict"] if c not in table.columns]
    if missing:
        raise StabilityError(f"{path}: not a claims table (no column {', '.join(missing)})")
    if table.duplicated(KEY).any():
        raise StabilityError(f"{path}: a claim, run and reference appear twice")
    return table


def outcomes(change_pct: pd.Series, verdict: pd.Series) -> pd.Series:
    """'-3.7 % inconclusive': each change and the verdict it came with."""
    return change_pct.map("{:+.1f} %".format) + " " + verdict


def compare_verdicts(first: pd.DataFrame, second: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """One row per comparison in both tables (the first's order): each side's outcome and whether
    the verdicts agree (the changes may differ)."""
    keys = [set(map(tuple, table[KEY].itertuples(index=False))) for table in (first, second)]
    for side, own, other in ((labels[0], keys[0], keys[1]), (labels[1], keys[1], keys[0])):
        if own - other:
            claim, run, reference = min(own - other)
            raise StabilityError(f"{claim!r} ({run} against {reference}) is only in the {side} table: "
                                 "compare runs of the same params")
    both = first.merge(second, on=KEY, how="left", suffixes=("_1", "_2"))
    return pd.DataFrame({
        "claim": both["claim"], "method": both["method_1"], "area": both["area_1"],
        labels[0]: outcomes(both["mean_change_pct_1"], both["verdict_1"]),
        labels[1]: outcomes(both["mean_change_pct_2"], both["verdict_2"]),
        "agree": (both["verdict_1"] == both["verdict_2"]).map({True: "yes", False: "**no**"}),
    })


def kept(table: pd.DataFrame) -> dict[str, str]:
    """How many verdicts agree, of the main claims and of all rows: {'main': '3 of 4', 'all': '8 of 14'}."""
    count = lambda rows: f"{int((rows['agree'] == 'yes').sum())} of {len(rows)}"
    return {"main": count(table[table["claim"] == MAIN_CLAIM]), "all": count(table)}


def agreement(table: pd.DataFrame) -> str:
    """'Main claims (GeoDistill beats its baseline): 3 of 4 verdicts agree; all rows: 8 of 14.'"""
    counts = kept(table)
    return f"Main claims ({MAIN_CLAIM}): {counts['main']} verdicts agree; all rows: {counts['all']}."


def archived_checks(stability: Path) -> list[tuple[Path, Path, Path]]:
    """Earlier defaults' checks, each kept whole in <stability>/<commit>/: (its folder, the claims
    of the default's seeds, seeds-2023-2024/claims.csv, and of the rerun, seeds-2025-2026/claims.csv)."""
    return [(first.parent.parent, first, first.parent.parent / "seeds-2025-2026" / "claims.csv")
            for first in sorted(Path(stability).glob("*/seeds-2023-2024/claims.csv"))]


def verdicts_markdown(first: Path, second: Path, labels: tuple[str, str] = ("2023-2024", "2025-2026")) -> str:
    """The text `geodistill stability` writes: the table of both runs' verdicts and the count."""
    from geodistill.reports.tables import markdown
    table = compare_verdicts(read_claims(first), read_claims(second), labels)
    return f"{markdown(table)}\n\n{agreement(table)}\n"
