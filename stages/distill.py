"""Stage distill: GeoDistill on a trained baseline, FoV teacher-student self-distillation (or its
augment / continue controls), once per seed, each from the same seed's baseline
(params `distill.variants.<variant>`, `distill`, `train`).

    python -m stages.distill --config params.yaml --variant geodistill-g2s_vgg-cross \
        --index data/index.csv --baselines data/baselines --out data/distill/geodistill-g2s_vgg-cross
"""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ConfigOpt, friendly, load, require, script


@friendly
def distill(config: Path = ConfigOpt,
            variant: str = typer.Option(..., help="a key of params distill.variants"),
            index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
            baselines: Path = typer.Option(Path("data/baselines"), help="folder of train-baseline runs"),
            out: Path = typer.Option(..., help="run folder: seed<s>/ (teacher.pt, student.pt, last.pt, history.csv) "
                                               "per seed of report.seeds")):
    """GeoDistill on a trained baseline, once per seed of report.seeds."""
    # imported here, not at the top: `geodistill --help` and the other commands start without torch
    from geodistill.distill.teacher_student import train_distill_seeds
    from geodistill.distributed import data_parallel, print_once
    from geodistill.training.device import Placement
    params = load(config)
    require(index, "sample table")
    Placement.of(params.train)                       # a device this machine lacks fails here, before any work
    with data_parallel(params.train.devices):
        for seed, result in train_distill_seeds(index, baselines, out, variant, params).items():
            best = ", ".join(f"{m} {v:.2f} m" for m, v in result["best_val_mean_m"].items())
            print_once(f"{variant} seed {seed}: best validation mean error {best} -> {out}/seed{seed}")


if __name__ == "__main__":
    script(distill)
