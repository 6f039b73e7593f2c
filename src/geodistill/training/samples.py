"""Localization samples: panoramas and satellite tiles at a network's input size, and batches
that never pair two samples sharing a satellite tile (weak supervision needs true negatives).

    data = LocalizationSamples(index[index.split == "train"], pano_size=(256, 128), sat_px=128)
    for idx in tile_disjoint_batches(data.tiles, batch_size=8, seed=2023, epoch=0):
        pano, sat, sat_mpp = data.batch(idx)          # (B, H, W, 3), (B, S, S, 3) uint8, (B,)
        gt_px = data.gt_px(idx)                       # (B, 2) row, col in satellite input pixels

Images are decoded on first use (JPEGs at a reduced size when the input is smaller) and kept in
memory, so a batch of samples seen before costs only array copies.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from geodistill.data.bev import read_panorama_for, read_tile
from geodistill.geometry import roll_panorama


class LocalizationSamples:
    def __init__(self, rows: pd.DataFrame, pano_size: tuple[int, int], sat_px: int, desc: str = "samples"):
        if "tiles" not in rows.columns:
            raise ValueError("the sample table has no `tiles` column: rebuild it with `geodistill index`")
        self.rows = rows.reset_index(drop=True)
        self.pano_size, self.sat_px, self.desc = tuple(pano_size), sat_px, desc
        self.tiles = [set(t.split(";")) for t in self.rows.tiles]
        self.sat_mpp = (self.rows.sat_size * self.rows.mpp / sat_px).to_numpy(np.float32)   # (N,) m per input px
        self._panos: np.ndarray | None = None
        self._decoded: np.ndarray | None = None                 # (N,) bool
        self._tiles: dict[str, np.ndarray] = {}                 # sat_path -> (S, S, 3)

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
            row = self.rows.iloc[int(i)]
            self._panos[i] = cv2.resize(read_panorama_for(row.pano_path, W), (W, H), interpolation=cv2.INTER_AREA)
            if row.sat_path not in self._tiles:
                self._tiles[row.sat_path] = cv2.resize(read_tile(row.sat_path), (self.sat_px, self.sat_px),
                                                       interpolation=cv2.INTER_AREA)
            self._decoded[i] = True

    def gt_px(self, idx) -> torch.Tensor:
        """(B, 2) true camera (row, col) in satellite INPUT pixels (centres at integers)."""
        rows = self.rows.iloc[np.asarray(idx)]
        scale = self.sat_px / rows.sat_size.to_numpy()[:, None]
        return torch.from_numpy(((rows[["gt_row", "gt_col"]].to_numpy() + 0.5) * scale - 0.5).astype(np.float32))

    def batch(self, idx, roll_deg=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Panoramas (B, H, W, 3), tiles (B, S, S, 3) uint8 and metres per tile input pixel (B,).
        roll_deg: optional (B,) turns applied to the panoramas (roll_panorama)."""
        idx = np.asarray(idx, dtype=int)
        self._decode(idx)
        panos = self._panos[idx]
        if roll_deg is not None:
            panos = np.stack([roll_panorama(p, float(r)) for p, r in zip(panos, roll_deg)])
        sats = np.stack([self._tiles[path] for path in self.rows.sat_path.to_numpy()[idx]])
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
