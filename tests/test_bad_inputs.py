"""Every bad input gets one clear line and loses nothing: a corpus of user mistakes (issue #28).

Each row is one mistake a user made: it writes the bad input into a fresh folder, runs the
`geodistill` command as the user did, and checks that the command
- exits with code 2 (verify-data: 1, it found problems and lists them),
- prints one `error:` line that names the culprit (the file, the key or the value),
- prints no traceback,
- writes, changes and deletes nothing in that folder (outputs never appear, inputs stay as they were).

The smoke world, its sample table and BEVs, and one-epoch runs (baseline, orientation,
distillation) are built once per session.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import REPO
from geodistill.config import parse_params
from geodistill.data import bev as bev_module
from geodistill.data.bev import render_all
from geodistill.data.index import build_index, write_index
from geodistill.data.synth.writer import write_world
from geodistill.distill.teacher_student import train_distill_seeds
from geodistill.training.baseline import build_model, train_baseline_seeds
from geodistill.training.orientation import train_orientation
from stages.cli import app

SEED = 2023
VARIANT = "geodistill-g2s_vgg-cross"
LABELS = "splits__corrected/Ashford/same_area_balanced_train__corrected.txt"


@dataclass
class World:
    """The session's smoke world and tiny runs, all under `root` (read-only for the rows)."""

    root: Path
    raw: dict                                   # the params, as YAML would give them

    def __post_init__(self):
        self.world, self.index, self.bev, self.config = (self.root / name for name in
                                                         ("world", "index.csv", "bev", "params.yaml"))
        self.run = self.root / "baselines" / "g2s_vgg-cross"                       # the trained baseline
        self.orient = self.root / "orientation" / "cross" / "test_predictions.csv"

    def pano(self, k: int = 0) -> Path:
        return sorted((self.world / "Ashford" / "panorama").iterdir())[k]

    def sat(self, k: int = 0) -> Path:
        return sorted((self.world / "Ashford" / "satellite").iterdir())[k]


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    """The smoke world with one seed and one-epoch budgets, its index and BEVs, a trained g2s_vgg-cross
    baseline, a cross-area orientation run and a distillation of the baseline."""
    root = tmp_path_factory.mktemp("bad_inputs")
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["report"]["seeds"] = [SEED]
    raw["baselines"]["g2s_vgg"] |= {"epochs": 1, "max_train_samples": 4}
    raw["orientation"] |= {"areas": ["cross"], "epochs": 1, "max_train_samples": 8}
    raw["train"]["max_val_samples"] = 4
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    w, params = World(root, raw), parse_params(raw)
    write_world(params.synth, w.world)
    write_index(build_index(w.world, params.index), w.index)
    panos = sorted(pd.read_csv(w.index).pano_path.unique())
    render_all(panos, params.bev.size, params.bev.mpp, params.bev.camera_height_m, w.bev, 16, 1)
    train_baseline_seeds(w.index, w.run, "g2s_vgg", "cross", params)
    train_orientation(w.index, w.bev, root / "orientation", root / "orientation.json", params.orientation, params.bev)
    train_distill_seeds(w.index, root / "baselines", root / "distill" / VARIANT, VARIANT, params)
    return w


# -- writing a bad input ------------------------------------------------------------------------

def params_with(w: World, tmp: Path, edit: Callable[[dict], None]) -> Path:
    """tmp/params.yaml: the session's params with `edit` applied."""
    raw = yaml.safe_load(yaml.safe_dump(w.raw))
    edit(raw)
    (tmp / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return tmp / "params.yaml"


def params_text(tmp: Path, text: str | bytes) -> Path:
    path = tmp / "params.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def world_copy(w: World, tmp: Path, copied: tuple[str, ...] = ()) -> Path:
    """tmp/world: the label files and dataset.json copied, the image folders linked (those named
    in `copied`, e.g. "Ashford/panorama", copied so that a row may break one of their files)."""
    root = tmp / "world"
    shutil.copytree(w.world / "splits__corrected", root / "splits__corrected")
    shutil.copy(w.world / "dataset.json", root)
    for folder in sorted(w.world.glob("*/*")):
        if folder.parent.name != "splits__corrected":
            rel = folder.relative_to(w.world).as_posix()
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(folder, target) if rel in copied else target.symlink_to(folder)
    return root


def label_edit(w: World, tmp: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """A world copy whose Ashford same-area train labels are `edit`ed (a list of lines)."""
    root = world_copy(w, tmp)
    path = root / LABELS
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    return root


def delta(value: str) -> Callable[[list[str]], list[str]]:
    """An edit setting the first label line's first pixel delta to `value`."""
    def edit(lines: list[str]) -> list[str]:
        tok = lines[0].split()
        tok[2] = value
        return [" ".join(tok)] + lines[1:]
    return edit


def truncated(source: Path, target: Path) -> Path:
    """`target`: the first half of `source`, as an interrupted download leaves it."""
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def reshaped(source: Path, target: Path, size: tuple[int, int]) -> Path:
    """`target`: `source` resized to (width, height), same format."""
    import cv2
    cv2.imwrite(str(target), cv2.resize(cv2.imread(str(source)), size))
    return target


def index_with(w: World, tmp: Path, **first_row) -> Path:
    """tmp/index.csv: the session's sample table with its first row's columns set."""
    table = pd.read_csv(w.index)
    for column, value in first_row.items():
        table.loc[0, column] = value
    table.to_csv(tmp / "index.csv", index=False)
    return tmp / "index.csv"


def run_copy(w: World, tmp: Path, source: Path, name: str, drop: str = "", text: str = "") -> Path:
    """tmp/<name>: a copy of a trained run folder; `drop` (a file under it) deleted, or replaced
    by `text` when given."""
    out = tmp / name
    shutil.copytree(source, out)
    if drop:
        (out / drop).unlink()
        if text:
            (out / drop).write_text(text)
    return out


def fake_run(w: World, tmp: Path, name: str, meta_method: str, weights_method: str, area: str = "cross") -> Path:
    """tmp/<name>/seed<s>/best.pt: a checkpoint recording `meta_method` whose weights are those of
    a fresh `weights_method` model."""
    params = parse_params(w.raw)
    folder = tmp / name / f"seed{SEED}"
    folder.mkdir(parents=True)
    torch.save({"method": meta_method, "area": area, "seed": SEED, "camera_height_m": 2.0, "epoch": 0,
                "method_params": params.baselines[meta_method].model_dump(mode="json"),
                "model": build_model(params.baselines[weights_method], 2.0, 0).state_dict()}, folder / "best.pt")
    return tmp / name


def relabelled(w: World, tmp: Path, area: str) -> Path:
    """tmp/baselines/g2s_vgg-cross: the trained baseline, its checkpoint relabelled to `area`."""
    out = run_copy(w, tmp, w.run, "baselines/g2s_vgg-cross")
    state = torch.load(out / f"seed{SEED}" / "best.pt", weights_only=True)
    torch.save({**state, "area": area}, out / f"seed{SEED}" / "best.pt")
    return tmp / "baselines"


def orientation_csv(w: World, tmp: Path, area: str = "cross", **values) -> Path:
    """tmp/orient.csv: yaw predictions for the `area`-area test panoramas, `values` set on every row."""
    table = pd.read_csv(w.index).query(f"area == '{area}' and split == 'test'")[["pano_path"]]
    table = table.assign(**{"true_yaw_deg": 0.0, "pred_yaw_deg": 0.0, **values})
    table.to_csv(tmp / "orient.csv", index=False)
    return tmp / "orient.csv"


def fail_in(mp, target, name: str, error: BaseException, after: int = 0) -> None:
    """Make `target.name` raise `error` from its (after + 1)-th call on (a kill, a full disk)."""
    real, calls = getattr(target, name), []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            raise error
        return real(*args, **kwargs)
    mp.setattr(target, name, failing)


# -- the commands, as a user types them ----------------------------------------------------------

def index_cmd(config: Path, root: Path, tmp: Path) -> list[str]:
    return ["index", "--config", str(config), "--root", str(root), "--out", str(tmp / "out.csv")]


def verify_cmd(w: World, root: Path) -> list[str]:
    return ["verify-data", "--config", str(w.config), "--root", str(root), "--workers", "1"]


def render_cmd(w: World, index: Path, tmp: Path) -> list[str]:
    return ["render-bev", "--config", str(w.config), "--index", str(index), "--out", str(tmp / "bev")]


def train_cmd(config: Path, w: World, tmp: Path, method: str = "g2s_vgg", area: str = "cross",
              index: Path | None = None, out: Path | None = None) -> list[str]:
    return ["train-baseline", "--config", str(config), "--method", method, "--area", area,
            "--index", str(index or w.index), "--out", str(out or tmp / "run")]


def orientation_cmd(config: Path, w: World, tmp: Path, out: Path | None = None) -> list[str]:
    return ["train-orientation", "--config", str(config), "--index", str(w.index), "--bev", str(w.bev),
            "--out", str(out or tmp / "orientation"), "--metrics", str(tmp / "orientation.json")]


def distill_cmd(w: World, tmp: Path, baselines: Path | None = None, out: Path | None = None,
                variant: str = VARIANT) -> list[str]:
    return ["distill", "--config", str(w.config), "--variant", variant, "--index", str(w.index),
            "--baselines", str(baselines or w.root / "baselines"), "--out", str(out or tmp / "distill")]


def evaluate_cmd(w: World, tmp: Path, run: Path | None = None, index: Path | None = None,
                 orientation: Path | None = None) -> list[str]:
    return ["evaluate", "--run", str(run or w.run), "--index", str(index or w.index),
            "--orientation", str(orientation or w.orient), "--predictions", str(tmp / "pred"),
            "--metrics", str(tmp / "metrics.json")]


def localize_cmd(w: World, tmp: Path, *extra: str, pano: Path | None = None, sat: Path | None = None,
                 checkpoint: Path | None = None, mpp: str = "0.25") -> list[str]:
    return ["localize", "--checkpoint", str(checkpoint or w.run / f"seed{SEED}" / "best.pt"),
            "--pano", str(pano or w.pano()), "--sat", str(sat or w.sat()), "--mpp", mpp, *extra]


def bev_cmd(w: World, tmp: Path, *extra: str, pano: Path | None = None, out: str = "bev.png") -> list[str]:
    return ["bev", "--pano", str(pano or w.pano()), "--out", str(tmp / out), *extra]


# -- the corpus ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mistake:
    """One row: `prepare(world, tmp, monkeypatch)` writes the bad input under tmp and returns the
    command line; the `error:` line (verify-data, code 1: its report) must contain every string of
    `culprit(world, tmp)`, and none of `never`."""

    name: str
    prepare: Callable
    culprit: Callable
    code: int = 2
    never: tuple[str, ...] = field(default=())


M = Mistake
CORPUS = [
    # params: bad before any work, every problem naming the file and the key
    M("params-duplicate-top-level-key", lambda w, t, mp: index_cmd(params_text(
        t, w.config.read_text() + "bev: {size: 32, mpp: 0.5, camera_height_m: 2.0, min_pano_width: 16, "
                                  "workers: 1}\n"), w.world, t),
      lambda w, t: [f"{t / 'params.yaml'}:", "duplicate key 'bev' (first on line"]),
    M("params-bool-for-int", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["baselines"]["g2s_vgg"].update(epochs=True)), w.world, t),
      lambda w, t: ["params.yaml: baselines.g2s_vgg.epochs", "(got true)"]),
    M("params-bool-in-a-size-list", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["synth"].update(pano_size=[256, True])), w.world, t),
      lambda w, t: ["synth.pano_size.1", "(got true)"]),
    M("params-zero-pano-size", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["baselines"]["g2s_vgg"].update(pano_size=[0, 0])), w.world, t),
      lambda w, t: ["baselines.g2s_vgg.pano_size.0", "greater than or equal to 8 (got 0)"]),
    M("params-fractional-epochs", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["orientation"].update(epochs=2.5)), w.world, t),
      lambda w, t: ["orientation.epochs", "(got 2.5)"]),
    M("params-word-for-a-number", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["orientation"].update(lr="fast")), w.world, t),
      lambda w, t: ["orientation.lr", "(got 'fast')"]),
    M("params-reversed-range-says-got-once", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["synth"]["cities"][0].update(block_m=[90, 60])), w.world, t),
      lambda w, t: ["synth.cities.0.block_m: range must be [low, high] with low <= high, got [90.0, 60.0]"],
      never=("(got",)),
    M("params-zero-bev-size", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["bev"].update(size=0)), w.world, t), lambda w, t: ["bev.size", "(got 0)"]),
    M("params-repeated-seed", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["report"].update(seeds=[1, 1])), w.world, t),
      lambda w, t: ["report.seeds: values must be distinct, got [1, 1]"], never=("(got",)),
    M("params-typo-key", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["synth"].update(pano_widht=256)), w.world, t),
      lambda w, t: ["synth.pano_widht: unknown key (allowed: seed,"]),
    M("params-variant-of-unknown-method", lambda w, t, mp: index_cmd(params_with(
        w, t, lambda r: r["distill"]["variants"][VARIANT].update(method="g2s_vit")), w.world, t),
      lambda w, t: [f"distill.variants.{VARIANT}.method: unknown method 'g2s_vit'"]),
    M("params-yaml-syntax-error", lambda w, t, mp: index_cmd(params_text(
        t, "data: {source: synthetic}\nsynth:\n  seed: [2023\n  workers: 1\n"), w.world, t),
      lambda w, t: [f"{t / 'params.yaml'}:4:", "not valid YAML:", "while parsing a flow sequence"]),
    M("params-not-utf8", lambda w, t, mp: index_cmd(params_text(
        t, w.config.read_bytes().replace(b"Ashford", b"Ashf\xf6rd", 1)), w.world, t),
      lambda w, t: [f"{t / 'params.yaml'}: not UTF-8 text (byte 0xf6 at offset"]),
    M("params-empty-file", lambda w, t, mp: index_cmd(params_text(t, "# nothing yet\n"), w.world, t),
      lambda w, t: [f"{t / 'params.yaml'}: empty (expected the sections data, synth, index,"]),
    M("params-a-list", lambda w, t, mp: index_cmd(params_text(t, "- data\n- synth\n"), w.world, t),
      lambda w, t: ["params.yaml: expected a mapping of sections (data, synth,", "got a list"]),
    M("params-missing-file", lambda w, t, mp: index_cmd(t / "nope.yaml", w.world, t),
      lambda w, t: [f"{t / 'nope.yaml'}: params file not found"]),
    M("params-unknown-timm-backbone", lambda w, t, mp: train_cmd(params_with(
        w, t, lambda r: r["baselines"]["g2s_vgg"]["encoder"].update(backbone="resnet999")), w, t),
      lambda w, t: ["baselines.g2s_vgg: unknown timm backbone 'resnet999'"]),
    M("params-unknown-ccvpe-feature-level", lambda w, t, mp: train_cmd(params_with(
        w, t, lambda r: r["baselines"]["ccvpe"].update(ground_level=9)), w, t, "ccvpe"),
      lambda w, t: ["baselines.ccvpe: ground_level 9: backbone 'efficientnet_b0' has feature levels 0..4"]),
    M("params-unknown-orientation-feature-level", lambda w, t, mp: orientation_cmd(params_with(
        w, t, lambda r: r["orientation"]["head"].update(level=7)), w, t),
      lambda w, t: ["orientation: head.level 7: backbone 'resnet18' has feature levels 0..4"]),
    M("params-unknown-orientation-backbone", lambda w, t, mp: orientation_cmd(params_with(
        w, t, lambda r: r["orientation"].update(backbone="resnet_18")), w, t),
      lambda w, t: ["orientation: unknown timm backbone 'resnet_18'"]),

    # labels: non-finite or impossible values never reach a sample table
    M("labels-nan-delta-index", lambda w, t, mp: index_cmd(w.config, label_edit(w, t, delta("nan")), t),
      lambda w, t: [f"{t / 'world' / LABELS}:1: pixel deltas must be finite numbers, got nan"]),
    M("labels-inf-delta-index", lambda w, t, mp: index_cmd(w.config, label_edit(w, t, delta("inf")), t),
      lambda w, t: [f"{LABELS}:1: pixel deltas must be finite numbers, got inf"]),
    M("labels-nan-delta-verify", lambda w, t, mp: verify_cmd(w, label_edit(w, t, delta("NaN"))),
      lambda w, t: [f"{LABELS}:1: pixel deltas must be finite numbers, got NaN"], code=1),
    M("labels-camera-outside-tile-index", lambda w, t, mp: index_cmd(w.config, label_edit(w, t, delta("5000")), t),
      lambda w, t: [f"{LABELS}:1: the camera (5000,", "lies outside that 128-px tile"]),
    M("labels-camera-outside-tile-verify", lambda w, t, mp: verify_cmd(w, label_edit(w, t, delta("-65"))),
      lambda w, t: [f"{LABELS}:1: the camera (-65,", "lies outside that 128-px tile (deltas within +-64)"], code=1),
    M("labels-duplicate-line-verify", lambda w, t, mp: verify_cmd(w, label_edit(w, t, lambda ls: ls + ls[:1])),
      lambda w, t: [f"{LABELS}:", "is listed twice (first on line 1)"], code=1),
    M("labels-duplicate-line-index", lambda w, t, mp: index_cmd(w.config, label_edit(w, t, lambda ls: ls + ls[:1]), t),
      lambda w, t: [f"{LABELS}:", "is listed twice (first on line 1)"]),
    M("labels-twelve-tokens", lambda w, t, mp: index_cmd(w.config, label_edit(
        w, t, lambda ls: [" ".join(ls[0].split()[:12])] + ls[1:]), t),
      lambda w, t: [f"{LABELS}:1: expected 13 tokens, got 12"]),
    M("labels-not-utf8", lambda w, t, mp: index_cmd(w.config, _latin1_labels(w, t), t),
      lambda w, t: [f"{LABELS}: not UTF-8 text (byte 0xe9"]),
    M("root-without-splits", lambda w, t, mp: index_cmd(w.config, _dir(t / "empty"), t),
      lambda w, t: [f"{t / 'empty'}: not a VIGOR root (no splits__corrected/ directory)"]),

    # images: shape and completeness checked by verify-data, and by every reader
    M("panorama-not-2to1-verify", lambda w, t, mp: verify_cmd(w, _broken_world(
        w, t, "Ashford/panorama", lambda src, dst: reshaped(src, dst, (256, 256)))),
      lambda w, t: ["Ashford/panorama/", ": 256x256, not equirectangular (width = 2 x height)"], code=1),
    M("tile-not-square-verify", lambda w, t, mp: verify_cmd(w, _broken_world(
        w, t, "Ashford/satellite", lambda src, dst: reshaped(src, dst, (128, 96)))),
      lambda w, t: ["Ashford/satellite/satellite_", ": 128x96, not square"], code=1),
    M("truncated-jpeg-verify", lambda w, t, mp: verify_cmd(w, _broken_world(w, t, "Ashford/panorama", truncated)),
      lambda w, t: ["Ashford/panorama/", ": truncated JPEG (no end-of-image marker)"], code=1),
    M("truncated-jpeg-render-bev", lambda w, t, mp: render_cmd(w, index_with(
        w, t, pano_path=str(truncated(w.pano(), t / "half.jpg"))), t),
      lambda w, t: [f"cannot read panorama {t / 'half.jpg'} (truncated JPEG (no end-of-image marker))"]),
    M("missing-panorama-render-bev", lambda w, t, mp: render_cmd(w, index_with(
        w, t, pano_path=str(t / "gone.jpg")), t), lambda w, t: [f"cannot read panorama {t / 'gone.jpg'} (missing)"]),
    M("truncated-jpeg-bev", lambda w, t, mp: bev_cmd(w, t, pano=truncated(w.pano(), t / "half.jpg")),
      lambda w, t: [f"cannot read panorama {t / 'half.jpg'} (truncated JPEG"]),
    M("square-panorama-bev", lambda w, t, mp: bev_cmd(w, t, pano=reshaped(w.pano(), t / "sq.jpg", (128, 128))),
      lambda w, t: [f"panorama {t / 'sq.jpg'} is 128x128, not equirectangular"]),
    M("truncated-jpeg-localize", lambda w, t, mp: localize_cmd(w, t, pano=truncated(w.pano(), t / "half.jpg")),
      lambda w, t: [f"cannot read panorama {t / 'half.jpg'} (truncated JPEG"]),
    M("truncated-png-localize", lambda w, t, mp: localize_cmd(w, t, sat=truncated(w.sat(), t / "half.png")),
      lambda w, t: [f"cannot read satellite image {t / 'half.png'} (truncated PNG"]),
    M("non-square-tile-localize", lambda w, t, mp: localize_cmd(w, t, sat=reshaped(w.sat(), t / "wide.png", (128, 64))),
      lambda w, t: [f"satellite image {t / 'wide.png'} is 128x64; it must be square"]),

    # sample tables and orientation predictions
    M("empty-index-render-bev", lambda w, t, mp: render_cmd(w, _text(t / "index.csv", ""), t),
      lambda w, t: [f"{t / 'index.csv'}: empty file, not a sample table"]),
    M("wrong-columns-index-render-bev", lambda w, t, mp: render_cmd(w, _text(t / "index.csv", "path,city\na,b\n"), t),
      lambda w, t: [f"{t / 'index.csv'}: no column pano_path (it has path, city)"]),
    M("header-only-index-render-bev", lambda w, t, mp: render_cmd(w, _text(t / "index.csv", "pano_path\n"), t),
      lambda w, t: [f"{t / 'index.csv'}: no rows"]),
    M("infinite-camera-pixel-train", lambda w, t, mp: train_cmd(w.config, w, t, index=index_with(
        w, t, gt_row=float("inf"))), lambda w, t: [f"{t / 'index.csv'}: line 2: camera pixel", "(inf, "]),
    M("camera-pixel-outside-tile-evaluate", lambda w, t, mp: evaluate_cmd(w, t, index=index_with(
        w, t, gt_col=900.0)), lambda w, t: [f"{t / 'index.csv'}: line 2:", "900) is not inside its 128-px tile"]),
    M("orientation-csv-of-other-area", lambda w, t, mp: evaluate_cmd(w, t, orientation=orientation_csv(w, t, "same")),
      lambda w, t: [f"{t / 'orient.csv'}: no yaw prediction for", "cross-area test panoramas",
                    "cross/test_predictions.csv"]),
    M("orientation-csv-empty", lambda w, t, mp: evaluate_cmd(w, t, orientation=_text(t / "orient.csv", "\n")),
      lambda w, t: [f"{t / 'orient.csv'}: empty file, not orientation predictions"]),
    M("orientation-csv-nan-yaw", lambda w, t, mp: evaluate_cmd(w, t, orientation=orientation_csv(
        w, t, pred_yaw_deg=float("nan"))), lambda w, t: [f"{t / 'orient.csv'}: pred_yaw_deg of", "is nan, not"]),

    # checkpoints: a dead end is refused with what to delete; a wrong file is named
    M("baseline-best-deleted-rerun", lambda w, t, mp: train_cmd(w.config, w, t, out=run_copy(
        w, t, w.run, "run", f"seed{SEED}/best.pt")),
      lambda w, t: [f"{t / 'run' / f'seed{SEED}'}: best.pt missing or unreadable",
                    f"delete {t / 'run' / f'seed{SEED}' / 'last.pt'}"], never=("resuming", "best validation")),
    M("baseline-best-corrupt-rerun", lambda w, t, mp: train_cmd(w.config, w, t, out=run_copy(
        w, t, w.run, "run", f"seed{SEED}/best.pt", "not a checkpoint")),
      lambda w, t: [f"{t / 'run' / f'seed{SEED}'}: best.pt missing or unreadable", "delete"]),
    M("orientation-best-deleted-rerun", lambda w, t, mp: orientation_cmd(w.config, w, t, out=run_copy(
        w, t, w.root / "orientation", "orientation", "cross/best.pt")),
      lambda w, t: [f"{t / 'orientation' / 'cross'}: best.pt missing or unreadable",
                    f"delete {t / 'orientation' / 'cross' / 'last.pt'}"], never=("NoneType",)),
    M("distill-teacher-deleted-rerun", lambda w, t, mp: distill_cmd(w, t, out=run_copy(
        w, t, w.root / "distill" / VARIANT, "distill", f"seed{SEED}/teacher.pt")),
      lambda w, t: [f"{t / 'distill' / f'seed{SEED}'}: teacher.pt missing or unreadable", "delete"]),
    M("evaluate-best-deleted", lambda w, t, mp: evaluate_cmd(w, t, run=run_copy(
        w, t, w.run, "g2s_vgg-cross", f"seed{SEED}/best.pt")),
      lambda w, t: [f"{t / 'g2s_vgg-cross' / f'seed{SEED}'}: no best.pt"]),
    M("evaluate-text-file-named-best-pt", lambda w, t, mp: evaluate_cmd(w, t, run=run_copy(
        w, t, w.run, "g2s_vgg-cross", f"seed{SEED}/best.pt", "hello\n")),
      lambda w, t: [f"cannot read checkpoint {t / 'g2s_vgg-cross' / f'seed{SEED}' / 'best.pt'}: not a complete "
                    "PyTorch checkpoint"], never=("weights_only",)),
    M("evaluate-ccvpe-checkpoint-in-g2s-folder", lambda w, t, mp: evaluate_cmd(w, t, run=fake_run(
        w, t, "g2s_vgg-cross", "ccvpe", "ccvpe")),
      lambda w, t: [f"{t / 'g2s_vgg-cross' / f'seed{SEED}' / 'best.pt'} holds a ccvpe-cross model, not "
                    "g2s_vgg-cross (the name of its run folder)"]),
    M("evaluate-g2s-metadata-ccvpe-weights", lambda w, t, mp: evaluate_cmd(w, t, run=fake_run(
        w, t, "g2s_vgg-cross", "g2s_vgg", "ccvpe")),
      lambda w, t: [f"{t / 'g2s_vgg-cross' / f'seed{SEED}' / 'best.pt'}: its weights do not fit the g2s_vgg model",
                    "missing", "unexpected"]),
    M("evaluate-folder-without-seeds", lambda w, t, mp: evaluate_cmd(w, t, run=_dir(t / "g2s_vgg-cross")),
      lambda w, t: [f"{t / 'g2s_vgg-cross'}: no seed<s>/ folders"]),
    M("distill-from-baseline-of-other-area", lambda w, t, mp: distill_cmd(w, t, baselines=relabelled(w, t, "same")),
      lambda w, t: [f"{t / 'baselines' / 'g2s_vgg-cross' / f'seed{SEED}' / 'best.pt'} holds a g2s_vgg-same model"]),
    M("localize-with-orientation-checkpoint", lambda w, t, mp: localize_cmd(
        w, t, checkpoint=w.root / "orientation" / "cross" / "best.pt"),
      lambda w, t: [f"{w.root / 'orientation' / 'cross' / 'best.pt'} is not a localization checkpoint"]),

    # options
    M("localize-mpp-zero", lambda w, t, mp: localize_cmd(w, t, mpp="0"), lambda w, t: ["--mpp must be a positive "
                                                                                      "number, got 0.0"]),
    M("localize-mpp-nan", lambda w, t, mp: localize_cmd(w, t, mpp="nan"), lambda w, t: ["--mpp", "got nan"]),
    M("localize-yaw-inf", lambda w, t, mp: localize_cmd(w, t, "--yaw", "inf"),
      lambda w, t: ["--yaw must be a finite number, got inf"]),
    M("localize-heatmap-txt", lambda w, t, mp: localize_cmd(w, t, "--heatmap", str(t / "h.txt")),
      lambda w, t: [f"--heatmap {t / 'h.txt'}: OpenCV cannot write an image of that name"]),
    M("bev-out-without-extension", lambda w, t, mp: bev_cmd(w, t, out="x"),
      lambda w, t: [f"--out {t / 'x'}: OpenCV cannot write an image of that name"]),
    M("bev-mpp-nan", lambda w, t, mp: bev_cmd(w, t, "--mpp", "nan"), lambda w, t: ["--mpp", "got nan"]),
    M("bev-size-zero", lambda w, t, mp: bev_cmd(w, t, "--size", "0"), lambda w, t: ["--size", "got 0"]),
    M("train-unknown-area", lambda w, t, mp: train_cmd(w.config, w, t, area="middle"),
      lambda w, t: ["--area must be same or cross, got 'middle'"]),
    M("train-unknown-method", lambda w, t, mp: train_cmd(w.config, w, t, method="g2s_vit"),
      lambda w, t: ["unknown method 'g2s_vit'"]),
    M("distill-unknown-variant", lambda w, t, mp: distill_cmd(w, t, variant="geodistill-sift"),
      lambda w, t: ["unknown distill variant 'geodistill-sift'"]),
    M("download-negative-retries", lambda w, t, mp: ["download", "vigor", "--root", str(t / "VIGOR"), "--retries",
                                                     "-1"], lambda w, t: ["--retries must be >= 0, got -1"]),
    M("verify-missing-root", lambda w, t, mp: verify_cmd(w, t / "nope"),
      lambda w, t: [f"dataset root not found: {t / 'nope'}"]),
    M("evaluate-missing-orientation", lambda w, t, mp: evaluate_cmd(w, t, orientation=t / "nope.csv"),
      lambda w, t: [f"orientation predictions not found: {t / 'nope.csv'}"]),
    M("preset-unknown", lambda w, t, mp: ["preset", "vigr", "--presets", str(REPO / "configs"), "--out",
                                          str(t / "p.yaml")], lambda w, t: ["no preset 'vigr'", "vigor"]),

    # the machine: a full disk, an interrupt
    M("disk-full-writing-index", lambda w, t, mp: _disk_full(mp, pd.DataFrame, "to_csv") or
      index_cmd(w.config, w.world, t), lambda w, t: [f"{t / 'out.csv'}: the disk is full"]),
    M("disk-full-rendering-bev", lambda w, t, mp: _disk_full(mp, bev_module, "render_bev") or
      render_cmd(w, w.index, t), lambda w, t: [f"{t / 'bev'}: the disk is full: free some space and rerun"]),
    M("interrupted-render-bev", lambda w, t, mp: fail_in(mp, bev_module, "render_bev", KeyboardInterrupt(), 3) or
      render_cmd(w, w.index, t), lambda w, t: ["interrupted: render-bev stopped; nothing half-written was kept"]),
    M("interrupted-index", lambda w, t, mp: fail_in(mp, pd.DataFrame, "to_csv", KeyboardInterrupt()) or
      index_cmd(w.config, w.world, t), lambda w, t: ["interrupted: index stopped"]),
]


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _latin1_labels(w: World, tmp: Path) -> Path:
    """A world copy whose Ashford same-area train labels are Latin-1 text (an é in the first line)."""
    root = world_copy(w, tmp)
    path = root / LABELS
    path.write_bytes(path.read_bytes().replace(b" ", b" \xe9 ", 1))
    return root


def _broken_world(w: World, tmp: Path, folder: str, spoil: Callable[[Path, Path], Path]) -> Path:
    """A world copy whose first file in `folder` (e.g. Ashford/panorama) is `spoil`ed in place."""
    root = world_copy(w, tmp, (folder,))
    victim = sorted((root / folder).iterdir())[0]
    original = tmp / ("original" + victim.suffix)
    shutil.move(victim, original)
    spoil(original, victim)
    original.unlink()
    return root


def _disk_full(mp, target, name: str) -> None:
    """`target.name` writes a little to the file it was given, then fails as a full disk does
    (OSError ENOSPC from a write: no file name in it)."""
    def full(*args, **kwargs):
        path = next((a for a in args[1:] if isinstance(a, (str, Path))), None)
        if path is not None:
            Path(path).write_bytes(b"half a row")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    mp.setattr(target, name, full)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file (sha256) and folder under `folder`, links as links: what a row must leave as it was."""
    out = {}
    for here, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(here) / name
            rel = path.relative_to(folder).as_posix()
            out[rel] = ("link" if path.is_symlink() else "dir" if path.is_dir()
                        else hashlib.sha256(path.read_bytes()).hexdigest())
    return out


@pytest.mark.parametrize("mistake", CORPUS, ids=[m.name for m in CORPUS])
def test_a_mistake_gets_one_clear_line_and_loses_nothing(mistake: Mistake, world, tmp_path, monkeypatch):
    with monkeypatch.context() as mp:
        args = mistake.prepare(world, tmp_path, mp)
        before = snapshot(tmp_path)
        res = CliRunner().invoke(app, args)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    check(mistake, world, tmp_path, before, res.exit_code, res.stdout, res.stderr)


@pytest.mark.parametrize("name", ["params-duplicate-top-level-key", "labels-nan-delta-verify",
                                  "truncated-jpeg-render-bev", "orientation-best-deleted-rerun"])
def test_a_mistake_run_as_dvc_runs_it(name: str, world, tmp_path):
    """The same corpus rows through `python -m stages.<stage>`, in a process of their own."""
    mistake = next(m for m in CORPUS if m.name == name)
    command, *args = mistake.prepare(world, tmp_path, None)
    before = snapshot(tmp_path)
    res = subprocess.run([sys.executable, "-m", f"stages.{command.replace('-', '_')}", *args], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    check(mistake, world, tmp_path, before, res.returncode, res.stdout, res.stderr)


def check(mistake: Mistake, world: World, tmp: Path, before: dict, code: int, stdout: str, stderr: str) -> None:
    """The row's exit code, its one `error:` line (verify-data: its report) naming the culprit, no
    traceback, and `tmp` as it was before the command."""
    assert code == mistake.code, stdout + stderr
    assert "Traceback" not in stdout + stderr
    if mistake.code == 2:
        lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, stderr
        shown = lines[0]
    else:
        shown = stdout
    for culprit in mistake.culprit(world, tmp):
        assert culprit in shown, shown
    for text in mistake.never:
        assert text not in stdout + stderr, stdout + stderr
    assert snapshot(tmp) == before                            # nothing written, changed or lost


def test_the_corpus_covers_the_issue():
    assert len(CORPUS) >= 40 and len({m.name for m in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("root", ["/data/a#b", "/data/VIGOR #2", "/x: 2", "'quoted'", "-", "null", "/data/ünï"])
def test_a_preset_root_is_kept_exactly_whatever_its_characters(root, tmp_path):
    res = CliRunner().invoke(app, ["preset", "vigor", "--root", root, "--presets", str(REPO / "configs"),
                                   "--out", str(tmp_path / "params.yaml")])
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["data"]["root"] == root
