"""Stage index: the sample table every later stage reads (params `index`).

    python -m stages.index --config params.yaml --root data/world --out data/index.csv
"""
from __future__ import annotations

from pathlib import Path

import typer

from geodistill.data.index import build_index, summarize, write_index
from geodistill.data.kitti_index import build_kitti_index
from stages.common import ConfigOpt, friendly, load, require, script


@friendly
def index(config: Path = ConfigOpt,
          root: Path = typer.Option(Path("data/world"), help="VIGOR-layout dataset root (synthetic or real)"),
          out: Path = typer.Option(Path("data/index.csv"), help="sample table to write (CSV)")):
    """Build the sample table (same- and cross-area protocols, train/val/test); a KITTI root
    (params data.source kitti) gets the cross-view KITTI table (data/kitti_index.py)."""
    params = load(config)
    require(root, "dataset root")
    if params.data.source == "kitti":
        table = build_kitti_index(root, params.index.seed, params.index.val_fraction)
    else:
        table = build_index(root, params.index)
    write_index(table, out)
    typer.echo(summarize(table))


if __name__ == "__main__":
    script(index)
