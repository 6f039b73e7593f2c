"""`geodistill` commands that are not dvc.yaml stages: inspect data (bev), use a trained model
(localize), copy the generated tables into the README (readme), switch params onto a preset,
compare the claims' verdicts of two runs on disjoint seeds (stability).

    geodistill bev --pano FILE.jpg --out FILE.png --size 512 --mpp 0.1 --camera-height 2
    geodistill localize --checkpoint data/baselines/g2s_vgg-cross/seed2023/best.pt --pano P.jpg --sat S.png --mpp 0.5
    geodistill readme --tables reports/tables --readme README.md
    geodistill preset vigor --root /data/VIGOR
    geodistill stability --second reports/stability/seeds-2025-2026/claims.csv --out reports/stability/verdicts.md
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import cv2
import typer
import yaml

from stages.common import UserError, friendly


@friendly
def bev(pano: Path = typer.Option(..., help="equirectangular panorama (W = 2H)"),
        out: Path = typer.Option(..., help="BEV image to write (.png/.jpg)"),
        size: int = typer.Option(512, help="BEV side in pixels"),
        mpp: float = typer.Option(0.1, help="metres per BEV pixel"),
        camera_height: float = typer.Option(2.0, help="camera height above the ground (m)"),
        yaw: float = typer.Option(0.0, help="heading of the panorama's centre column, degrees clockwise from north")):
    """One panorama -> its metric bird's-eye view (north up, camera at the centre), to inspect data."""
    from geodistill.data.bev import read_panorama
    from geodistill.geometry import render_bev
    _positive(size=size, mpp=mpp, camera_height=camera_height)
    _finite(yaw=yaw)
    _image_out(out, "--out")
    image = render_bev(read_panorama(pano), size, mpp, camera_height, yaw)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), image[..., ::-1]):
        raise UserError(f"cannot write {out}")
    typer.echo(f"{pano} -> {out} ({size}x{size}, {mpp} m/px)")


@friendly
def localize(checkpoint: Path = typer.Option(..., help="best.pt of a train-baseline run"),
             pano: Path = typer.Option(..., help="equirectangular panorama (W = 2H), north at the centre column"),
             sat: Path = typer.Option(..., help="square satellite image containing the camera"),
             mpp: float = typer.Option(..., help="metres per pixel of the satellite image"),
             yaw: float = typer.Option(0.0, help="heading of the panorama's centre column (degrees clockwise "
                                                 "from north); the panorama is turned back by it"),
             heatmap: Path = typer.Option(None, help="PNG of the score map over the satellite image")):
    """Localize one panorama in one satellite image; prints JSON (pixel, metres east/north)."""
    from geodistill.localize import localize_pair
    _positive(mpp=mpp)
    _finite(yaw=yaw)
    if heatmap is not None:
        _image_out(heatmap, "--heatmap")
    typer.echo(json.dumps(localize_pair(checkpoint, pano, sat, mpp, yaw, heatmap), indent=2))


def _positive(**options: float) -> None:
    """Refuse an option (by its name as a keyword) that is not a positive finite number."""
    for name, value in options.items():
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value}")


def _finite(**options: float) -> None:
    """Refuse an option (by its name as a keyword) that is not a finite number."""
    for name, value in options.items():
        if not math.isfinite(value):
            raise UserError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


def _image_out(path: Path, option: str) -> None:
    """Refuse, before any work, an output image OpenCV cannot write (by its extension)."""
    if not cv2.haveImageWriter(str(path)):
        raise UserError(f"{option} {path}: OpenCV cannot write an image of that name (use .png or .jpg)")


def _yaml_scalar(text: str) -> str:
    """`text` written as a YAML value that reads back as exactly that string: plain when it does,
    else double-quoted (a `#` after a space, a `: `, a leading quote...)."""
    try:
        if yaml.safe_load(f"key: {text}") == {"key": text}:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text)


@friendly
def readme(tables_dir: Path = typer.Option(Path("reports/tables"), "--tables", help="output of the tables stage"),
           readme_path: Path = typer.Option(Path("README.md"), "--readme", help="file with table blocks")):
    """Copy generated tables into the README's `<!-- table:NAME -->` blocks (after `dvc repro`)."""
    from geodistill.reports.readme import update_readme
    if not readme_path.is_file():
        raise UserError(f"README not found: {readme_path}")
    names = update_readme(readme_path, tables_dir)
    typer.echo(f"{readme_path}: {', '.join(names) or 'no table blocks'} <- {tables_dir}")


@friendly
def preset(name: str = typer.Argument(..., help="a preset of configs/ (vigor, kitti, synthetic-full, synthetic-large, smoke)"),
           root: Path = typer.Option(None, help="the dataset root (sets data.root; e.g. /data/VIGOR)"),
           presets: Path = typer.Option(Path("configs"), help="folder of the presets"),
           out: Path = typer.Option(Path("params.yaml"), help="params file to write")):
    """Switch the pipeline onto a preset: params.yaml becomes configs/<name>.yaml (validated first),
    with data.root set to --root. Back to the synthetic default: `git checkout params.yaml`."""
    from geodistill.config import parse_params, parse_yaml
    from geodistill.io import write_text
    source = presets / f"{name}.yaml"
    if not source.is_file():
        known = ", ".join(sorted(q.stem for q in presets.glob("*.yaml"))) or "none"
        raise UserError(f"no preset {name!r}: {source} not found (presets in {presets}: {known})")
    text = source.read_text(encoding="utf-8")
    if root is not None:
        value = _yaml_scalar(str(root))
        text, n = re.subn(r"(?m)^(data:.*\n(?:[ \t]+.*\n)*?[ \t]+root:[ \t]*)[^#\n]*?([ \t]*(#.*)?)$",
                          lambda m: f"{m.group(1)}{value}{m.group(2)}", text, count=1)
        if not n:
            raise UserError(f"{source}: no `data.root` line to set")
    params = parse_params(parse_yaml(text, str(source)), str(source))
    if root is not None and params.data.root != str(root):
        raise UserError(f"{source}: its data.root line could not be set to {str(root)!r} (got {params.data.root!r})")
    write_text(out, text)
    typer.echo(f"{out} <- {source} (data.source {params.data.source}, data.root {params.data.root}); "
               "`dvc repro` now runs this preset; `git checkout params.yaml` goes back")
    if params.data.download:
        typer.echo(f"stage download@{params.data.source} fills {params.data.root} from the archives under "
                   f"data.archives in {out}: set their paths first")
    elif params.data.source != "synthetic" and not Path(params.data.root).is_dir():
        typer.echo(f"note: {params.data.root} does not exist yet: unpack the dataset there, or set "
                   f"data.download: [{params.data.source}] and data.archives in {out}")


@friendly
def stability(first: Path = typer.Option(Path("reports/tables/claims.csv"), help="claims.csv of one run"),
              second: Path = typer.Option(..., help="claims.csv of the same params on other training seeds"),
              labels: tuple[str, str] = typer.Option(("2023-2024", "2025-2026"), help="a heading for each run"),
              out: Path = typer.Option(None, help="Markdown file to write (default: print it)")):
    """Verdict by verdict, do two runs of the claims table agree? Writes a Markdown table and a count."""
    from geodistill.io import write_text
    from geodistill.reports.stability import StabilityError, verdicts_markdown
    try:
        text = verdicts_markdown(first, second, labels)
    except StabilityError as error:
        raise UserError(str(error)) from None
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_text(out, text)
        typer.echo(f"{out} <- {first}, {second}: {text.splitlines()[-1]}")
