"""VIGOR's on-disk format: file names, label lines and the layout of a dataset root.

    <root>/<City>/panorama/<panoid>,<lat>,<lon>,.jpg
    <root>/<City>/satellite/satellite_<lat>_<lon>.png
    <root>/splits__corrected/<City>/same_area_balanced_{train,test}__corrected.txt
    <root>/splits__corrected/<City>/pano_label_balanced__corrected.txt

A label line has 13 whitespace-separated tokens: the panorama file name, then four satellite
file names each followed by the camera's pixel deltas (dy, dx) in that tile; the first
satellite is the positive. The camera sits at row = S/2 + dy, col = S/2 - dx (geometry.py).
The synthetic world and the real dataset are read by the same code.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from geodistill.errors import FormatError  # noqa: F401  (raised here, imported from here too)

SPLIT_DIR = "splits__corrected"
LABEL_FILES = {"train": "same_area_balanced_train__corrected.txt",
               "test": "same_area_balanced_test__corrected.txt"}
ALL_LABELS = "pano_label_balanced__corrected.txt"
DATASET_JSON = "dataset.json"

_NUM = r"-?\d+(?:\.\d+)?"
PANO_RE = re.compile(rf"^(?P<id>[^,/]+),(?P<lat>{_NUM}),(?P<lon>{_NUM}),\.jpg$")
SAT_RE = re.compile(rf"^satellite_(?P<lat>{_NUM})_(?P<lon>{_NUM})\.png$")


def pano_filename(pano_id: str, lat: float, lon: float) -> str:
    """VIGOR panorama file name (6 decimals, as the real dataset)."""
    return f"{pano_id},{lat:.6f},{lon:.6f},.jpg"


def sat_filename(lat: float, lon: float) -> str:
    """VIGOR satellite file name (full float precision, as the real dataset)."""
    return f"satellite_{float(lat)!r}_{float(lon)!r}.png"


def parse_pano_name(name: str) -> tuple[str, float, float]:
    m = PANO_RE.match(name)
    if not m:
        raise FormatError(f"not a VIGOR panorama name: {name!r}")
    return m["id"], float(m["lat"]), float(m["lon"])


def parse_sat_name(name: str) -> tuple[float, float]:
    m = SAT_RE.match(name)
    if not m:
        raise FormatError(f"not a VIGOR satellite name: {name!r}")
    return float(m["lat"]), float(m["lon"])


@dataclass(frozen=True)
class LabelLine:
    pano: str
    sats: tuple[str, str, str, str]                  # positive first
    deltas: tuple[tuple[float, float], ...]          # (dy, dx) per satellite

    def format(self) -> str:
        parts = [self.pano]
        for sat, (dy, dx) in zip(self.sats, self.deltas):
            parts += [sat, f"{dy:.1f}", f"{dx:.1f}"]
        return " ".join(parts)


def parse_label_line(line: str, where: str = "label line") -> LabelLine:
    tok = line.split()
    if len(tok) != 13:
        raise FormatError(f"{where}: expected 13 tokens, got {len(tok)}")
    try:
        parse_pano_name(tok[0])
    except FormatError as e:
        raise FormatError(f"{where}: {e}") from None
    try:
        deltas = tuple((float(tok[i + 1]), float(tok[i + 2])) for i in (1, 4, 7, 10))
    except ValueError:
        raise FormatError(f"{where}: pixel deltas must be numbers") from None
    sats = tuple(tok[i] for i in (1, 4, 7, 10))
    for s in sats:
        if not SAT_RE.match(s):
            raise FormatError(f"{where}: not a VIGOR satellite name: {s!r}")
    return LabelLine(tok[0], sats, deltas)  # type: ignore[arg-type]


def read_labels(path: Path) -> list[LabelLine]:
    """All label lines of one file; a malformed line raises FormatError naming file and line."""
    if not path.is_file():
        raise FormatError(f"{path}: label file not found")
    out = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            out.append(parse_label_line(line, f"{path}:{no}"))
    return out


def city_dirs(root: Path) -> list[str]:
    """Cities that have label files under <root>/splits__corrected/."""
    split_root = root / SPLIT_DIR
    if not split_root.is_dir():
        raise FormatError(f"{root}: not a VIGOR root (no {SPLIT_DIR}/ directory)")
    return sorted(p.name for p in split_root.iterdir() if p.is_dir())


def pano_path(root: Path, city: str, name: str) -> Path:
    return root / city / "panorama" / name


def sat_path(root: Path, city: str, name: str) -> Path:
    return root / city / "satellite" / name


def label_path(root: Path, city: str, which: str) -> Path:
    """which: 'train', 'test' (same-area lists) or 'all' (pano_label_balanced)."""
    name = ALL_LABELS if which == "all" else LABEL_FILES[which]
    return root / SPLIT_DIR / city / name
