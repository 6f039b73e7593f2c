"""A tiny dataset root in the real VIGOR layout (made-up ids and coordinates, tiny real images).

    from vigor_fixture import make_vigor_root
    fx = make_vigor_root(tmp_path / "VIGOR")      # no dataset.json: the real-VIGOR path

Each city gets N_TRAIN same-area train lines, N_TEST same-area test lines and the full list
(pano_label_balanced = train + test). Lines have VIGOR's 13 tokens; the first line of every
city's train list has deltas dy=23.0, dx=-29.0. Every camera lies inside its four tiles: deltas
within +-320 (VIGOR's 640-px tiles), or within half the sat_size of `dataset_json` when given.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CITIES = {"NewYork": (40.7500, -73.9850), "Seattle": (47.6100, -122.3350), "Chicago": (41.8800, -87.6300)}
MPP = {"NewYork": 0.113248, "Seattle": 0.100817, "Chicago": 0.111262}
N_TRAIN, N_TEST = 20, 6
FIRST_DELTAS = (23.0, -29.0)
SPLIT_FILES = {"train": "same_area_balanced_train__corrected.txt",
               "test": "same_area_balanced_test__corrected.txt",
               "all": "pano_label_balanced__corrected.txt"}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


@dataclass
class VigorFixture:
    root: Path
    lines: dict[str, dict[str, list[str]]]     # city -> train|test|all -> label lines

    def pano_files(self, city: str) -> list[Path]:
        return sorted((self.root / city / "panorama").iterdir())

    def sat_files(self, city: str) -> list[Path]:
        return sorted((self.root / city / "satellite").iterdir())


def make_vigor_root(root: Path, cities=tuple(CITIES), dataset_json: dict | None = None) -> VigorFixture:
    """Write the fixture under `root`; `dataset_json` (if given) is written as root/dataset.json."""
    root = Path(root)
    lines = {}
    for k, city in enumerate(cities):
        rng = np.random.default_rng(100 + k)
        lat0, lon0 = CITIES[city]
        (root / city / "panorama").mkdir(parents=True)
        (root / city / "satellite").mkdir(parents=True)
        tiles = [_tile_name(lat0 + 0.0004 * i, lon0 + 0.0005 * i) for i in range(8)]
        for t in tiles:
            cv2.imwrite(str(root / city / "satellite" / t), rng.integers(0, 255, (8, 8, 3), dtype=np.uint8))
        city_lines = []
        for i in range(N_TRAIN + N_TEST):
            pano_id = "".join(rng.choice(list(_ALPHABET), 22))
            name = f"{pano_id},{lat0 + 0.00013 * i:.6f},{lon0 - 0.00017 * i:.6f},.jpg"
            cv2.imwrite(str(root / city / "panorama" / name), rng.integers(0, 255, (8, 16, 3), dtype=np.uint8))
            sats = [tiles[(i + j) % len(tiles)] for j in range(4)]
            deltas = [FIRST_DELTAS if i == 0 else (float(3 * i - 40), float(17 - 2 * i))] + \
                     [(float(rng.integers(-320, 320)), float(rng.integers(-320, 320))) for _ in range(3)]
            if i == 1:
                deltas[0] = (12.345678901234567, -0.1)    # a delta with full float precision
            if dataset_json is not None:                  # the camera inside every tile of its sat_size
                half = dataset_json["sat_size"] / 2
                deltas = [(min(max(dy, -half), half), min(max(dx, -half), half)) for dy, dx in deltas]
            city_lines.append(" ".join([name] + [f"{s} {dy!r} {dx!r}" for s, (dy, dx) in zip(sats, deltas)]))
        lines[city] = {"train": city_lines[:N_TRAIN], "test": city_lines[N_TRAIN:], "all": city_lines}
        split_dir = root / "splits__corrected" / city
        split_dir.mkdir(parents=True)
        for which, fname in SPLIT_FILES.items():
            (split_dir / fname).write_text("\n".join(lines[city][which]) + "\n")
    if dataset_json is not None:
        (root / "dataset.json").write_text(json.dumps(dataset_json))
    return VigorFixture(root, lines)


def synthetic_meta(sat_size: int, mpp: dict[str, float]) -> dict:
    """A dataset.json as the synthetic generator writes it."""
    return {"generator": "geodistill.synth", "version": 1, "seed": 7, "camera_height_m": 2.0,
            "pano_size": [16, 8], "sat_size": sat_size,
            "cities": {c: {"mpp": m, "origin": list(CITIES[c]), "panoramas": N_TRAIN + N_TEST, "tiles": 8}
                       for c, m in mpp.items()}}


def _tile_name(lat: float, lon: float) -> str:
    return f"satellite_{lat!r}_{lon!r}.png"
