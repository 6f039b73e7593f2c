"""`geodistill`: one subcommand per dvc.yaml stage, each reading its settings from a params file.

    geodistill --help
    geodistill synth --config params.yaml --out data/world
    geodistill index --config params.yaml --root data/world --out data/index.csv
    geodistill verify-data --config params.yaml --root data/world
    geodistill render-bev --config params.yaml --index data/index.csv --out data/bev
    geodistill train-orientation --config params.yaml --index data/index.csv --bev data/bev \
        --out data/orientation --metrics reports/metrics/orientation.json
    geodistill train-baseline --config params.yaml --method g2s_vgg --area cross --out data/baselines/g2s_vgg-cross
    geodistill distill --config params.yaml --variant geodistill-g2s_vgg-cross --out data/distill/geodistill-g2s_vgg-cross
    geodistill evaluate --config params.yaml --run data/baselines/g2s_vgg-cross --orientation ... --predictions ... --metrics ...
    geodistill tables --config params.yaml --metrics reports/metrics --out reports/tables
    geodistill figures --config params.yaml --eval data/eval --runs data --out reports/figures
    geodistill bev --pano FILE.jpg --out FILE.png --size 512 --mpp 0.1 --camera-height 2
    geodistill download vigor --config params.yaml --root /data/VIGOR      # archives: params data.archives

Invalid params fail before any work starts, with one line per problem naming the key.
"""
from __future__ import annotations

import contextlib
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
        from geodistill.errors import CheckpointError, FormatError, ImageError
        try:
            return fn(*args, **kwargs)
        except (ConfigError, UserError, FormatError, ImageError, CheckpointError, FileNotFoundError,
                FloatingPointError, MemoryError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
    return wrapper


def _params(config: Path) -> Params:
    return load_params(config)


def _placement(params: Params):
    """Where the stage computes (training/device.py); a device this machine lacks fails here,
    before any process is started or any data read."""
    from geodistill.training.device import Placement
    return Placement.of(params.train)


@contextlib.contextmanager
def _data_parallel(devices: int):
    """Run the training block as `devices` data-parallel processes: this command is relaunched under
    torchrun (and this process only waits for it), or, inside torchrun, the block runs on this
    rank and the process group is left at the end (distributed.py)."""
    import os

    from geodistill import distributed
    # cuBLAS is deterministic only with a fixed workspace, set before CUDA starts (training asks for
    # deterministic algorithms); it changes nothing on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    code = distributed.relaunch(devices)
    if code is not None:
        raise typer.Exit(code)
    try:
        yield
    finally:
        distributed.leave()


def _main_echo(message: str) -> None:
    """typer.echo on rank 0 only (every message once when data-parallel)."""
    from geodistill import distributed
    if distributed.world().is_main:
        typer.echo(message)


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
    """Build the sample table (same- and cross-area protocols, train/val/test); a KITTI root
    (params data.source kitti) gets the cross-view KITTI table (data/kitti_index.py)."""
    from geodistill.data.index import build_index, summarize, write_index
    from geodistill.data.kitti_index import build_kitti_index
    params = _params(config)
    if not root.is_dir():
        raise UserError(f"dataset root not found: {root}")
    if params.data.source == "kitti":
        table = build_kitti_index(root, params.index.seed, params.index.val_fraction)
    else:
        table = build_index(root, params.index)
    write_index(table, out)
    typer.echo(summarize(table))


@app.command("verify-data")
@_friendly
def verify_data(config: Path = ConfigOpt,
                root: Path = typer.Option(Path("data/world"), help="VIGOR-layout dataset root, or a cross-view "
                                                                  "KITTI root (raw_data/ and satmap/)"),
                workers: int = typer.Option(0, help="decoding processes; 0 = one per CPU core"),
                totals: bool = typer.Option(None, help="compare the label counts with the complete dataset's "
                                                       "(VIGOR's published totals, or a synthetic world's "
                                                       "dataset.json); default: params data.check_totals"),
                report: Path = typer.Option(None, help="also write the report to this file (stage verify-data)")):
    """Check that every referenced file exists and decodes and that no label line is missing;
    print counts per city and split."""
    from geodistill.data.kitti_verify import is_kitti_root, verify_kitti_root
    from geodistill.data.verify import known_totals, verify_root
    params = _params(config)
    totals = params.data.check_totals if totals is None else totals
    if not root.is_dir():
        raise UserError(f"dataset root not found: {root}")
    if is_kitti_root(root):                          # raw_data/ and satmap/: cross-view KITTI
        result = verify_kitti_root(root, workers=workers, totals=totals)
    else:
        result = verify_root(root, workers=workers, totals=known_totals(root) if totals else ())
    typer.echo(result.format())
    if report is not None:
        from geodistill.io import write_text
        write_text(report, f"{root}\n{result.format()}\n")
    if result.problems:
        raise typer.Exit(1)


@app.command("render-bev")
@_friendly
def render_bev_stage(config: Path = ConfigOpt,
                     index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
                     out: Path = typer.Option(Path("data/bev"), help="folder to write (replaced whole)")):
    """Pre-render every indexed panorama to a metric BEV image (packed in one array)."""
    import pandas as pd

    from geodistill.data.bev import render_all
    from geodistill.data.kitti_index import is_kitti_table
    p = _params(config).bev
    if not index.is_file():
        raise UserError(f"sample table not found: {index} (run `geodistill index` first)")
    table = pd.read_csv(index).drop_duplicates("pano_path").sort_values("pano_path")
    paths = table.pano_path.tolist()
    cameras = (list(table[["fx", "fy", "cx", "cy", "yaw_deg"]].itertuples(index=False, name=None))
               if is_kitti_table(table.columns) else None)          # KITTI: pinhole images
    render_all(paths, p.size, p.mpp, p.camera_height_m, out, p.min_pano_width, p.workers, cameras)
    typer.echo(f"{len(paths)} BEV images ({p.size}x{p.size}, {p.mpp} m/px) -> {out}")


@app.command("train-orientation")
@_friendly
def train_orientation_stage(config: Path = ConfigOpt,
                            index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
                            bev: Path = typer.Option(Path("data/bev"), help="output of render-bev"),
                            out: Path = typer.Option(Path("data/orientation"), help="checkpoints and predictions"),
                            metrics: Path = typer.Option(Path("reports/metrics/orientation.json"))):
    """Train the orientation network per area protocol; write test metrics (wrap-around errors)."""
    from geodistill.training.orientation import train_orientation
    params = _params(config)
    for path, what in ((index, "sample table"), (bev / "bev.npy", "BEV array")):
        if not path.is_file():
            raise UserError(f"{what} not found: {path}")
    _placement(params)
    with _data_parallel(params.train.devices):
        result = train_orientation(index, bev, out, metrics, params.orientation, params.bev, _placement(params),
                                   params.evaluate)
        for area, m in result.items():
            _main_echo(f"{area}-area test: mean {m['mean_deg']:.2f} deg, median {m['median_deg']:.2f} deg, within "
                       f"5 deg {100 * m['within_5_deg']:.1f}% (uniform guess {m['uniform_guess_mean_deg']:.1f})")


@app.command()
@_friendly
def bev(pano: Path = typer.Option(..., help="equirectangular panorama (W = 2H)"),
        out: Path = typer.Option(..., help="BEV image to write (.png/.jpg)"),
        size: int = typer.Option(512, help="BEV side in pixels"),
        mpp: float = typer.Option(0.1, help="metres per BEV pixel"),
        camera_height: float = typer.Option(2.0, help="camera height above the ground (m)"),
        yaw: float = typer.Option(0.0, help="heading of the panorama's centre column, degrees clockwise from north")):
    """One panorama -> its metric bird's-eye view (north up, camera at the centre), to inspect data."""
    import cv2

    from geodistill.data.bev import read_panorama
    from geodistill.geometry import render_bev
    if size <= 0 or mpp <= 0 or camera_height <= 0:
        raise UserError(f"--size, --mpp and --camera-height must be positive, got {size}, {mpp}, {camera_height}")
    image = render_bev(read_panorama(pano), size, mpp, camera_height, yaw)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), image[..., ::-1]):
        raise UserError(f"cannot write {out} (unknown image extension?)")
    typer.echo(f"{pano} -> {out} ({size}x{size}, {mpp} m/px)")


@app.command("train-baseline")
@_friendly
def train_baseline_stage(config: Path = ConfigOpt,
                         method: str = typer.Option(..., help="a key of params baselines (g2s_vgg, g2s_dino, ccvpe)"),
                         area: str = typer.Option(..., help="same or cross"),
                         index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
                         out: Path = typer.Option(..., help="run folder: seed<s>/ (best.pt, last.pt, history.csv) "
                                                            "per seed of report.seeds")):
    """Train a localization baseline (G2SWeakly or CCVPE) on one area protocol, once per seed."""
    from geodistill.training.baseline import train_baseline_seeds
    params = _params(config)
    if area not in ("same", "cross"):
        raise UserError(f"--area must be same or cross, got {area!r}")
    if not index.is_file():
        raise UserError(f"sample table not found: {index}")
    _placement(params)
    with _data_parallel(params.train.devices):
        results = train_baseline_seeds(index, out, method, area, params)
        for seed, result in results.items():
            _main_echo(f"{method}-{area} seed {seed}: best validation mean error {result['best_val_mean_m']:.2f} m "
                       f"-> {out}/seed{seed}")


@app.command("distill")
@_friendly
def distill_stage(config: Path = ConfigOpt,
                  variant: str = typer.Option(..., help="a key of params distill.variants"),
                  index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
                  baselines: Path = typer.Option(Path("data/baselines"), help="folder of train-baseline runs"),
                  out: Path = typer.Option(..., help="run folder: seed<s>/ (teacher.pt, student.pt, last.pt, history.csv) "
                                                     "per seed of report.seeds")):
    """GeoDistill on a trained baseline: FoV teacher-student self-distillation (or its augment control),
    once per seed, each from the same seed's baseline."""
    from geodistill.distill.teacher_student import train_distill_seeds
    params = _params(config)
    if not index.is_file():
        raise UserError(f"sample table not found: {index}")
    _placement(params)
    with _data_parallel(params.train.devices):
        results = train_distill_seeds(index, baselines, out, variant, params)
        for seed, result in results.items():
            best = ", ".join(f"{m} {v:.2f} m" for m, v in result["best_val_mean_m"].items())
            _main_echo(f"{variant} seed {seed}: best validation mean error {best} -> {out}/seed{seed}")


@app.command()
@_friendly
def evaluate(config: Path = typer.Option(None, "--config", "-c", help="params file: report.seeds, the `evaluate` "
                                         "test subset and train.device, precision and channels_last (default: "
                                         "every seed<s>/ of --run, the whole test split, CPU, fp32)"),
             run: Path = typer.Option(..., help="a train-baseline run folder (seed<s>/best.pt) or a distill run "
                                                "folder (seed<s>/teacher.pt and student.pt)"),
             index: Path = typer.Option(Path("data/index.csv"), help="sample table"),
             orientation: Path = typer.Option(..., help="test_predictions.csv of train-orientation, same area"),
             predictions: Path = typer.Option(..., help="folder for the per-sample CSVs, seed<s>.csv (a distill "
                                                        "run: <model>/seed<s>.csv)"),
             metrics: Path = typer.Option(..., help="metrics JSON to write (mean over the seeds)")):
    """2-DoF and 3-DoF localization metrics on the test split, with the tile-centre reference."""
    from geodistill.evaluation import evaluate_seeds
    for path, what in ((index, "sample table"), (orientation, "orientation predictions")):
        if not path.is_file():
            raise UserError(f"{what} not found: {path}")
    if config is None:
        seeds = sorted(int(p.name[4:]) for p in run.glob("seed*") if p.name[4:].isdigit())
        if not seeds:
            raise UserError(f"{run}: no seed<s>/ folders (is it a train-baseline or distill run?)")
        m = evaluate_seeds(run, seeds, index, orientation, predictions, metrics)
    else:
        params = _params(config)
        m = evaluate_seeds(run, params.report.seeds, index, orientation, predictions, metrics, _placement(params),
                           params.evaluate.max_samples, params.evaluate.seed, params.train.predict_batch_size,
                           tuple(params.evaluate.three_dof), params.train)
    from geodistill.training.checkpoint import DISTILLED_MODELS
    blocks = {f"{model} ": m[model] for model in DISTILLED_MODELS if model in m} or {"": m}
    for model, b in blocks.items():
        spread = b.get("std", {})
        for k in [k for k in ("2dof", "3dof", "3dof_own", "tile_centre") if k in b]:
            pm = lambda stat: f" ± {spread[k][stat]:.2f}" if k in spread else ""
            typer.echo(f"{b['method']}-{b['area']} {model}{k}: mean {b[k]['mean_m']:.2f}{pm('mean_m')} m, median "
                       f"{b[k]['median_m']:.2f}{pm('median_m')} m, within 1/3/5 m {100 * b[k]['within_1_m']:.1f}/"
                       f"{100 * b[k]['within_3_m']:.1f}/{100 * b[k]['within_5_m']:.1f}% (seeds {b['seeds']})")


@app.command()
@_friendly
def localize(checkpoint: Path = typer.Option(..., help="best.pt of a train-baseline run"),
             pano: Path = typer.Option(..., help="equirectangular panorama (W = 2H), north at the centre column"),
             sat: Path = typer.Option(..., help="square satellite image containing the camera"),
             mpp: float = typer.Option(..., help="metres per pixel of the satellite image"),
             yaw: float = typer.Option(0.0, help="heading of the panorama's centre column (degrees clockwise "
                                                 "from north); the panorama is turned back by it"),
             heatmap: Path = typer.Option(None, help="PNG of the score map over the satellite image")):
    """Localize one panorama in one satellite image; prints JSON (pixel, metres east/north)."""
    import json

    from geodistill.localize import localize_pair
    result = localize_pair(checkpoint, pano, sat, mpp, yaw, heatmap)
    typer.echo(json.dumps(result, indent=2))


@app.command()
@_friendly
def tables(config: Path = ConfigOpt,
           metrics: Path = typer.Option(Path("reports/metrics"), help="folder of the evaluate stages' JSON files"),
           out: Path = typer.Option(Path("reports/tables"), help="folder for <table>.md, .csv and .tex"),
           eval_dir: Path = typer.Option(None, "--eval", help="the evaluate stages' per-sample CSVs: also write "
                                                              "the claims table (paired bootstrap)"),
           dataset: str = typer.Option(None, help="dataset named in the captions; default: VIGOR when the "
                                                  "index names only VIGOR's cities, else the synthetic world")):
    """The paper's tables (Markdown, CSV, LaTeX) from the metrics files, published VIGOR numbers beside."""
    from geodistill.reports.runs import ReportError
    from geodistill.reports.tables import build_tables, describe_dataset, load_published, scoring_note, write_tables
    params = _params(config)
    if not metrics.is_dir():
        raise UserError(f"metrics folder not found: {metrics}")
    if eval_dir is not None and not eval_dir.is_dir():
        raise UserError(f"per-sample predictions folder not found: {eval_dir}")
    try:
        built = build_tables(params, metrics, load_published())
        if eval_dir is not None:
            from geodistill.reports.claims import claims_table
            built["claims"] = claims_table(params, eval_dir)
    except ReportError as e:
        raise UserError(str(e)) from None
    write_tables(built, out, (dataset or describe_dataset(params, config)) + scoring_note(params))
    typer.echo(", ".join(f"{name} ({len(t)} rows)" for name, t in built.items()) + f" -> {out}")


@app.command()
@_friendly
def readme(tables_dir: Path = typer.Option(Path("reports/tables"), "--tables", help="output of the tables stage"),
           readme_path: Path = typer.Option(Path("README.md"), "--readme", help="file with table blocks")):
    """Copy generated tables into the README's `<!-- table:NAME -->` blocks (after `dvc repro`)."""
    from geodistill.reports.readme import update_readme
    if not readme_path.is_file():
        raise UserError(f"README not found: {readme_path}")
    names = update_readme(readme_path, tables_dir)
    typer.echo(f"{readme_path}: {', '.join(names) or 'no table blocks'} <- {tables_dir}")


@app.command()
@_friendly
def figures(config: Path = ConfigOpt,
            eval_dir: Path = typer.Option(Path("data/eval"), "--eval", help="the evaluate stages' per-sample CSVs"),
            runs: Path = typer.Option(Path("data"), help="folder holding baselines/, distill/ and orientation/"),
            out: Path = typer.Option(Path("reports/figures"), help="folder for the PNG figures"),
            index: Path = typer.Option(Path("data/index.csv"), help="sample table, for the qualitative examples"),
            qualitative: bool = typer.Option(True, help="also draw teacher and student heatmaps (loads last.pt)"),
            dataset: str = typer.Option(None, help="dataset named in the titles (default as for `tables`)"),
            plots: Path = typer.Option(None, help="also write the training curves here, one CSV per run "
                                                  "(dvc plots)")):
    """The paper's figures (PNG): error CDF, FoV sweep, training curves, orientation error, examples."""
    from geodistill.reports.figures import write_figures
    from geodistill.reports.runs import ReportError
    from geodistill.reports.tables import describe_dataset
    params = _params(config)
    for path in (eval_dir, runs):
        if not path.is_dir():
            raise UserError(f"folder not found: {path}")
    try:
        written = write_figures(params, eval_dir, runs, out, dataset or describe_dataset(params, config),
                                index if qualitative else None, plots)
    except ReportError as e:
        raise UserError(str(e)) from None
    typer.echo(f"{len(written)} figures -> {out}: " + ", ".join(p.name for p in written))


@app.command()
@_friendly
def download(dataset: str = typer.Argument(..., help="vigor or kitti (a dataset of sources.yaml)"),
             root: Path = typer.Option(..., help="dataset root to fill (created if missing)"),
             config: Path = typer.Option(None, "--config", "-c", help="params file (stage download): the "
                                         "archives are its data.archives, the sources file its data.manifest"),
             source: list[str] = typer.Option(None, "--source", help="NAME=PATH_OR_URL, repeatable: an archive "
                                                  "you obtained (e.g. Chicago=/data/Chicago.zip) or a local "
                                                  "copy of a pinned file (its path under the root as NAME)"),
             manifest: Path = typer.Option(None, help="sources file to use instead of the packaged sources.yaml"),
             retries: int = typer.Option(5, help="retries per file after a connection error or 5xx answer")):
    """Obtain a real dataset: fetch pinned files (resumable, verified), extract archives safely."""
    from geodistill.data.archives import ArchiveError
    from geodistill.data.download import DownloadError, download_dataset, parse_sources
    if retries < 0:
        raise UserError(f"--retries must be >= 0, got {retries}")
    sources, pass_as = {}, "pass --source {name}=PATH_OR_URL"
    if config is not None:
        data = _params(config).data
        if data.source != dataset:
            raise UserError(f"{config}: data.source is {data.source!r}, not {dataset!r}")
        sources, manifest = dict(data.archives), manifest or data.manifest
        pass_as = f"set data.archives.{{name}} in {config}"
    try:
        sources |= parse_sources(source or [])
        result = download_dataset(dataset, root, sources, manifest=manifest, retries=retries, pass_as=pass_as)
    except (DownloadError, ArchiveError) as e:
        raise UserError(str(e)) from None
    for name, what in result.items():
        typer.echo(f"{name}: {what}")
    typer.echo(f"{dataset} complete in {root}; check it with `geodistill verify-data --root {root}`")


@app.command()
@_friendly
def preset(name: str = typer.Argument(..., help="a preset of configs/ (vigor, kitti, synthetic-full, synthetic-large, smoke)"),
           root: Path = typer.Option(None, help="the dataset root (sets data.root; e.g. /data/VIGOR)"),
           presets: Path = typer.Option(Path("configs"), help="folder of the presets"),
           out: Path = typer.Option(Path("params.yaml"), help="params file to write")):
    """Switch the pipeline onto a preset: params.yaml becomes configs/<name>.yaml (validated first),
    with data.root set to --root. Back to the synthetic default: `git checkout params.yaml`."""
    import re

    import yaml

    from geodistill.config import parse_params
    from geodistill.io import write_text
    source = presets / f"{name}.yaml"
    if not source.is_file():
        known = ", ".join(sorted(q.stem for q in presets.glob("*.yaml"))) or "none"
        raise UserError(f"no preset {name!r}: {source} not found (presets in {presets}: {known})")
    text = source.read_text()
    if root is not None:
        text, n = re.subn(r"(?m)^(data:.*\n(?:[ \t]+.*\n)*?[ \t]+root:[ \t]*)[^#\n]*?([ \t]*(#.*)?)$",
                          lambda m: f"{m.group(1)}{root}{m.group(2)}", text, count=1)
        if not n:
            raise UserError(f"{source}: no `data.root` line to set")
    params = parse_params(yaml.safe_load(text), str(source))
    write_text(out, text)
    typer.echo(f"{out} <- {source} (data.source {params.data.source}, data.root {params.data.root}); "
               "`dvc repro` now runs this preset; `git checkout params.yaml` goes back")
    if params.data.download:
        typer.echo(f"stage download@{params.data.source} fills {params.data.root} from the archives under "
                   f"data.archives in {out}: set their paths first")
    elif params.data.source != "synthetic" and not Path(params.data.root).is_dir():
        typer.echo(f"note: {params.data.root} does not exist yet: unpack the dataset there, or set "
                   f"data.download: [{params.data.source}] and data.archives in {out}")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
