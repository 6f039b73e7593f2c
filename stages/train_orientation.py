"""Stage train-orientation: the orientation network (yaw from BEV + satellite), one per area protocol.

    python -m stages.train_orientation --config params.yaml --index data/index.csv --bev data/bev \
        --out data/orientation --metrics reports/results/orientation.json --headline reports/metrics/orientation.json
"""
from __future__ import annotations

from pathlib import Path

import typer

from stages.common import ConfigOpt, friendly, load, require, script


@friendly
def train_orientation(config: Path = ConfigOpt,
                      index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
                      bev: Path = typer.Option(Path("data/bev"), help="output of render-bev"),
                      out: Path = typer.Option(Path("data/orientation"), help="checkpoints and predictions"),
                      metrics: Path = typer.Option(Path("reports/results/orientation.json"),
                                                   help="test metrics JSON to write, every number"),
                      headline: Path = typer.Option(None, help="also a small JSON of the mean and median yaw "
                                                               "error per area: what `dvc exp show` lists")):
    """Train the orientation network per area protocol; write test metrics (wrap-around errors)."""
    # imported here, not at the top: `geodistill --help` and the other commands start without torch
    from geodistill.distributed import data_parallel, print_once, world
    from geodistill.io import write_json
    from geodistill.training.device import Placement
    from geodistill.training.orientation import train_orientation as train
    params = load(config)
    require(index, "sample table")
    require(bev / "bev.npy", "BEV array", "run `geodistill render-bev` first")
    Placement.of(params.train)                       # a device this machine lacks fails here, before any work
    with data_parallel(params.train.devices):
        placement = Placement.of(params.train)       # this rank's device (LOCAL_RANK under torchrun)
        result = train(index, bev, out, metrics, params.orientation, params.bev, placement, params.evaluate)
        if headline is not None and world().is_main:
            write_json(headline, {area: {"mean_deg": round(m["mean_deg"], 3), "median_deg": round(m["median_deg"], 3)}
                                  for area, m in result.items()})
        for area, m in result.items():
            print_once(f"{area}-area test: mean {m['mean_deg']:.2f} deg, median {m['median_deg']:.2f} deg, within "
                       f"5 deg {100 * m['within_5_deg']:.1f}% (uniform guess {m['uniform_guess_mean_deg']:.1f})")


if __name__ == "__main__":
    script(train_orientation)
