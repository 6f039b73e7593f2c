"""The sample table of a cross-view KITTI root, in the index's columns plus KITTI's own
(data/index.py's COLUMNS, then KITTI_COLUMNS); the `index` stage writes it when params
data.source is kitti, and the sample loader (training/samples.py) reads the pinhole columns.

    geodistill index --config params.yaml --root /data/KITTI --out data/index.csv
    table = build_kitti_index(Path("/data/KITTI"), seed=2023, val_fraction=0.2)

- same-area: train_files (split into train / val) and test1_files (test: other frames of the
  training drives); cross-area: the same train / val and test2_files (test: unseen drives).
- Each row's satellite image is the raw map; `satellite_alignment(yaw_rad, u, v, theta, ...)`
  turns it into the 512-px crop in which (gt_row, gt_col) lies (`camera_pixel`). Test rows carry
  the split file's fixed (u, v, theta); train and val rows a draw in [-1, 1) seeded by `seed`
  and the frame's path (the authors draw again each time a frame is loaded).
- yaw_deg is the camera's heading in the crop (degrees clockwise from up); city is the
  recording date; fx, fy, cx, cy are the intrinsics of the image as stored, image_w x image_h
  pixels (S_rect; read_intrinsics); a loader that resizes the image rescales them.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from geodistill.data.index import COLUMNS
from geodistill.data.kitti import (CROP_SIZE, KITTI_MPP, SPLIT_FILES, camera_heading_deg, camera_pixel, frame_files,
                                   read_image_size, read_intrinsics, read_oxts, read_split)

KITTI_COLUMNS = ["drive", "frame", "lat", "lon", "yaw_rad", "u", "v", "theta", "fx", "fy", "cx", "cy", "image_w",
                 "image_h"]
PROTOCOLS = {"same": "test1", "cross": "test2"}


def is_kitti_table(columns) -> bool:
    """Whether a sample table (its columns, or a row's index) is KITTI's: pinhole images and
    satellite crops aligned per row."""
    return "fx" in columns


def _draw(seed: int, path: str) -> np.ndarray:
    """(u, v, theta) in [-1, 1) for a training frame, from (seed, CRC32 of its path)."""
    return np.random.default_rng([seed, zlib.crc32(path.encode())]).uniform(-1, 1, 3)


def _row(root: Path, line, split: str, area: str, seed: int, intrinsics: dict) -> dict:
    files = frame_files(root, line.path)
    lat, lon, yaw = read_oxts(files.oxts)
    if files.calib not in intrinsics:
        size = read_image_size(files.calib)
        intrinsics[files.calib] = read_intrinsics(files.calib, size), size
    K, (width, height) = intrinsics[files.calib]
    u, v, theta = (line.u, line.v, line.theta) if line.u is not None else _draw(seed, line.path)
    gt_row, gt_col = camera_pixel(u, v, theta)
    return {"pano_path": str(files.image), "sat_path": str(files.satmap), "city": line.date, "split": split,
            "area": area, "gt_row": gt_row, "gt_col": gt_col, "mpp": KITTI_MPP,
            "yaw_deg": camera_heading_deg(theta), "sat_size": CROP_SIZE, "tiles": str(files.satmap),
            "drive": line.drive, "frame": line.frame, "lat": lat, "lon": lon, "yaw_rad": yaw, "u": u, "v": v,
            "theta": theta, "fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "image_w": width,
            "image_h": height}


def build_kitti_index(root: Path, seed: int, val_fraction: float) -> pd.DataFrame:
    """Rows of both protocols (same-area first), deterministic for a seed."""
    root = Path(root)
    train = read_split(root / SPLIT_FILES["train"])
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = int(round(val_fraction * len(train)))
    if not 0 < n_val < len(train):
        raise ValueError(f"{root / SPLIT_FILES['train']}: {len(train)} frames cannot give train and val at "
                         f"val_fraction {val_fraction}")
    val = set(order[:n_val].tolist())
    intrinsics, rows = {}, []
    for area, test_split in PROTOCOLS.items():
        rows += [_row(root, line, "val" if k in val else "train", area, seed, intrinsics)
                 for k, line in enumerate(train)]
        rows += [_row(root, line, "test", area, seed, intrinsics)
                 for line in read_split(root / SPLIT_FILES[test_split])]
    return pd.DataFrame(rows, columns=COLUMNS + KITTI_COLUMNS)
