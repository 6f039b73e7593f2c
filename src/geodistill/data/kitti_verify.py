"""Check a cross-view KITTI root (data/kitti.py's layout): every split line parses, every frame's
image, OXTS packet and satellite map exist and are complete, every date has its calibration, and
the split files hold as many frames as the complete dataset (TOTALS).

    geodistill verify-data --root /data/KITTI          # a root with raw_data/ and satmap/ is KITTI

The report has the same form as VIGOR's (data/verify.py): counts per split, the problems, and a
content fingerprint (sha256 over the split files, calibration, OXTS packets and images).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from geodistill.data.kitti import (SPLIT_FILES, TOTALS, frame_files, read_image_size, read_intrinsics, read_oxts,
                                   read_split)
from geodistill.data.verify import VerifyReport, inspect_image
from geodistill.data.vigor import FormatError
from geodistill.parallel import fork_map, resolve_workers


class KittiVerifyReport(VerifyReport):
    def format(self) -> str:
        return super().format().replace("label lines per city and file:", "frames per split file:", 1)


def is_kitti_root(root: Path) -> bool:
    return (Path(root) / "raw_data").is_dir() and (Path(root) / "satmap").is_dir()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _check_text(path: Path, read) -> tuple[str | None, str]:
    """(problem or None, sha256) of an OXTS packet or calibration file, parsed by `read`."""
    try:
        read(path)
    except (FileNotFoundError, FormatError) as e:
        return ("missing" if isinstance(e, FileNotFoundError) else str(e).split(": ", 1)[-1]), _digest(path)
    return None, _digest(path)


def _check(item: tuple[str, Path]) -> tuple[str | None, str]:
    kind, path = item
    if kind == "oxts":
        return _check_text(path, read_oxts)
    if kind == "calib":
        return _check_text(path, lambda p: read_intrinsics(p, read_image_size(p)))   # what the index reads
    return inspect_image(path)


def verify_kitti_root(root: Path, workers: int = 0, totals: bool = True) -> KittiVerifyReport:
    """Parse the split files present, check every file their frames need, and (with `totals`)
    compare the frame counts with the complete dataset's."""
    root = Path(root)
    problems, counts, side, items = [], {}, [], set()
    for split, name in SPLIT_FILES.items():
        path = root / name
        if not path.is_file():
            problems.append(f"{name}: split file not found")
            continue
        side.append((path, _digest(path)))
        try:
            lines = read_split(path)
        except FormatError as e:
            problems.append(str(e).replace(f"{root}/", ""))
            continue
        counts[split] = len(lines)
        for line in lines:
            files = frame_files(root, line.path)
            items.update({("image", files.image), ("oxts", files.oxts), ("satmap", files.satmap),
                          ("calib", files.calib)})
        if totals and counts[split] != TOTALS[split]:
            problems.append(f"{name}: {counts[split]:,} frames, expected {TOTALS[split]:,} "
                            f"(docs/kitti-reference.md section 5)")
    table = pd.DataFrame({"frames": counts}).astype("Int64")
    table.index.name = "split"
    ordered = sorted(items, key=lambda item: (str(item[1]), item[0]))
    chunk = max(1, min(256, len(ordered) // (resolve_workers(workers) * 8)))
    fingerprint = hashlib.sha256()
    for path, digest in side:
        fingerprint.update(f"{path.relative_to(root)} {digest}\n".encode())
    results = fork_map(_check, ordered, workers if len(ordered) > 1 else 1, "verify", "file", chunksize=chunk)
    for (kind, path), (reason, digest) in zip(ordered, results):
        if reason is not None:
            problems.append(f"{path.relative_to(root)}: {reason}")
        fingerprint.update(f"{path.relative_to(root)} {digest}\n".encode())
    return KittiVerifyReport(counts=table, problems=problems, checked=len(ordered), fingerprint=fingerprint.hexdigest())
