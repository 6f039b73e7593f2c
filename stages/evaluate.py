"""Stage evaluate (evaluate@<run>, evaluate-distill@<variant>): localization metrics on the test
split, per training seed and over the seeds, with the tile-centre reference (params `evaluate`).

    python -m stages.evaluate --config params.yaml --run data/baselines/g2s_vgg-cross \
        --orientation data/orientation/cross/test_predictions.csv --predictions data/eval/g2s_vgg-cross \
        --metrics reports/results/g2s_vgg-cross.json --headline reports/metrics/g2s_vgg-cross.json
"""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import UserError, friendly, load, require, script


@friendly
def evaluate(config: Path = typer.Option(None, "--config", "-c", help="params file: report.seeds, the `evaluate` "
                                         "test subset and train.device, precision and channels_last (default: "
                                         "every seed<s>/ of --run, the whole test split, CPU, fp32)"),
             run: Path = typer.Option(..., help="a train-baseline run folder (seed<s>/best.pt) or a distill run "
                                                "folder (seed<s>/teacher.pt and student.pt)"),
             index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
             orientation: Path = typer.Option(..., help="test_predictions.csv of train-orientation, same area"),
             predictions: Path = typer.Option(..., help="folder for the per-sample CSVs, seed<s>.csv (a distill "
                                                        "run: <model>/seed<s>.csv)"),
             metrics: Path = typer.Option(..., help="metrics JSON to write: every number, per seed and city"),
             headline: Path = typer.Option(None, help="also a small JSON of the headline numbers (2-DoF mean, "
                                                      "median, within 1 m of the run; of report.distilled_model "
                                                      "for a distill run): what `dvc exp show` lists")):
    """2-DoF and 3-DoF localization metrics on the test split, with the tile-centre reference."""
    # imported here, not at the top: `geodistill --help` and the other commands start without torch
    from geodistill.evaluation import evaluate_seeds, headline_metrics
    from geodistill.io import write_json
    from geodistill.training.checkpoint import DISTILLED_MODELS
    from geodistill.training.device import Placement
    require(index, "sample table")
    require(orientation, "orientation predictions")
    if config is None:
        seeds = sorted(int(p.name[4:]) for p in run.glob("seed*") if p.name[4:].isdigit())
        if not seeds:
            raise UserError(f"{run}: no seed<s>/ folders (is it a train-baseline or distill run?)")
        m = evaluate_seeds(run, seeds, index, orientation, predictions, metrics)
        distilled = "teacher"
    else:
        params = load(config)
        m = evaluate_seeds(run, params.report.seeds, index, orientation, predictions, metrics,
                           Placement.of(params.train), params.evaluate.max_samples, params.evaluate.seed,
                           params.train.predict_batch_size, tuple(params.evaluate.three_dof), params.train)
        distilled = params.report.distilled_model
    if headline is not None:
        write_json(headline, headline_metrics(m, distilled))
    blocks = {f"{model} ": m[model] for model in DISTILLED_MODELS if model in m} or {"": m}
    for model, b in blocks.items():
        spread = b.get("std", {})
        for k in [k for k in ("2dof", "3dof", "3dof_own", "tile_centre") if k in b]:
            pm = lambda stat: f" ± {spread[k][stat]:.2f}" if k in spread else ""
            typer.echo(f"{b['method']}-{b['area']} {model}{k}: mean {b[k]['mean_m']:.2f}{pm('mean_m')} m, median "
                       f"{b[k]['median_m']:.2f}{pm('median_m')} m, within 1/3/5 m {100 * b[k]['within_1_m']:.1f}/"
                       f"{100 * b[k]['within_3_m']:.1f}/{100 * b[k]['within_5_m']:.1f}% (seeds {b['seeds']})")


if __name__ == "__main__":
    script(evaluate)
