"""Cross-view KITTI's on-disk format (HighlyAccurate / G2SWeakly layout): split lines, OXTS,
calibration, satellite maps, and the alignment that puts the camera in the satellite crop.
Facts: docs/kitti-reference.md (sections 1-5), docs/paper-reference.md#cross-view-kitti.

    <root>/raw_data/<date>/calib_cam_to_cam.txt
    <root>/raw_data/<date>/<drive>/image_02/data/<frame>.png     left colour camera
    <root>/raw_data/<date>/<drive>/oxts/data/<frame>.txt         lat lon alt roll pitch yaw ...
    <root>/satmap/<date>/<drive>/<frame>.png                      north-up, centred on the OXTS fix
    <root>/splits/{train_files,test1_files,test2_files}.txt       (data/sources.yaml)

    line = parse_split_line("2011_09_26/2011_09_26_drive_0001_sync/0000000001.png 0.1 -0.2 0.3", "test1:1")
    files = frame_files(root, line.path)            # image, oxts, satmap, calibration
    lat, lon, yaw = read_oxts(files.oxts)
    K = read_intrinsics(files.calib, (1024, 256))   # P_rect_02 rescaled from the real S_rect_02 size
    M = satellite_alignment(yaw, line.u, line.v, line.theta, raw_size=1280)   # cv2.warpAffine(raw, M, (512, 512))
    row, col = camera_pixel(line.u, line.v, line.theta)

A test line's (u, v, theta) are fractions of the prior: u longitudinal (+ = the camera ahead of
the crop centre along the heading), v lateral (+ = to the vehicle's left), both of
`shift_range_m` (20 m), theta of `rotation_range_deg` (10 degrees, + = the map turned
counter-clockwise). Train lines hold only the path (the loader draws the triple). Pixel
coordinates are (x right, y down) with the crop centre at S/2, as the authors' code.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geodistill.data.vigor import FormatError

EARTH_MPP_ZOOM0 = 156543.03392            # Web-Mercator metres per pixel at the equator, zoom 0
MAP_LATITUDE = 49.015                     # the fixed latitude of the authors' metres per pixel
MAP_ZOOM, MAP_SCALE = 18, 2               # Google Static Maps zoom 18, scale=2
KITTI_MPP = EARTH_MPP_ZOOM0 * math.cos(math.radians(MAP_LATITUDE)) / 2 ** MAP_ZOOM / MAP_SCALE   # 0.19582850865
CROP_SIZE = 512                           # processed satellite side (px): ~100 m
CAMERA_GPS_SHIFT_M = (1.08, 0.26)         # left colour camera: metres ahead of and right of the OXTS unit
CAMERA_HEIGHT_M = 1.65
SHIFT_RANGE_M, ROTATION_RANGE_DEG = 20.0, 10.0
SPLIT_FILES = {"train": "splits/train_files.txt", "test1": "splits/test1_files.txt",   # where `download` puts them
               "test2": "splits/test2_files.txt"}
TOTALS = {"train": 19655, "test1": 3773, "test2": 7542}     # frames per split (docs/kitti-reference.md section 5)

PATH_RE = re.compile(r"^(?P<date>\d{4}_\d{2}_\d{2})/(?P<drive>(?P=date)_drive_\d{4}_sync)/(?P<frame>\d{10})\.png$")


@dataclass(frozen=True)
class SplitLine:
    path: str                      # <date>/<drive>/<frame>.png
    u: float | None = None         # longitudinal shift, fraction of SHIFT_RANGE_M (test lines only)
    v: float | None = None         # lateral shift, fraction of SHIFT_RANGE_M
    theta: float | None = None     # rotation, fraction of ROTATION_RANGE_DEG

    @property
    def date(self) -> str:
        return self.path.split("/")[0]

    @property
    def drive(self) -> str:
        return self.path.split("/")[1]

    @property
    def frame(self) -> str:
        return self.path.split("/")[2].removesuffix(".png")


def parse_split_line(line: str, where: str) -> SplitLine:
    """One line of a split file: a path (train) or a path and three floats in [-1, 1] (test);
    `where` ("file:line") goes into the error message."""
    parts = line.split()
    if len(parts) not in (1, 4) or not PATH_RE.match(parts[0]):
        raise FormatError(f"{where}: expected '<date>/<date>_drive_NNNN_sync/<10-digit frame>.png' and "
                          f"optionally three numbers, got {line.strip()!r}")
    if len(parts) == 1:
        return SplitLine(parts[0])
    try:
        u, v, theta = map(float, parts[1:])
    except ValueError:
        raise FormatError(f"{where}: the shift and rotation must be numbers, got {parts[1:]}") from None
    if not all(-1 <= x <= 1 for x in (u, v, theta)):
        raise FormatError(f"{where}: shift and rotation are fractions of the prior in [-1, 1], got {parts[1:]}")
    return SplitLine(parts[0], u, v, theta)


def read_split(path: Path) -> list[SplitLine]:
    """Every line of a split file (blank lines skipped, CR/LF either way)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI split file not found: {path}")
    return [parse_split_line(text, f"{path}:{k}") for k, text in enumerate(path.read_text().splitlines(), 1)
            if text.strip()]


@dataclass(frozen=True)
class FrameFiles:
    image: Path
    oxts: Path
    satmap: Path
    calib: Path


def frame_files(root: Path, path: str) -> FrameFiles:
    """The files of one frame (split-line path) under a KITTI root."""
    root, (date, drive, name) = Path(root), path.split("/")
    raw = root / "raw_data" / date
    return FrameFiles(image=raw / drive / "image_02" / "data" / name.lower(),
                      oxts=raw / drive / "oxts" / "data" / name.replace(".png", ".txt"),
                      satmap=root / "satmap" / path, calib=raw / "calib_cam_to_cam.txt")


def read_oxts(path: Path) -> tuple[float, float, float]:
    """(latitude deg, longitude deg, yaw rad) of an OXTS packet; yaw 0 = east, counter-clockwise."""
    try:
        values = [float(x) for x in Path(path).read_text().split()]
    except FileNotFoundError:
        raise FileNotFoundError(f"OXTS file not found: {path}") from None
    except ValueError:
        raise FormatError(f"{path}: an OXTS packet is 30 numbers") from None
    if len(values) != 30:
        raise FormatError(f"{path}: an OXTS packet is 30 numbers, got {len(values)}")
    return values[0], values[1], values[5]


def read_calibration(path: Path) -> dict[str, np.ndarray]:
    """`key: numbers` lines of a KITTI calib_cam_to_cam.txt (non-numeric lines, e.g. calib_time, skipped)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"KITTI calibration not found: {path}")
    entries = {}
    for line in Path(path).read_text().splitlines():
        key, _, rest = line.partition(":")
        try:
            entries[key.strip()] = np.array([float(x) for x in rest.split()])
        except ValueError:
            continue
    return entries


def read_intrinsics(path: Path, size: tuple[int, int], camera: str = "02") -> np.ndarray:
    """(3, 3) intrinsics of the rectified camera for an image resized to size = (W, H): P_rect's
    fx, cx, fy, cy scaled by W / S_rect width and H / S_rect height (the real image size, not the
    authors' fixed 1242 x 375)."""
    calib = read_calibration(path)
    for key, n in ((f"P_rect_{camera}", 12), (f"S_rect_{camera}", 2)):
        if key not in calib or calib[key].size != n:
            raise FormatError(f"{path}: no {key} line of {n} numbers")
    P, (w, h) = calib[f"P_rect_{camera}"].reshape(3, 4), calib[f"S_rect_{camera}"]
    sx, sy = size[0] / w, size[1] / h
    return np.array([[P[0, 0] * sx, 0.0, P[0, 2] * sx], [0.0, P[1, 1] * sy, P[1, 2] * sy], [0.0, 0.0, 1.0]])


def read_image_size(path: Path, camera: str = "02") -> tuple[int, int]:
    """(W, H) of the rectified camera's images (S_rect), from a calib_cam_to_cam.txt."""
    size = read_calibration(path).get(f"S_rect_{camera}")
    if size is None or size.size != 2:
        raise FormatError(f"{path}: no S_rect_{camera} line of 2 numbers")
    return int(round(size[0])), int(round(size[1]))


def _screen_rotation(angle_deg: float) -> np.ndarray:
    """(2, 2) counter-clockwise rotation as seen on screen, in (x right, y down) pixel coordinates."""
    a = math.radians(angle_deg)
    return np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])


def satellite_alignment(yaw_rad: float, u: float, v: float, theta: float, raw_size: int, size: int = CROP_SIZE,
                        mpp: float = KITTI_MPP, camera_shift_m: tuple[float, float] = CAMERA_GPS_SHIFT_M,
                        shift_range_m: float = SHIFT_RANGE_M, rotation_range_deg: float = ROTATION_RANGE_DEG
                        ) -> np.ndarray:
    """(2, 3) affine map from raw satellite pixels (x, y) to the aligned size x size crop, as the
    authors build it: turn the map by -yaw (heading to +x), move the camera to the centre, shift
    by (u, v) of the prior, turn by +theta of the prior, centre-crop. `cv2.warpAffine(raw, M,
    (size, size))` renders the crop."""
    c_raw, c = raw_size / 2, size / 2
    heading_up = _screen_rotation(-math.degrees(yaw_rad))
    shift = np.array([u * shift_range_m, -v * shift_range_m]) / mpp - np.array(camera_shift_m) / mpp
    turn = _screen_rotation(theta * rotation_range_deg)
    linear = turn @ heading_up
    offset = turn @ (shift - heading_up @ np.array([c_raw, c_raw])) + np.array([c, c])
    return np.hstack([linear, offset[:, None]])


def camera_pixel(u: float, v: float, theta: float, size: int = CROP_SIZE, mpp: float = KITTI_MPP,
                 shift_range_m: float = SHIFT_RANGE_M, rotation_range_deg: float = ROTATION_RANGE_DEG
                 ) -> tuple[float, float]:
    """(row, col) of the camera in the aligned crop: col = S/2 + (su cos p - sv sin p) / m,
    row = S/2 - (su sin p + sv cos p) / m with su, sv the shifts in metres and p the rotation."""
    su, sv, phi = u * shift_range_m, v * shift_range_m, math.radians(theta * rotation_range_deg)
    col = size / 2 + (su * math.cos(phi) - sv * math.sin(phi)) / mpp
    row = size / 2 - (su * math.sin(phi) + sv * math.cos(phi)) / mpp
    return row, col


def camera_heading_deg(theta: float, rotation_range_deg: float = ROTATION_RANGE_DEG) -> float:
    """The camera's forward direction in the aligned crop, degrees clockwise from the crop's up
    (north in the index's convention): 90 (east, +x) turned counter-clockwise by the rotation."""
    return 90.0 - theta * rotation_range_deg


def lateral_longitudinal(pred_rc: np.ndarray, true_rc: np.ndarray, heading_deg, mpp) -> tuple[np.ndarray, np.ndarray]:
    """(N,) absolute lateral and longitudinal errors in metres of (N, 2) predicted and true
    (row, col) pixels, for a camera facing `heading_deg` (clockwise from up) in each crop."""
    d = (np.asarray(pred_rc, float) - np.asarray(true_rc, float)) * np.asarray(mpp, float)[..., None]
    h = np.radians(np.asarray(heading_deg, float))
    forward = np.stack([-np.cos(h), np.sin(h)], axis=-1)           # (drow, dcol) of one step ahead
    left = np.stack([-np.sin(h), -np.cos(h)], axis=-1)
    return np.abs((d * left).sum(-1)), np.abs((d * forward).sum(-1))


def distance_batches(positions_m: np.ndarray, batch_size: int, min_distance_m: float,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """G2SWeakly's KITTI batch rule: shuffled batches whose frames are pairwise at least
    `min_distance_m` apart (60 m = 2 x 1.5 x the 20-m prior), so no two satellite crops of a batch
    overlap; a frame too close to the open batch waits in a backlog for a later one. Only full
    batches are returned (drop_last, as the weakly supervised stage): an open batch that no
    waiting frame can complete is dropped, its frames unused this epoch."""
    positions = np.asarray(positions_m, float)
    order, backlog, batches, current = list(rng.permutation(len(positions))), [], [], []
    while order or backlog:
        pending, order, backlog, placed = backlog + order, [], [], False
        for i in pending:
            if all(np.hypot(*(positions[i] - positions[j])) >= min_distance_m for j in current):
                current.append(i)
                placed = True
                if len(current) == batch_size:
                    batches.append(np.array(current))
                    current = []
            else:
                backlog.append(i)
        if not placed:                  # nothing left fits the open batch: start a new one
            if not current:
                break
            current = []
    return batches
