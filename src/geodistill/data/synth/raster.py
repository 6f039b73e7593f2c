"""The metric raster every synthetic world is drawn on, and small drawing helpers.

Cell (r, c) covers x in [x0 + c*cell, x0 + (c+1)*cell) and y likewise (x east, y south, metres).
"""
from __future__ import annotations

import zlib

import cv2
import numpy as np


class Grid:
    """Cell-centre coordinates of an (n, n) raster, and bounding-box windows into it."""

    def __init__(self, n: int, cell: float, x0: float):
        self.n, self.cell, self.x0 = n, cell, x0
        coords = x0 + (np.arange(n, dtype=np.float32) + 0.5) * cell
        self.x = coords[None, :]                                   # (1, n)
        self.y = coords[:, None]                                   # (n, 1)

    def cell_of(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of the cell containing a point, or None outside the raster."""
        c, r = int(np.floor((x - self.x0) / self.cell)), int(np.floor((y - self.x0) / self.cell))
        return (r, c) if 0 <= r < self.n and 0 <= c < self.n else None

    def centre_of(self, flat_index: int) -> tuple[float, float]:
        """(x, y) of the centre of a cell given by its flat index."""
        r, c = divmod(int(flat_index), self.n)
        return self.x0 + (c + 0.5) * self.cell, self.x0 + (r + 0.5) * self.cell

    def window(self, cx: float, cy: float, radius: float):
        """(row slice, col slice) of the cells within `radius` of (cx, cy), clipped; None if outside."""
        c0 = max(int(np.floor((cx - radius - self.x0) / self.cell)), 0)
        c1 = min(int(np.ceil((cx + radius - self.x0) / self.cell)) + 1, self.n)
        r0 = max(int(np.floor((cy - radius - self.x0) / self.cell)), 0)
        r1 = min(int(np.ceil((cy + radius - self.x0) / self.cell)) + 1, self.n)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def rect(self, window, centre, angle: float, half) -> np.ndarray:
        """Boolean mask, over a window, of the cells inside an oriented rectangle."""
        c, s = np.cos(angle), np.sin(angle)
        dx, dy = self.x[:, window[1]] - centre[0], self.y[window[0], :] - centre[1]
        return (np.abs(dx * c + dy * s) <= half[0]) & (np.abs(-dx * s + dy * c) <= half[1])

    def distance_to(self, mask: np.ndarray) -> np.ndarray:
        """Metres from every cell to the nearest cell where `mask` is True."""
        return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5) * self.cell


def city_seed(seed: int, name: str, *extra: int) -> np.random.SeedSequence:
    """Seed sequence of one city (and optionally one item in it), stable across list order."""
    return np.random.SeedSequence([seed, zlib.crc32(name.encode()), *extra])


def smooth_noise(rng: np.random.Generator, n: int, feature_cells: float) -> np.ndarray:
    """(n, n) float32 smooth noise with unit-ish amplitude and features of ~feature_cells."""
    k = max(2, int(np.ceil(n / max(feature_cells, 1.0))) + 1)
    small = rng.standard_normal((k, k)).astype(np.float32)
    return cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC)
