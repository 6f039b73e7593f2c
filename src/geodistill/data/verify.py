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
are checked explicitly before decoding.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import yaml

from geodistill.data.vigor import FormatError, city_dirs, label_path, parse_label_line, pano_path, sat_path
from geodistill.parallel import fork_map, resolve_workers

WHICH = ("train", "test", "all")
JPEG_SOI, JPEG_EOI = b"\xff\xd8", b"\xff\xd9"
PNG_SIG, PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
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
    path = Path(path)
    if not path.is_file():
        return "missing", ""
    data = path.read_bytes()
    return _decode_problem(data, path.suffix.lower()), hashlib.sha256(data).hexdigest()


def _decode_problem(data: bytes, suffix: str) -> str | None:
    if not data:
        return "empty file"
    if suffix in (".jpg", ".jpeg"):
        if not data.startswith(JPEG_SOI):
            return "not a JPEG (no start-of-image marker)"
        if not data.rstrip(b"\x00").endswith(JPEG_EOI):
            return "truncated JPEG (no end-of-image marker)"
    elif suffix == ".png":
        if not data.startswith(PNG_SIG):
            return "not a PNG (bad signature)"
        if not data.endswith(PNG_IEND):
            return "truncated PNG (no IEND chunk at the end)"
    try:
        # reduced decoding still walks the whole compressed stream, at a fraction of the cost
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    except cv2.error as e:
        return f"cannot be decoded ({str(e).strip().splitlines()[-1]})"
    return "cannot be decoded" if image is None else None


def verify_root(root: Path, workers: int = 0, totals: list[Total] = ()) -> VerifyReport:
    """Parse every city's label files, check every image they reference, and compare the label
    counts with `totals` (e.g. known_totals(root))."""
    root = Path(root)
    problems: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    files: set[Path] = set()
    # besides the images, what `index` reads: (file, sha256 of its bytes)
    side_files = [(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(root.glob("dataset.json"))]
    for city in city_dirs(root):
        counts[city] = {}
        for which in WHICH:
            path = label_path(root, city, which)
            if not path.is_file():
                continue
            data = path.read_bytes()
            side_files.append((path, hashlib.sha256(data).hexdigest()))
            good = 0
            for no, text in enumerate(data.decode().splitlines(), 1):
                if not text.strip():
                    continue
                where = f"{path.relative_to(root)}:{no}"
                try:
                    line = parse_label_line(text, where)
                except FormatError as e:
                    problems.append(str(e))
                    continue
                good += 1
                files.add(pano_path(root, city, line.pano))
                files.update(sat_path(root, city, s) for s in line.sats)
            counts[city][which] = good
        if not counts[city]:
            problems.append(f"{label_path(root, city, 'all').parent.relative_to(root)}: no label files "
                            f"(expected any of {', '.join(label_path(root, city, w).name for w in WHICH)})")

    table = pd.DataFrame.from_dict(counts, orient="index", columns=list(WHICH)).astype("Int64")
    table.index.name = "city"
    problems += check_totals(table, list(totals))
    paths = sorted(files)
    fingerprint = hashlib.sha256()
    for side_file, digest in side_files:
        fingerprint.update(f"{side_file.relative_to(root)} {digest}\n".encode())
    for path, (reason, digest) in zip(paths, _inspect_all(paths, workers)):
        if reason is not None:
            problems.append(f"{path.relative_to(root)}: {reason}")
        fingerprint.update(f"{path.relative_to(root)} {digest}\n".encode())
    return VerifyReport(counts=table, problems=problems, checked=len(paths), fingerprint=fingerprint.hexdigest())


def _inspect_all(paths: list[Path], workers: int) -> list[tuple[str | None, str]]:
    chunk = max(1, min(256, len(paths) // (resolve_workers(workers) * 8)))
    return list(fork_map(inspect_image, paths, workers if len(paths) > 1 else 1, "verify", "file", chunksize=chunk))
