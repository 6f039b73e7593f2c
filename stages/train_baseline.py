"""Stage train-baseline: a localization baseline (G2SWeakly or CCVPE) on one area protocol, once
per seed of report.seeds (params `baselines.<method>`, `train`).

    python -m stages.train_baseline --config params.yaml --method g2s_vgg --area cross \
        --index data/index.csv --out data/baselines/g2s_vgg-cross
"""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ConfigOpt, UserError, friendly, load, require, script


@friendly
def train_baseline(config: Path = ConfigOpt,
                   method: str = typer.Option(..., help="a key of params baselines (g2s_vgg, g2s_dino, ccvpe)"),
                   area: str = typer.Option(..., help="same or cross"),
                   index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
                   out: Path = typer.Option(..., help="run folder: seed<s>/ (best.pt, last.pt, history.csv) "
                                                      "per seed of report.seeds")):
    """Train a localization baseline (G2SWeakly or CCVPE) on one area protocol, once per seed."""
    # imported here, not at the top: `geodistill --help` and the other commands start without torch
    from geodistill.distributed import data_parallel, print_once
    from geodistill.training.baseline import train_baseline_seeds
    from geodistill.training.device import Placement
    params = load(config)
    if area not in ("same", "cross"):
        raise UserError(f"--area must be same or cross, got {area!r}")
    require(index, "sample table")
    Placement.of(params.train)                       # a device this machine lacks fails here, before any work
    with data_parallel(params.train.devices):
        for seed, result in train_baseline_seeds(index, out, method, area, params).items():
            print_once(f"{method}-{area} seed {seed}: best validation mean error {result['best_val_mean_m']:.2f} m "
                       f"-> {out}/seed{seed}")


if __name__ == "__main__":
    script(train_baseline)
