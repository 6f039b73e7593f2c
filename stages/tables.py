"""Stage tables: the paper's tables (Markdown, CSV, LaTeX) from the evaluate stages' results, the
published VIGOR numbers beside, the claims table (paired bootstrap over the per-sample errors),
and the summary metrics DVC shows (params `report`).

    python -m stages.tables --config params.yaml --results reports/results --eval data/eval \
        --out reports/tables --summary reports/metrics/summary.json
"""
from __future__ import annotations

from pathlib import Path

import typer

from geodistill.io import write_json
from geodistill.reports.claims import claims_table
from geodistill.reports.runs import ReportError
from geodistill.reports.tables import (build_tables, describe_dataset, load_published, scoring_note, summary_metrics,
                                       write_tables)
from stages.common import ConfigOpt, UserError, friendly, load, require, script


@friendly
def tables(config: Path = ConfigOpt,
           results: Path = typer.Option(Path("reports/results"), help="folder of the evaluate stages' JSON files"),
           out: Path = typer.Option(Path("reports/tables"), help="folder for <table>.md, .csv and .tex"),
           eval_dir: Path = typer.Option(None, "--eval", help="the evaluate stages' per-sample CSVs: also write "
                                                              "the claims table (paired bootstrap)"),
           summary: Path = typer.Option(None, help="also a JSON of the main table's means and each claim's change "
                                                   "and verdict: what `dvc exp show` lists"),
           dataset: str = typer.Option(None, help="dataset named in the captions; default: VIGOR when the "
                                                  "index names only VIGOR's cities, else the synthetic world")):
    """The paper's tables (Markdown, CSV, LaTeX) from the results files, published VIGOR numbers beside."""
    params = load(config)
    require(results, "results folder")
    if eval_dir is not None:
        require(eval_dir, "per-sample predictions folder")
    try:
        built = build_tables(params, results, load_published())
        if eval_dir is not None:
            built["claims"] = claims_table(params, eval_dir)
    except ReportError as e:
        raise UserError(str(e)) from None
    write_tables(built, out, (dataset or describe_dataset(params, config)) + scoring_note(params))
    if summary is not None:
        write_json(summary, summary_metrics(built))
    typer.echo(", ".join(f"{name} ({len(t)} rows)" for name, t in built.items()) + f" -> {out}")


if __name__ == "__main__":
    script(tables)
