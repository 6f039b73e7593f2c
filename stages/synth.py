"""Stage synth: the procedural city world, written in VIGOR's on-disk format (params `synth`).

    python -m stages.synth --config params.yaml --out data/world
"""
from __future__ import annotations

from pathlib import Path

import typer

from geodistill.data.synth.writer import write_world
from stages.common import ConfigOpt, friendly, load, script


@friendly
def synth(config: Path = ConfigOpt,
          out: Path = typer.Option(Path("data/world"), help="dataset root to write (replaced whole)")):
    """Generate the synthetic city world in VIGOR's on-disk format."""
    write_world(load(config).synth, out)


if __name__ == "__main__":
    script(synth)
