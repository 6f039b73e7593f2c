"""Show generated results in README.md, never typed ones:
- each block between `<!-- table:NAME -->` and `<!-- /table:NAME -->` is replaced by
  reports/tables/NAME.md, verbatim;
- each number in prose between `<!-- value:KEY -->` and `<!-- /value -->` is replaced by the
  value KEY computed from the reports (`readme_values`): the pipeline's wall time and machine
  (reports/pipeline_time.csv), a claim's change, interval, half-width and verdict
  (reports/tables/claims.csv), a baseline's mean/median against the tile-centre guess
  (reports/results/<run>.json), how many verdicts a rerun on other seeds kept
  (reports/stability/<rerun>/claims.csv against reports/tables/claims.csv).

    geodistill readme --tables reports/tables --readme README.md     # after `dvc repro`

tests/test_reports.py fails when a block or a value differs from what the reports give.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from geodistill.io import write_text
from geodistill.reports.stability import archived_checks, checked_claims, compare_verdicts, kept, read_claims

BLOCK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table:(?P=name) -->)", re.S)
VALUE = re.compile(r"(<!-- value:(?P<key>[\w:.-]+) -->)(?P<body>.*?)(<!-- /value -->)", re.S)


def blocks(text: str) -> dict[str, str]:
    """NAME -> the block's current body."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def signed(x: float, digits: int = 1) -> str:
    """+1.4 / −3.7 (a typographic minus, as the prose writes it)."""
    return f"{x:+.{digits}f}".replace("-", "−")


def readme_values(reports: Path) -> dict[str, str]:
    """KEY -> text, for every value the reports give:
    - `minutes`, `machine`: the summed stage times of pipeline_time.csv and the machine it names;
    - `change|ci|half_width|detectable|verdict:<run>:<reference>`: a row of the claims table;
    - `vs_centre:<run>`: a run's 2-DoF mean and median over the tile-centre guess's, `0.45/0.16`;
    - `stability:<rerun>:main|all`: verdicts of the main claims (all rows) that the rerun in
      reports/stability/<rerun>/ kept, `3 of 4`; for an earlier default's check, kept whole in
      reports/stability/<commit>/seeds-2023-2024|seeds-2025-2026/, `stability:<commit>:main|all`."""
    reports, out = Path(reports), {}
    timing = reports / "pipeline_time.csv"
    if timing.is_file():
        t = pd.read_csv(timing)
        out["minutes"] = f"{t.seconds.sum() / 60:.1f}"
        out["machine"] = f"{t.cpu.iloc[0]}, {t.cores.iloc[0]} cores, {t.gflops.iloc[0]:.0f} float32 GFLOPS"
    claims = reports / "tables" / "claims.csv"
    if claims.is_file():
        committed = pd.read_csv(claims)
        for r in committed.itertuples():
            key = f"{r.run}:{r.reference}"
            out |= {f"change:{key}": f"{signed(r.mean_change_pct)} %",
                    f"ci:{key}": f"{signed(r.ci_low_change_pct)} to {signed(r.ci_high_change_pct)} %",
                    f"half_width:{key}": f"{r.half_width_pct:.1f} %",
                    f"detectable:{key}": f"{r.detectable_change_pct:.1f} %", f"verdict:{key}": r.verdict}
        for rerun in sorted((reports / "stability").glob("*/claims.csv")):
            table = compare_verdicts(checked_claims(committed, claims), read_claims(rerun),
                                     ("committed", rerun.parent.name))
            out |= {f"stability:{rerun.parent.name}:{name}": text for name, text in kept(table).items()}
    for check, first, second in archived_checks(reports / "stability"):
        table = compare_verdicts(read_claims(first), read_claims(second), ("2023-2024", "2025-2026"))
        out |= {f"stability:{check.name}:{name}": text for name, text in kept(table).items()}
    for path in sorted((reports / "results").glob("*.json")):
        m = json.loads(path.read_text())
        if "2dof" in m and "tile_centre" in m:
            ours, centre = m["2dof"], m["tile_centre"]
            out[f"vs_centre:{path.stem}"] = (f"{ours['mean_m'] / centre['mean_m']:.2f}/"
                                            f"{ours['median_m'] / centre['median_m']:.2f}")
    return out


def fill(text: str, tables: Path, reports: Path | None = None) -> str:
    """`text` with every block's body replaced by its table file and every value by its number
    (a missing table or value is an error naming it)."""
    def body(m: re.Match) -> str:
        path = Path(tables) / f"{m['name']}.md"
        if not path.is_file():
            raise FileNotFoundError(f"README block table:{m['name']} needs {path} (run `dvc repro tables`)")
        return f"{m.group(1)}{path.read_text().rstrip()}\n{m.group(4)}"
    values = readme_values(Path(tables).parent if reports is None else reports)

    def value(m: re.Match) -> str:
        if m["key"] not in values:
            raise KeyError(f"README value {m['key']!r}: the reports give no such value (known: "
                           f"{', '.join(sorted(values)[:8])}...)")
        return f"{m.group(1)}{values[m['key']]}{m.group(4)}"
    return VALUE.sub(value, BLOCK.sub(body, text))


def update_readme(readme: Path, tables: Path, reports: Path | None = None) -> list[str]:
    """Rewrite the README's table blocks and values in place (atomically); returns the block names.
    `reports` (default: the folder above `tables`) holds pipeline_time.csv and results/."""
    text = Path(readme).read_text()
    write_text(readme, fill(text, tables, reports))
    return list(blocks(text))
