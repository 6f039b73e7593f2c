"""Check a VIGOR-layout root: every label line parses, every referenced image exists and decodes,
and the label files hold as many lines as the complete dataset has.

    geodistill verify-data --config params.yaml --root data/VIGOR --workers 0

The expected line counts (`known_totals`) are VIGOR's published totals (totals.yaml) for a real
root, and the per-city panorama counts of its dataset.json for a synthetic world.

The report ends with the dataset's content fingerprint: a sha256 over every label file, the
world's dataset.json and every image the labels reference. Stages downstream depend on the
report rather than on the dataset root, so `dvc status` hashes the (large) root once, here,
and an image edited in place still reruns everything that reads it.

Truncated files are the usual failure of a large download. OpenCV returns a partial image for a
truncated JPEG without complaint, so the JPEG end-of-image marker (FFD9) and the PNG IEND chunk
are checked explicitly before decoding (data/images.py, as every reader does). Beyond decoding,
each panorama must be equirectangular (width = 2 x height), each tile square with the camera of
every label line inside it, and no panorama may be listed twice in one label file.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import pandas as pd
import yaml

from geodistill.data.images import decode, header_size
from geodistill.data.vigor import (DATASET_JSON, FormatError, LabelLine, city_dirs, label_path, pano_path, sat_path,
                                   scan_labels)
from geodistill.parallel import fork_map, resolve_workers

WHICH = ("train", "test", "all")
MAX_LISTED = 50


@dataclass
class VerifyReport:
    counts: pd.DataFrame                        # label lines per city (rows) and file (train, test, all)
    problems: list[str] = field(default_factory=list)
    checked: int = 0                            # image files checked
    fingerprint: str = ""                       # sha256 of the labels, dataset.json and images

    def format(self) -> str:
        lines = ["label lines per city and file:", self.counts.to_string(na_rep="-"), ""]
        if not self.problems:
            lines.append(f"all {self.checked} files present and decodable")
            lines.append(f"content fingerprint (sha256 of labels, dataset.json, images): {self.fingerprint}")
            return "\n".join(lines)
        lines.append(f"{len(self.problems)} problems ({self.checked} files checked):")
        lines += [f"  {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  and {len(self.problems) - MAX_LISTED} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class Total:
    """A complete dataset has `lines` label lines in `file` (train/test/all) summed over `cities`."""

    what: str
    cities: tuple[str, ...]
    file: str
    lines: int
    source: str


def known_totals(root: Path) -> list[Total]:
    """What a complete `root` holds: a synthetic world's dataset.json (one `all` line per
    panorama of each city), otherwise VIGOR's published totals."""
    manifest = Path(root) / "dataset.json"
    if manifest.is_file():
        cities = json.loads(manifest.read_text())["cities"]
        return [Total(f"{name} panoramas", (name,), "all", int(c["panoramas"]), "dataset.json")
                for name, c in cities.items()]
    entries = yaml.safe_load((Path(__file__).with_name("totals.yaml")).read_text())["vigor"]
    return [Total(e["what"], tuple(e["cities"]), e["file"], int(e["lines"]), "VIGOR, docs/paper-reference.md#vigor")
            for e in entries]


def check_totals(counts: pd.DataFrame, totals: list[Total]) -> list[str]:
    """One problem per total that the label counts (verify_root's table) do not match."""
    problems = []
    for t in totals:
        absent = [c for c in t.cities if c not in counts.index or pd.isna(counts.loc[c, t.file])]
        have = sum(int(counts.loc[c, t.file]) for c in t.cities if c not in absent)
        if have != t.lines or absent:
            gap = f" ({', '.join(absent)}: no {t.file} label file)" if absent else ""
            problems.append(f"{t.what}: {have:,} label lines in the {t.file} files of {', '.join(t.cities)}, "
                            f"expected {t.lines:,} ({t.source}){gap}")
    return problems


def check_image(path: Path) -> str | None:
    """None if the image is complete and decodes, else the reason it is not."""
    return inspect_image(path)[0]


def inspect_image(path: Path) -> tuple[str | None, str]:
    """(check_image's answer, the sha256 of the file's bytes; "" when it is missing)."""
    return _inspect(path)[:2]


def _inspect(path: Path) -> tuple[str | None, str, tuple[int, int] | None]:
    """inspect_image's answer and the image's (width, height) from its header (None: unknown)."""
    path = Path(path)
    if not path.is_file():
        return "missing", "", None
    data, suffix = path.read_bytes(), path.suffix.lower()
    # reduced decoding still walks the whole compressed stream, at a fraction of the cost
    image = decode(data, suffix, cv2.IMREAD_REDUCED_COLOR_4)
    return (image if isinstance(image, str) else None), hashlib.sha256(data).hexdigest(), header_size(data, suffix)


@dataclass
class Labels:
    """What verify_root read from the label files: counts per city and file, the lines that
    parse with their city, the problems of the others."""

    tile_px: int | None                                                     # LabelLine.outside's side
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    lines: list[tuple[str, LabelLine]] = field(default_factory=list)        # (city, line)
    problems: list[str] = field(default_factory=list)
    side_files: list[tuple[Path, str]] = field(default_factory=list)       # (label file, sha256)

    def read(self, root: Path, city: str, which: str) -> None:
        """Parse one label file (vigor.scan_labels)."""
        path = label_path(root, city, which)
        self.side_files.append((path, hashlib.sha256(path.read_bytes()).hexdigest()))
        self.counts[city][which] = 0
        try:
            for line in scan_labels(path, str(path.relative_to(root)), self.tile_px):
                if isinstance(line, FormatError):
                    self.problems.append(str(line))
                else:
                    self.counts[city][which] += 1
                    self.lines.append((city, line))
        except FormatError as e:
            self.problems.append(str(e))


def verify_root(root: Path, workers: int = 0, totals: list[Total] = (), sat_size: int | None = None) -> VerifyReport:
    """Parse every city's label files, check every image they reference (complete, decodable,
    panoramas 2:1, tiles square), that every label line's camera lies inside its tiles (of the
    side the index reads them at: tile_px), and compare the label counts with `totals` (e.g.
    known_totals(root)). sat_size: the tile side of a root without dataset.json (params
    index.sat_size; None: that check is skipped)."""
    root = Path(root)
    labels = Labels(tile_px(root, sat_size))
    # besides the images and label files, what `index` reads: (file, sha256 of its bytes)
    side_files = [(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(root.glob("dataset.json"))]
    for city in city_dirs(root):
        labels.counts[city] = {}
        for which in WHICH:
            if label_path(root, city, which).is_file():
                labels.read(root, city, which)
        if not labels.counts[city]:
            labels.problems.append(f"{label_path(root, city, 'all').parent.relative_to(root)}: no label files "
                                   f"(expected any of {', '.join(label_path(root, city, w).name for w in WHICH)})")

    table = pd.DataFrame.from_dict(labels.counts, orient="index", columns=list(WHICH)).astype("Int64")
    table.index.name = "city"
    problems = labels.problems + check_totals(table, list(totals))
    paths = sorted({pano_path(root, city, ln.pano) for city, ln in labels.lines}
                   | {sat_path(root, city, s) for city, ln in labels.lines for s in ln.sats})
    fingerprint = hashlib.sha256()
    for side_file, digest in side_files + labels.side_files:
        fingerprint.update(f"{side_file.relative_to(root)} {digest}\n".encode())
    for path, (reason, digest, size) in zip(paths, _inspect_all(paths, workers)):
        reason = reason or _shape_problem(path, size)
        if reason is not None:
            problems.append(f"{path.relative_to(root)}: {reason}")
        fingerprint.update(f"{path.relative_to(root)} {digest}\n".encode())
    return VerifyReport(counts=table, problems=problems, checked=len(paths), fingerprint=fingerprint.hexdigest())


def tile_px(root: Path, sat_size: int | None) -> int | None:
    """The tile side (pixels) the label deltas are measured in, as the index reads it: the root's
    dataset.json sat_size, else `sat_size` (None if dataset.json has none: index names it)."""
    manifest = Path(root) / DATASET_JSON
    if not manifest.is_file():
        return sat_size
    try:
        return int(json.loads(manifest.read_text())["sat_size"])
    except (ValueError, KeyError, TypeError):
        return None


def _shape_problem(path: Path, size: tuple[int, int] | None) -> str | None:
    """Why a panorama (by its header's size) is not 2:1 or a tile not square; None if it is, or unknown."""
    panorama = path.parent.name == "panorama"
    if size is None or (size[0] == 2 * size[1] if panorama else size[0] == size[1]):
        return None
    return f"{size[0]}x{size[1]}, not {'equirectangular (width = 2 x height)' if panorama else 'square'}"


def _inspect_all(paths: list[Path], workers: int) -> list[tuple[str | None, str, tuple[int, int] | None]]:
    chunk = max(1, min(256, len(paths) // (resolve_workers(workers) * 8)))
    return list(fork_map(_inspect, paths, workers if len(paths) > 1 else 1, "verify", "file", chunksize=chunk))
