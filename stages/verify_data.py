"""Stage verify-data: every file of the dataset present, complete and decodable, of the right shape,
every label line well-formed (finite, inside its tiles, no panorama twice), no label line missing.

    python -m stages.verify_data --config params.yaml --root data/world --report reports/verify-data.txt
"""
from __future__ import annotations

from pathlib import Path

import typer

from geodistill.data.kitti_verify import is_kitti_root, verify_kitti_root
from geodistill.data.verify import known_totals, verify_root
from geodistill.io import write_text
from stages.common import ConfigOpt, friendly, load, require, script


@friendly
def verify_data(config: Path = ConfigOpt,
                root: Path = typer.Option(Path("data/world"), help="VIGOR-layout dataset root, or a cross-view "
                                                                  "KITTI root (raw_data/ and satmap/)"),
                workers: int = typer.Option(0, help="decoding processes; 0 = one per CPU core"),
                totals: bool = typer.Option(None, help="compare the label counts with the complete dataset's "
                                                       "(VIGOR's published totals, or a synthetic world's "
                                                       "dataset.json); default: params data.check_totals"),
                report: Path = typer.Option(None, help="also write the report to this file (stage verify-data)")):
    """Check that every referenced file exists and decodes and that no label line is missing;
    print counts per city and split (exit code 1 when something is wrong)."""
    params = load(config)
    totals = params.data.check_totals if totals is None else totals
    require(root, "dataset root")
    if is_kitti_root(root):                          # raw_data/ and satmap/: cross-view KITTI
        result = verify_kitti_root(root, workers=workers, totals=totals)
    else:
        result = verify_root(root, workers=workers, totals=known_totals(root) if totals else (),
                             sat_size=params.index.sat_size)
    typer.echo(result.format())
    if report is not None:
        write_text(report, f"{root}\n{result.format()}\n")
    if result.problems:
        raise typer.Exit(1)


if __name__ == "__main__":
    script(verify_data)
