"""Localization samples: panoramas and satellite tiles at a network's input size, and batches
that never pair two samples sharing a satellite tile (weak supervision needs true negatives).

    data = LocalizationSamples(index[index.split == "train"], pano_size=(256, 128), sat_px=128)
    for idx in data.batches(batch_size=8, seed=2023, epoch=0):   # tile-disjoint (KITTI: 60 m apart)
        pano, sat, sat_mpp = data.batch(idx)          # (B, H, W, 3), (B, S, S, 3) uint8, (B,)
        gt_px = data.gt_px(idx)                       # (B, 2) row, col in satellite input pixels

Images are decoded on first use (JPEGs at a reduced size when the input is smaller) and kept in
memory, so a batch of samples seen before costs only array copies.

A KITTI sample table (data/kitti_index.py: it has the fx column) holds pinhole images: each is
resized to pano_size, `camera(idx)` gives its intrinsics at that size and its heading, and a
turn (roll_deg) moves the heading the model is told instead of rolling the image. Its satellite
image is the raw map, cut into the row's aligned crop (data/kitti.py satellite_alignment), and
its training batches keep their frames 60 m apart (kitti.distance_batches) instead of
tile-disjoint.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from geodistill.data.bev import read_image, read_panorama_for, read_tile
from geodistill.data.kitti import SHIFT_RANGE_M, distance_batches, satellite_alignment
from geodistill.data.kitti_index import is_kitti_table
from geodistill.geometry import latlon_to_metres, roll_panorama

# frames of one weakly supervised KITTI batch are this far apart: 2 x 1.5 x the shift prior, so no
# two aligned crops overlap (G2SWeakly's DistanceBatchSampler, docs/kitti-reference.md section 5)
KITTI_BATCH_DISTANCE_M = 2 * 1.5 * SHIFT_RANGE_M
PINHOLE_COLUMNS = ["fx", "fy", "cx", "cy", "image_w", "image_h"]
ALIGNMENT_COLUMNS = ["yaw_rad", "u", "v", "theta"]


def tile_keys(rows: pd.DataFrame) -> np.ndarray:
    """(N,) str: rows with the same key have the same satellite image (read_sample_tile)."""
    if not is_kitti_table(rows.columns):
        return rows.sat_path.to_numpy()
    return (rows.sat_path + "|" + rows[ALIGNMENT_COLUMNS].astype(str).agg("|".join, axis=1)).to_numpy()


def read_sample_tile(row) -> np.ndarray:
    """(sat_size, sat_size, 3) RGB uint8 satellite image of a sample-table row: the tile, or for
    a KITTI row the raw map cut to its aligned crop (bilinear, black outside the map)."""
    tile = read_tile(row.sat_path)
    if not is_kitti_table(row.index):
        return tile
    size = int(row.sat_size)
    M = satellite_alignment(row.yaw_rad, row.u, row.v, row.theta, raw_size=tile.shape[0], size=size)
    return cv2.warpAffine(tile, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


class LocalizationSamples:
    def __init__(self, rows: pd.DataFrame, pano_size: tuple[int, int], sat_px: int, desc: str = "samples"):
        if "tiles" not in rows.columns:
            raise ValueError("the sample table has no `tiles` column: rebuild it with `geodistill index`")
        self.rows = rows.reset_index(drop=True)
        self.pano_size, self.sat_px, self.desc = tuple(pano_size), sat_px, desc
        self.tiles = [set(t.split(";")) for t in self.rows.tiles]
        self.sat_mpp = (self.rows.sat_size * self.rows.mpp / sat_px).to_numpy(np.float32)   # (N,) m per input px
        self.pinhole = is_kitti_table(self.rows.columns)
        if self.pinhole:
            missing = [c for c in PINHOLE_COLUMNS + ALIGNMENT_COLUMNS + ["lat", "lon"] if c not in self.rows.columns]
            if missing:
                raise ValueError(f"a pinhole sample table needs the columns {', '.join(missing)}: rebuild it "
                                 "with `geodistill index`")
        self._tile_keys = tile_keys(self.rows)
        self._panos: np.ndarray | None = None
        self._decoded: np.ndarray | None = None                 # (N,) bool
        self._tiles: dict[str, np.ndarray] = {}                 # tile key -> (S, S, 3)

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, rows: slice) -> "LocalizationSamples":
        """The samples `rows` (a distributed rank's share); itself when that is every sample."""
        if range(len(self))[rows] == range(len(self)):
            return self
        return LocalizationSamples(self.rows.iloc[rows], self.pano_size, self.sat_px, self.desc)

    def load(self) -> "LocalizationSamples":
        """Decode every panorama and tile now (idempotent); batch() otherwise decodes on first use."""
        self._decode(np.arange(len(self)), bar=True)
        return self

    def _decode(self, idx: np.ndarray, bar: bool = False) -> None:
        """Decode the samples `idx` not decoded yet: a training epoch that draws a few hundred of
        a split's samples decodes only those."""
        W, H = self.pano_size
        if self._panos is None:
            self._panos = np.empty((len(self), H, W, 3), np.uint8)     # (N, H, W, 3), filled on demand
            self._decoded = np.zeros(len(self), bool)
        todo = np.unique(idx[~self._decoded[idx]])
        for i in tqdm(todo, desc=f"{self.desc}: decode", leave=False, disable=None if bar else True):
            row, key = self.rows.iloc[int(i)], self._tile_keys[int(i)]
            image = read_image(row.pano_path) if self.pinhole else read_panorama_for(row.pano_path, W)
            self._panos[i] = cv2.resize(image, (W, H), interpolation=cv2.INTER_AREA)
            if key not in self._tiles:
                self._tiles[key] = cv2.resize(read_sample_tile(row), (self.sat_px, self.sat_px),
                                              interpolation=cv2.INTER_AREA)
            self._decoded[i] = True

    def camera(self, idx, roll_deg=None) -> torch.Tensor | None:
        """(B, 5) fx, fy, cx, cy at the input size and heading (degrees clockwise from north) of
        pinhole samples, None for panoramas. A turn roll_deg (B,) of the camera leaves the image
        as it is and tells the model the heading minus the turn, as a rolled panorama whose centre
        column the model takes for north (geometry.roll_panorama)."""
        if not self.pinhole:
            return None
        rows = self.rows.iloc[np.asarray(idx, dtype=int)]
        W, H = self.pano_size
        sx, sy = W / rows.image_w.to_numpy(), H / rows.image_h.to_numpy()
        heading = rows.yaw_deg.to_numpy() - (0.0 if roll_deg is None else np.asarray(roll_deg, float))
        cam = np.stack([rows.fx * sx, rows.fy * sy, (rows.cx + 0.5) * sx - 0.5, (rows.cy + 0.5) * sy - 0.5,
                        heading], axis=1)                            # pixel centres kept under the resize
        return torch.from_numpy(cam.astype(np.float32))

    def batches(self, batch_size: int, seed: int, epoch: int, limit: int = 0) -> list[np.ndarray]:
        """One epoch of training batches seeded by (seed, epoch): tile-disjoint
        (tile_disjoint_batches) or, for KITTI, frames KITTI_BATCH_DISTANCE_M apart (at most
        `limit` samples when > 0)."""
        if not self.pinhole:
            return tile_disjoint_batches(self.tiles, batch_size, seed, epoch, limit)
        origin = (float(self.rows.lat.iloc[0]), float(self.rows.lon.iloc[0]))
        east, north = latlon_to_metres(self.rows.lat.to_numpy(), self.rows.lon.to_numpy(), origin)
        batches = distance_batches(np.stack([east, north], axis=1), batch_size, KITTI_BATCH_DISTANCE_M,
                                   np.random.default_rng([seed, epoch]))
        return batches[:-(-limit // batch_size)] if limit else batches

    def gt_px(self, idx) -> torch.Tensor:
        """(B, 2) true camera (row, col) in satellite INPUT pixels (centres at integers)."""
        rows = self.rows.iloc[np.asarray(idx)]
        scale = self.sat_px / rows.sat_size.to_numpy()[:, None]
        return torch.from_numpy(((rows[["gt_row", "gt_col"]].to_numpy() + 0.5) * scale - 0.5).astype(np.float32))

    def batch(self, idx, roll_deg=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Panoramas (B, H, W, 3), tiles (B, S, S, 3) uint8 and metres per tile input pixel (B,).
        roll_deg: optional (B,) turns applied to the panoramas (roll_panorama); pinhole images stay
        as they are (the turn goes into camera())."""
        idx = np.asarray(idx, dtype=int)
        self._decode(idx)
        panos = self._panos[idx]
        if roll_deg is not None and not self.pinhole:
            panos = np.stack([roll_panorama(p, float(r)) for p, r in zip(panos, roll_deg)])
        sats = np.stack([self._tiles[key] for key in self._tile_keys[idx]])
        return torch.from_numpy(panos), torch.from_numpy(sats), torch.from_numpy(self.sat_mpp[idx])


def tile_disjoint_batches(tiles: list[set], batch_size: int, seed: int, epoch: int,
                          limit: int = 0) -> list[np.ndarray]:
    """Shuffle (seeded by (seed, epoch)) and cut into batches in which no two samples share a
    tile: each sample goes to the first open batch it does not clash with. Batches hold
    batch_size samples except possibly the last few; `limit` > 0 keeps only that many samples."""
    order = np.random.default_rng([seed, epoch]).permutation(len(tiles))
    if limit:
        order = order[:limit]
    open_batches: list[tuple[list[int], set]] = []
    done: list[np.ndarray] = []
    for i in order:
        home = next((b for b in open_batches if not (b[1] & tiles[i])), None)
        if home is None:
            home = ([], set())
            open_batches.append(home)
        home[0].append(int(i))
        home[1].update(tiles[i])
        if len(home[0]) == batch_size:
            open_batches.remove(home)
            done.append(np.array(home[0]))
    return done + [np.array(b[0]) for b in open_batches if len(b[0]) >= 2]
