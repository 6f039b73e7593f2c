"""Pre-render every indexed panorama to a metric bird's-eye view, once, packed in one array.

    geodistill render-bev --config params.yaml --index data/index.csv --out data/bev

Writes `<out>/bev.npy` ((N, size, size, 3) uint8, RGB, memory-mappable) and `<out>/panos.csv`
(pano_path -> row of bev.npy). The BEV grid follows geometry.bev_ground_coords: camera at
pixel (size/2, size/2), north up, `mpp` metres per pixel, flat ground `camera_height_m` below.
JPEGs are decoded at a reduced size (OpenCV's IMREAD_REDUCED_*) when the BEV does not need the
full resolution, which is most of the cost saved. The output directory is replaced atomically.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from geodistill.data.images import decode_file, jpeg_size
from geodistill.errors import ImageError  # noqa: F401  (raised here, imported from here too)
from geodistill.geometry import render_bev
from geodistill.io import atomic_dir
from geodistill.pinhole import render_pinhole_bev
from geodistill.parallel import fork_map

_REDUCED = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}


def reduction_for(width: int, needed: int) -> int:
    """Largest JPEG reduction factor (1, 2, 4, 8) that keeps at least `needed` columns.

    A BEV of side `size` needs about pi*size panorama columns to resolve its outer ring, more
    than VIGOR has for a 512 BEV; the authors render from 640-wide panoramas. `needed` is the
    `bev.min_pano_width` param: the trade-off between decode time and far-field detail.
    """
    factor = 1
    for f in (2, 4, 8):
        if width // f >= needed:
            factor = f
    return factor


def read_panorama(path: str | Path, reduce: int = 1) -> np.ndarray:
    """(H, W, 3) RGB uint8; raises ImageError naming the file if it is missing, truncated, corrupt
    or not equirectangular."""
    image = decode_file(path, _REDUCED[reduce], "panorama")
    h, w = image.shape[:2]
    if w != 2 * h:
        raise ImageError(f"panorama {path} is {w}x{h}, not equirectangular (width = 2 x height)")
    return image[..., ::-1]


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) RGB uint8 ground image of any shape (a pinhole camera's); raises ImageError
    naming the file if it is missing, truncated or corrupt."""
    return np.ascontiguousarray(decode_file(path, cv2.IMREAD_COLOR, "ground image")[..., ::-1])


def read_panorama_for(path: str | Path, min_width: int) -> np.ndarray:
    """read_panorama decoded at the smallest JPEG reduction that keeps >= min_width columns
    (other formats at full size)."""
    is_jpeg = str(path).lower().endswith((".jpg", ".jpeg"))
    return read_panorama(path, reduction_for(jpeg_width(str(path)), min_width) if is_jpeg else 1)


def read_tile(path: str | Path) -> np.ndarray:
    """(S, S, 3) RGB uint8 satellite image; raises ImageError naming the file if it is missing,
    truncated, corrupt or not square."""
    image = decode_file(path, cv2.IMREAD_COLOR, "satellite image")
    if image.shape[0] != image.shape[1]:
        raise ImageError(f"satellite image {path} is {image.shape[1]}x{image.shape[0]}; it must be square")
    return np.ascontiguousarray(image[..., ::-1])


def jpeg_width(path: str) -> int:
    """Width from the JPEG header without decoding (SOF marker), 0 if not found."""
    try:
        with open(path, "rb") as f:
            size = jpeg_size(f.read(65536))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return 0                                    # read_panorama names the missing file
    return size[0] if size else 0


_JOB: dict = {}


def _render(item) -> np.ndarray:
    size, mpp, cam_h = _JOB["size"], _JOB["mpp"], _JOB["cam_h"]
    if isinstance(item, str):
        return render_bev(read_panorama_for(item, _JOB["min_width"]), size, mpp, cam_h)
    path, (fx, fy, cx, cy, heading) = item
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return render_pinhole_bev(read_image(path), size, mpp, cam_h, K, heading)


def render_all(paths: list[str], size: int, mpp: float, cam_h: float, out: Path, min_pano_width: int,
               workers: int = 0, cameras: list[tuple] | None = None) -> Path:
    """Render `paths` into `<out>/bev.npy` + `<out>/panos.csv`; returns `out`. cameras: for
    pinhole images (KITTI), one (fx, fy, cx, cy, heading_deg) per path at the image's own size;
    their BEV is north up like a panorama's (pinhole.render_pinhole_bev), unseen cells black."""
    if size <= 0 or mpp <= 0 or cam_h <= 0:
        raise ValueError(f"BEV size, mpp and camera height must be positive, got {size}, {mpp}, {cam_h}")
    _JOB.update(size=size, mpp=mpp, cam_h=cam_h, min_width=min_pano_width)
    with atomic_dir(out) as partial:
        array = np.lib.format.open_memmap(partial / "bev.npy", mode="w+", dtype=np.uint8,
                                          shape=(len(paths), size, size, 3))
        try:
            items = paths if cameras is None else list(zip(paths, cameras, strict=True))
            for i, bev in enumerate(fork_map(_render, items, workers, "render-bev", "image", chunksize=16)):
                array[i] = bev
        finally:
            _JOB.clear()
        array.flush()
        del array
        pd.DataFrame({"pano_path": paths}).to_csv(partial / "panos.csv", index_label="row")
    return out


def load_bev(folder: Path) -> tuple[np.ndarray, dict[str, int]]:
    """Memory-mapped BEV array and the pano_path -> row lookup written by render_all."""
    rows = pd.read_csv(folder / "panos.csv")
    return np.load(folder / "bev.npy", mmap_mode="r"), dict(zip(rows.pano_path, rows.row))
