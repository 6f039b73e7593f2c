"""`geodistill`: one subcommand per dvc.yaml stage, each reading its settings from a params file.

    geodistill --help
    geodistill synth --config params.yaml --out data/world
    geodistill index --config params.yaml --root data/world --out data/index.csv
    geodistill verify-data --config params.yaml --root data/world

Invalid params fail before any work starts, with one line per problem naming the key.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import typer

from geodistill.config import ConfigError, Params, load_params

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="GeoDistill replication: one command per stage of dvc.yaml.")

ConfigOpt = typer.Option(Path("params.yaml"), "--config", "-c", help="params file (every setting lives there)")


@app.callback()
def _setup() -> None:
    """GeoDistill replication: one command per stage of dvc.yaml."""
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


class UserError(Exception):
    """Bad input named in one line (missing root, corrupt file...): printed without a traceback."""


def _friendly(fn):
    """Turn known bad-input errors into a one-line message and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from geodistill.data.vigor import FormatError
        try:
            return fn(*args, **kwargs)
        except (ConfigError, UserError, FormatError, FileNotFoundError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    return wrapper


def _params(config: Path) -> Params:
    return load_params(config)


@app.command()
@_friendly
def synth(config: Path = ConfigOpt,
          out: Path = typer.Option(Path("data/world"), help="dataset root to write (replaced whole)")):
    """Generate the synthetic city world in VIGOR's on-disk format."""
    from geodistill.data.synth.writer import write_world
    params = _params(config)
    write_world(params.synth, out)


@app.command()
@_friendly
def index(config: Path = ConfigOpt,
          root: Path = typer.Option(Path("data/world"), help="VIGOR-layout dataset root (synthetic or real)"),
          out: Path = typer.Option(Path("data/index.csv"), help="sample table to write (CSV)")):
    """Build the sample table (same- and cross-area protocols, train/val/test)."""
    from geodistill.data.index import build_index, summarize, write_index
    params = _params(config)
    if not root.is_dir():
        raise UserError(f"dataset root not found: {root}")
    table = build_index(root, params.index)
    write_index(table, out)
    typer.echo(summarize(table))


@app.command("verify-data")
@_friendly
def verify_data(config: Path = ConfigOpt,
                root: Path = typer.Option(Path("data/world"), help="VIGOR-layout dataset root"),
                workers: int = typer.Option(0, help="decoding processes; 0 = one per CPU core")):
    """Check that every referenced file exists and decodes; print counts per city and split."""
    from geodistill.data.verify import verify_root
    _params(config)
    if not root.is_dir():
        raise UserError(f"dataset root not found: {root}")
    report = verify_root(root, workers=workers)
    typer.echo(report.format())
    if report.problems:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
