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

import math
import re
from collections.abc import Iterator
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

    def outside(self, sat_size: int) -> str | None:
        """None if the camera lies inside every tile of side `sat_size` (|dy|, |dx| <= S/2), else
        which tile it misses."""
        for sat, (dy, dx) in zip(self.sats, self.deltas):
            if max(abs(dy), abs(dx)) > sat_size / 2:
                return (f"the camera ({dy:g}, {dx:g}) px from the centre of {sat} lies outside that "
                        f"{sat_size}-px tile (deltas within +-{sat_size / 2:g})")
        return None

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
    bad = [tok[i] for i in (2, 3, 5, 6, 8, 9, 11, 12) if not math.isfinite(float(tok[i]))]
    if bad:
        raise FormatError(f"{where}: pixel deltas must be finite numbers, got {', '.join(bad)}")
    sats = tuple(tok[i] for i in (1, 4, 7, 10))
    for s in sats:
        if not SAT_RE.match(s):
            raise FormatError(f"{where}: not a VIGOR satellite name: {s!r}")
    return LabelLine(tok[0], sats, deltas)  # type: ignore[arg-type]


def read_labels(path: Path, sat_size: int | None = None) -> list[LabelLine]:
    """All label lines of one file; the first problem of scan_labels raises its FormatError."""
    if not path.is_file():
        raise FormatError(f"{path}: label file not found")
    lines = list(scan_labels(path, str(path), sat_size))
    bad = next((e for e in lines if isinstance(e, FormatError)), None)
    if bad is not None:
        raise bad
    return lines


def scan_labels(path: Path, shown: str, sat_size: int | None = None) -> Iterator[LabelLine | FormatError]:
    """Each non-blank line of a label file: its LabelLine, or a FormatError naming `shown`:line for
    a malformed line, a panorama listed twice or (given the tiles' side `sat_size`) a camera
    outside its tiles. A file that is not UTF-8 text raises FormatError."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{shown}: not UTF-8 text (byte {data[e.start]:#04x} at offset {e.start})") from None
    first: dict[str, int] = {}
    for no, text_line in enumerate(text.splitlines(), 1):
        if not text_line.strip():
            continue
        where = f"{shown}:{no}"
        try:
            line = parse_label_line(text_line, where)
        except FormatError as e:
            yield e
            continue
        twice = f"panorama {line.pano} is listed twice (first on line {first[line.pano]})" if line.pano in first else None
        outside = None if sat_size is None else line.outside(sat_size)
        if twice or outside:
            yield FormatError(f"{where}: {twice or outside}")
            continue
        first[line.pano] = no
        yield line


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
