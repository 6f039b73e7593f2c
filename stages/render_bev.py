"""Stage render-bev: every indexed panorama as a metric bird's-eye view, packed in one array (params `bev`).

    python -m stages.render_bev --config params.yaml --index data/index.csv --out data/bev
"""
from __future__ import annotations

from pathlib import Path

import typer

from geodistill.data.bev import render_all
from geodistill.data.index import read_index
from geodistill.data.kitti_index import is_kitti_table
from stages.common import ConfigOpt, friendly, load, require, script


@friendly
def render_bev(config: Path = ConfigOpt,
               index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
               out: Path = typer.Option(Path("data/bev"), help="folder to write (replaced whole)")):
    """Pre-render every indexed panorama to a metric BEV image (packed in one array)."""
    p = load(config).bev
    require(index, "sample table", "run `geodistill index` first")
    table = read_index(index, ("pano_path",)).drop_duplicates("pano_path").sort_values("pano_path")
    paths = table.pano_path.tolist()
    cameras = (list(table[["fx", "fy", "cx", "cy", "yaw_deg"]].itertuples(index=False, name=None))
               if is_kitti_table(table.columns) else None)          # KITTI: pinhole images
    render_all(paths, p.size, p.mpp, p.camera_height_m, out, p.min_pano_width, p.workers, cameras)
    typer.echo(f"{len(paths)} BEV images ({p.size}x{p.size}, {p.mpp} m/px) -> {out}")


if __name__ == "__main__":
    script(render_bev)
