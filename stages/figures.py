"""Stage figures: the paper's figures (PNG): error CDF, FoV sweep, training curves, orientation
error, teacher/student examples; and the training curves as one CSV per method for `dvc plots`.

    python -m stages.figures --config params.yaml --eval data/eval --runs data --index data/index.csv \
        --out reports/figures --plots reports/plots
"""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ConfigOpt, UserError, friendly, load, require, script


@friendly
def figures(config: Path = ConfigOpt,
            eval_dir: Path = typer.Option(Path("data/eval"), "--eval", help="the evaluate stages' per-sample CSVs"),
            runs: Path = typer.Option(Path("data"), help="folder holding baselines/, distill/ and orientation/"),
            out: Path = typer.Option(Path("reports/figures"), help="folder for the PNG figures"),
            index: Path = typer.Option(Path("data/index.csv"), help="sample table, for the qualitative examples"),
            qualitative: bool = typer.Option(True, help="also draw teacher and student heatmaps (loads last.pt)"),
            dataset: str = typer.Option(None, help="dataset named in the titles (default as for `tables`)"),
            plots: Path = typer.Option(None, help="also write the training curves here, one CSV per method "
                                                  "(dvc plots)")):
    """The paper's figures (PNG): error CDF, FoV sweep, training curves, orientation error, examples."""
    # imported here, not at the top: `geodistill --help` and the other commands start without torch
    from geodistill.reports.figures import write_figures
    from geodistill.reports.runs import ReportError
    from geodistill.reports.tables import describe_dataset
    params = load(config)
    require(eval_dir, "per-sample predictions folder")
    require(runs, "runs folder")
    try:
        written = write_figures(params, eval_dir, runs, out, dataset or describe_dataset(params, config),
                                index if qualitative else None, plots)
    except ReportError as e:
        raise UserError(str(e)) from None
    typer.echo(f"{len(written)} figures -> {out}: " + ", ".join(p.name for p in written))


if __name__ == "__main__":
    script(figures)
