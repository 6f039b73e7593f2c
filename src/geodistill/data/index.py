"""The sample table every later stage reads: one row per positive sample and protocol.

    geodistill index --config params.yaml --root data/world --out data/index.csv

Columns: pano_path, sat_path, city, split (train|val|test), area (same|cross), gt_row, gt_col
(camera pixel in the satellite tile as stored), mpp (metres per pixel of that tile), yaw_deg,
sat_size, tiles (the file names of all four tiles of the label line, positive first, joined by
';': samples sharing any of them must not meet in one weakly supervised batch). Only the
positive (first) satellite is used as the sample's satellite image.

- same-area: for each of `index.same_area_cities`, the same-area train list is split into
  train/val and the same-area test list is `test`;
- cross-area: the full list (pano_label_balanced) of each `index.cross_area_train` city is
  split into train/val, that of each `index.cross_area_test` city is `test`. With
  `index.cross_area_val` naming some training cities, those are held out whole (all `val`, none
  trained on) and the other training cities are all `train`: validation on cities the model
  has not seen, as the cross-area test asks of it.
The val share is `index.val_fraction` of each list, drawn from a generator seeded by
(`index.seed`, CRC32 of "<area>/<city>"), so it never depends on process or dict order.

`index.gps_noise_m` > 0 makes the training rows' labels noisy GPS fixes (weak supervision's
setting: the positive tile is chosen from where the GPS puts the camera). Each train row's
position moves by Gaussian noise (that std per axis, metres; seeded by (`index.seed`, CRC32 of
"gps/<area>/<city>")); its positive becomes the listed tile (of the four) whose centre is
nearest to the noisy position, and gt_row, gt_col are the noisy position in that tile (clipped
to it): what a fully supervised method learns from. Val and test rows keep the exact labels.

Tile side and metres per pixel come from <root>/dataset.json when the root has one (synthetic
world), else from `index.sat_size` and `index.mpp[<city>]` (real VIGOR). VIGOR panoramas are
north-aligned (north at the centre column), so yaw_deg is 0.0 for every row.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from geodistill.config import IndexParams
from geodistill.data.vigor import (DATASET_JSON, SPLIT_DIR, FormatError, city_dirs, label_path, pano_path,
                                   read_labels, sat_path)
from geodistill.geometry import label_to_pixel
from geodistill.io import atomic_file

COLUMNS = ["pano_path", "sat_path", "city", "split", "area", "gt_row", "gt_col", "mpp", "yaw_deg", "sat_size",
           "tiles"]
AREAS = ["same", "cross"]
SPLITS = ["train", "val", "test"]


def build_index(root: Path, params: IndexParams) -> pd.DataFrame:
    """Read a VIGOR-layout root and return the sample table (columns COLUMNS, deterministic order)."""
    root = Path(root)
    _check_cities(root, params)
    tiles = _tile_geometry(root, params)
    same, train, test = (list(dict.fromkeys(cs)) for cs in
                         (params.same_area_cities, params.cross_area_train, params.cross_area_test))
    jobs = ([("same", c, "train", True) for c in same] + [("same", c, "test", False) for c in same]
            + [("cross", c, "all", True) for c in train] + [("cross", c, "all", False) for c in test])
    parts = [_rows(root, area, city, which, trainable, params, *tiles(city))
             for area, city, which, trainable in jobs]
    table = pd.concat(parts, ignore_index=True)[COLUMNS]
    key = pd.DataFrame({"area": table.area.map(AREAS.index), "city": table.city,
                        "split": table.split.map(SPLITS.index), "line": np.arange(len(table))})
    return table.loc[key.sort_values(list(key.columns)).index].reset_index(drop=True)


def _check_cities(root: Path, params: IndexParams) -> None:
    available = city_dirs(root)
    named = dict.fromkeys(params.same_area_cities + params.cross_area_train + params.cross_area_test)
    unknown = [c for c in named if c not in available]
    if unknown:
        raise FormatError(f"{root / SPLIT_DIR}: no label directory for {', '.join(unknown)} named in "
                          f"index params (available: {', '.join(available) or 'none'})")


def _tile_geometry(root: Path, params: IndexParams):
    """A function city -> (tile side in pixels, metres per pixel), from dataset.json or params."""
    meta_path = root / DATASET_JSON
    if not meta_path.is_file():
        def from_params(city: str) -> tuple[int, float]:
            if city not in params.mpp:
                raise FormatError(f"no metres per pixel for city {city!r}: add it to index.mpp "
                                  f"(the root has no {DATASET_JSON})")
            return params.sat_size, params.mpp[city]
        return from_params

    try:
        meta = json.loads(meta_path.read_text())
        size, cities = int(meta["sat_size"]), meta["cities"]
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"{meta_path}: not a valid dataset description ({type(e).__name__}: {e})") from None

    def from_meta(city: str) -> tuple[int, float]:
        try:
            return size, float(cities[city]["mpp"])
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{meta_path}: no cities.{city}.mpp entry") from None
    return from_meta


def _rows(root: Path, area: str, city: str, which: str, trainable: bool, params: IndexParams,
          size: int, mpp: float) -> pd.DataFrame:
    lines = read_labels(label_path(root, city, which), size)
    split = _splits(len(lines), area, city, trainable, params)
    positive = [0] * len(lines)
    pixels = [label_to_pixel(*ln.deltas[0], size) for ln in lines]
    if params.gps_noise_m > 0 and trainable:
        positive, pixels = _gps_fixes(lines, split, params, f"{area}/{city}", size, mpp)
    return pd.DataFrame({
        "pano_path": [str(pano_path(root, city, ln.pano)) for ln in lines],
        "sat_path": [str(sat_path(root, city, ln.sats[k])) for ln, k in zip(lines, positive)],
        "city": city, "split": split, "area": area,
        "gt_row": np.array([p[0] for p in pixels], dtype=np.float64),
        "gt_col": np.array([p[1] for p in pixels], dtype=np.float64),
        "mpp": float(mpp), "yaw_deg": 0.0, "sat_size": int(size),
        "tiles": [";".join(ln.sats) for ln in lines],
    }, columns=COLUMNS)


def _gps_fixes(lines, split: list[str], params: IndexParams, key: str, size: int, mpp: float):
    """Per line, the positive tile (index into its four) and the camera pixel in it: for train
    rows from a noisy GPS position (module docstring), for the others exact."""
    rng = np.random.default_rng([params.seed, zlib.crc32(f"gps/{key}".encode())])
    noise = rng.normal(0, params.gps_noise_m / mpp, size=(len(lines), 2))     # (N, 2) pixels (row, col)
    positive, pixels = [], []
    for line, which, shift in zip(lines, split, noise):
        at = np.array([label_to_pixel(*d, size) for d in line.deltas])        # (4, 2) camera in each tile
        if which == "train":
            noisy = at + shift
            k = int(np.argmin(np.abs(noisy - size / 2).max(axis=1)))          # nearest tile centre (pixel grid)
            positive.append(k)
            pixels.append(tuple(np.clip(noisy[k], 0, size - 1)))
        else:
            positive.append(0)
            pixels.append(tuple(at[0]))
    return positive, pixels


def _splits(n: int, area: str, city: str, trainable: bool, params: IndexParams) -> list[str]:
    """The split of each of a label list's n lines (module docstring)."""
    if not trainable:
        return ["test"] * n
    if area == "cross" and params.cross_area_val:
        return ["val" if city in params.cross_area_val else "train"] * n
    return _train_val(n, params.val_fraction, params.seed, f"{area}/{city}")


def _train_val(n: int, val_fraction: float, seed: int, key: str) -> list[str]:
    """'train'/'val' per line; exactly round(n * val_fraction) lines go to val."""
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    split = np.full(n, "train", dtype=object)
    split[rng.permutation(n)[:round(n * val_fraction)]] = "val"
    return split.tolist()


def seeded_subset(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows of a split drawn with `seed`, in index order, renumbered from 0 (all, as given,
    when n is 0 or at least the split's size): the scored test subset (params `evaluate`) and the
    validation cap (`train.max_val_samples`)."""
    if n == 0 or n >= len(rows):
        return rows
    return rows.sample(n=n, random_state=seed).sort_index().reset_index(drop=True)


def read_index(path: Path, columns: tuple[str, ...] = tuple(COLUMNS)) -> pd.DataFrame:
    """The sample table at `path` (written by `geodistill index`): read_table's checks, and every
    camera pixel finite and inside its tile."""
    table = read_table(path, columns, "a sample table", "rebuild it with `geodistill index`")
    if {"gt_row", "gt_col", "sat_size"} <= set(table.columns):
        _check_pixels(table, path)
    return table


def read_table(path: Path, columns: tuple[str, ...], what: str, hint: str) -> pd.DataFrame:
    """The CSV table at `path`; FormatError naming the file (as `what`, with `hint` on what to do)
    for one that is empty, not CSV, lacks any of `columns`, or has no rows."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise FormatError(f"{path}: empty file, not {what} ({hint})") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: not {what} ({str(e).strip().splitlines()[-1]}; {hint})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise FormatError(f"{path}: no column {', '.join(missing)} (it has {', '.join(map(str, table.columns))}): "
                          f"not {what} ({hint})")
    if table.empty:
        raise FormatError(f"{path}: no rows ({hint})")
    return table


def _check_pixels(table: pd.DataFrame, path: Path) -> None:
    """FormatError naming the first row whose camera pixel is not finite and inside its tile."""
    pixels = table[["gt_row", "gt_col"]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    side = pd.to_numeric(table.sat_size, errors="coerce").to_numpy(np.float64)[:, None]
    good = np.isfinite(pixels).all(axis=1) & ((pixels >= 0) & (pixels <= side)).all(axis=1)
    if not good.all():
        i = int(np.flatnonzero(~good)[0])
        raise FormatError(f"{path}: line {i + 2}: camera pixel (gt_row, gt_col) = ({pixels[i, 0]:g}, {pixels[i, 1]:g}) "
                          f"is not inside its {side[i, 0]:g}-px tile")


def write_index(table: pd.DataFrame, out: Path) -> None:
    """Write the table as CSV atomically (temp file + rename); floats round-trip exactly."""
    with atomic_file(out) as tmp:
        table.to_csv(tmp, index=False, float_format=None)  # None: shortest repr, read back bit-exact


def summarize(table: pd.DataFrame) -> str:
    """Sample counts per area x city (rows) and split (columns), with totals."""
    if table.empty:
        return "no samples"
    counts = pd.crosstab([table.area, table.city], table.split, margins=True, margins_name="total")
    cols = [s for s in SPLITS if s in counts.columns] + ["total"]
    rows = sorted(counts.index[:-1], key=lambda k: (AREAS.index(k[0]) if k[0] in AREAS else 99, k[1]))
    return counts.loc[rows + [counts.index[-1]], cols].to_string()
