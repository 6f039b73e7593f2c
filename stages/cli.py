"""`geodistill`: one subcommand per dvc.yaml stage (the same functions dvc.yaml runs as
`python -m stages.<stage>`), plus the tools of tools.py.

    geodistill --help
    geodistill synth --config params.yaml --out data/world
    geodistill train-baseline --config params.yaml --method g2s_vgg --area cross --out data/baselines/g2s_vgg-cross
    geodistill bev --pano FILE.jpg --out FILE.png

Invalid params fail before any work starts, with one line per problem naming the key.
"""
from __future__ import annotations

import typer

from stages import (distill, download, evaluate, figures, index, render_bev, synth, tables, tools, train_baseline,
                    train_orientation, verify_data)
from stages.common import start_process

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="GeoDistill replication: one command per stage of dvc.yaml.")

STAGES = {"synth": synth.synth, "download": download.download, "verify-data": verify_data.verify_data,
          "index": index.index, "render-bev": render_bev.render_bev,
          "train-orientation": train_orientation.train_orientation,
          "train-baseline": train_baseline.train_baseline, "distill": distill.distill,
          "evaluate": evaluate.evaluate, "tables": tables.tables, "figures": figures.figures}
TOOLS = {"bev": tools.bev, "localize": tools.localize, "readme": tools.readme, "preset": tools.preset,
         "stability": tools.stability}

for _name, _command in {**STAGES, **TOOLS}.items():
    app.command(_name)(_command)


@app.callback()
def _setup() -> None:
    """GeoDistill replication: one command per stage of dvc.yaml."""
    start_process()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
