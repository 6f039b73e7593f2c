"""KITTI's format and geometry: split lines, OXTS, calibration, the satellite alignment that puts
the camera at its labelled pixel, lateral/longitudinal errors, the 60-m batch rule, and the
pinhole ground-plane projection, with hand-computed values."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest

from geodistill.data.kitti import (CAMERA_GPS_SHIFT_M, KITTI_MPP, camera_heading_deg, camera_pixel,
                                   distance_batches, frame_files, lateral_longitudinal, parse_split_line,
                                   read_intrinsics, read_oxts, read_split, satellite_alignment)
from geodistill.data.vigor import FormatError
from geodistill.pinhole import ground_to_image, image_to_ground, pinhole_bev_maps
from conftest import REPO

FRAME = "2011_09_30/2011_09_30_drive_0028_sync/0000004082.png"
CALIB = """calib_time: 09-Jan-2012 14:00:15
corner_dist: 9.950000e-02
S_rect_02: 1.226000e+03 3.700000e+02
P_rect_02: 7.070912e+02 0.000000e+00 6.018873e+02 4.688783e+01 0.000000e+00 7.070912e+02 1.831104e+02 \
1.178601e-01 0.000000e+00 0.000000e+00 1.000000e+00 6.203223e-03
"""


@pytest.fixture
def kitti_root(tmp_path):
    """One frame in the real layout: calibration, OXTS packet, image, satellite map, split files."""
    files = frame_files(tmp_path, FRAME)
    for path in (files.image, files.oxts, files.satmap):
        path.parent.mkdir(parents=True, exist_ok=True)
    files.calib.write_text(CALIB)
    files.oxts.write_text(" ".join(["49.011", "8.4236", "112.8", "0.01", "0.02", "-1.5708"] + ["0.0"] * 24) + "\n")
    cv2.imwrite(str(files.image), np.zeros((370, 1226, 3), np.uint8))
    cv2.imwrite(str(files.satmap), np.zeros((1280, 1280, 3), np.uint8))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train_files.txt").write_text(f"{FRAME}\n")
    (tmp_path / "splits" / "test1_files.txt").write_text(f"{FRAME} 0.25 -0.5 0.1\r\n\n")
    return tmp_path


def test_the_map_scale_is_the_authors_constant():
    assert KITTI_MPP == pytest.approx(0.19582850865, abs=1e-11)     # 156543.03392 cos(49.015) / 2^18 / 2


def test_split_lines_and_frame_files(kitti_root):
    assert read_split(kitti_root / "splits" / "train_files.txt")[0].u is None
    line, = read_split(kitti_root / "splits" / "test1_files.txt")              # CRLF and a blank line
    assert (line.u, line.v, line.theta) == (0.25, -0.5, 0.1)
    assert (line.date, line.drive, line.frame) == ("2011_09_30", "2011_09_30_drive_0028_sync", "0000004082")
    files = frame_files(kitti_root, line.path)
    assert files.image == kitti_root / "raw_data/2011_09_30/2011_09_30_drive_0028_sync/image_02/data/0000004082.png"
    assert files.oxts.name == "0000004082.txt" and files.satmap == kitti_root / "satmap" / FRAME
    assert all(p.is_file() for p in (files.image, files.oxts, files.satmap, files.calib))
    for bad, message in ((f"{FRAME} 0.1 0.2", "optionally three numbers"), ("2011_09_30/x.png", "expected"),
                         (f"{FRAME} 0.1 0.2 1.5", r"in \[-1, 1\]"), (f"{FRAME} a b c", "must be numbers")):
        with pytest.raises(FormatError, match=rf"test1_files.txt:7: .*{message}"):
            parse_split_line(bad, "test1_files.txt:7")


def test_oxts_and_intrinsics_from_the_real_image_size(kitti_root):
    files = frame_files(kitti_root, FRAME)
    assert read_oxts(files.oxts) == (49.011, 8.4236, -1.5708)      # lat, lon, yaw (field 5)
    K = read_intrinsics(files.calib, (1024, 256))
    np.testing.assert_allclose(K, [[707.0912 * 1024 / 1226, 0, 601.8873 * 1024 / 1226],
                                   [0, 707.0912 * 256 / 370, 183.1104 * 256 / 370], [0, 0, 1]], rtol=1e-12)
    files.oxts.write_text("1 2 3\n")
    with pytest.raises(FormatError, match=r"0000004082.txt: an OXTS packet is 30 numbers, got 3"):
        read_oxts(files.oxts)
    files.calib.write_text("S_rect_02: 1226 370\n")
    with pytest.raises(FormatError, match="no P_rect_02 line of 12 numbers"):
        read_intrinsics(files.calib, (1024, 256))


def test_the_camera_lands_at_its_labelled_pixel():
    m = KITTI_MPP
    assert camera_pixel(0.5, 0.0, 0.0) == pytest.approx((256, 256 + 10 / m))     # 10 m ahead = east
    assert camera_pixel(0.0, 0.5, 0.0) == pytest.approx((256 - 10 / m, 256))     # 10 m left = north
    row, col = camera_pixel(0.5, 0.0, 0.5)                                       # then turned 5 degrees CCW
    assert (row, col) == pytest.approx((256 - 10 * math.sin(math.radians(5)) / m,
                                        256 + 10 * math.cos(math.radians(5)) / m))
    assert camera_heading_deg(0.0) == 90.0 and camera_heading_deg(-1.0) == 100.0


@pytest.mark.parametrize("yaw_deg, u, v, theta", [(0.0, 0.0, 0.0, 0.0), (30.0, 0.4, -0.3, 0.7),
                                                 (-135.0, -0.9, 0.2, -1.0)])
def test_the_alignment_maps_the_raw_camera_position_to_the_label(yaw_deg, u, v, theta):
    yaw, m, R = math.radians(yaw_deg), KITTI_MPP, 1280
    heading, right = np.array([math.cos(yaw), -math.sin(yaw)]), np.array([math.sin(yaw), math.cos(yaw)])
    camera_raw = R / 2 + (CAMERA_GPS_SHIFT_M[0] * heading + CAMERA_GPS_SHIFT_M[1] * right) / m   # (x, y)
    M = satellite_alignment(yaw, u, v, theta, raw_size=R)
    x, y = M @ [*camera_raw, 1.0]
    assert (y, x) == pytest.approx(camera_pixel(u, v, theta), abs=1e-9)
    phi = math.radians(10 * theta)                                   # the heading turned by the rotation
    np.testing.assert_allclose(M[:, :2] @ heading, [math.cos(phi), -math.sin(phi)], atol=1e-12)
    # rendered: a bright dot at the raw camera position appears at the label (within a pixel)
    raw = np.zeros((R, R), np.float32)
    cv2.circle(raw, (round(camera_raw[0]), round(camera_raw[1])), 2, 1.0, -1)
    crop = cv2.warpAffine(raw, M, (512, 512))
    peak_row, peak_col = np.unravel_index(np.argmax(cv2.GaussianBlur(crop, (9, 9), 0)), crop.shape)
    assert np.hypot(peak_row - y, peak_col - x) < 1.5


def test_lateral_and_longitudinal_errors_follow_the_heading():
    lat, lon = lateral_longitudinal([[9.0, 12.0]], [[10.0, 10.0]], [90.0], [0.5])   # facing east
    assert (lat[0], lon[0]) == pytest.approx((0.5, 1.0))                         # 1 px north, 2 px east
    lat, lon = lateral_longitudinal([[9.0, 12.0]], [[10.0, 10.0]], [0.0], [0.5])    # facing north
    assert (lat[0], lon[0]) == pytest.approx((1.0, 0.5))


def test_batches_keep_their_frames_60_m_apart():
    positions = np.stack([np.arange(40) * 10.0, np.zeros(40)], axis=1)          # frames every 10 m
    batches = distance_batches(positions, 3, 60.0, np.random.default_rng(0))
    assert batches and all(len(b) == 3 for b in batches)
    for b in batches:
        gaps = np.abs(positions[b, 0][:, None] - positions[b, 0][None, :])
        assert (gaps[~np.eye(3, dtype=bool)] >= 60).all()
    used = np.concatenate(batches)
    assert len(set(used)) == len(used) and len(used) >= 30                     # no frame twice, few dropped
    again = distance_batches(positions, 3, 60.0, np.random.default_rng(0))
    assert all((a == b).all() for a, b in zip(batches, again))


K = np.array([[500.0, 0.0, 512.0], [0.0, 500.0, 128.0], [0.0, 0.0, 1.0]])


def test_pinhole_projection_exact_values_and_round_trip():
    col, row, ahead = ground_to_image(2.0, 10.0, 1.65, K)                       # 10 m ahead, 2 m right
    assert (float(col), float(row), bool(ahead)) == (612.0, 128 + 500 * 1.65 / 10, True)
    col2, row2, _ = ground_to_image(10.0, -2.0, 1.65, K, yaw_deg=90.0)          # facing east: the same point
    assert (float(col2), float(row2)) == pytest.approx((612.0, 210.5))
    east, north = image_to_ground(612.0, 210.5, 1.65, K)
    assert (float(east), float(north)) == pytest.approx((2.0, 10.0))
    e, n = image_to_ground(612.0, 210.5, 1.65, K, yaw_deg=90.0)
    assert (float(e), float(n)) == pytest.approx((10.0, -2.0))
    col, row, ahead = ground_to_image(0.0, -5.0, 1.65, K)                       # behind the camera
    assert not ahead and math.isnan(col) and math.isnan(row)
    assert all(math.isnan(float(x)) for x in image_to_ground(600.0, 100.0, 1.65, K))   # above the horizon


def test_pinhole_bev_sees_only_the_ground_in_front_inside_the_image():
    map_x, map_y, seen = pinhole_bev_maps(64, 0.5, 1.65, K, 1024, 256)
    assert not seen[33:].any()                                   # rows south of the camera: behind it
    assert seen[5, 32] and map_x[5, 32] == pytest.approx(512.0, rel=1e-5)   # straight ahead: the principal column
    assert map_y[5, 32] == pytest.approx(128 + 500 * 1.65 / 13.5, rel=1e-5)   # row 5 of 64 at 0.5 m: 13.5 m ahead
    #                                                               (the maps are float32, for cv2.remap)
    assert (map_x[~seen] == -1).all() and not map_x.flags.writeable
    with pytest.raises(ValueError, match="K must be a 3x3"):
        pinhole_bev_maps(64, 0.5, 1.65, np.eye(2), 1024, 256)


def test_verify_data_names_a_missing_and_a_truncated_kitti_file(kitti_root):
    from typer.testing import CliRunner

    from stages.cli import app
    from geodistill.data.kitti_verify import verify_kitti_root
    (kitti_root / "splits" / "test2_files.txt").write_text(f"{FRAME} 0.1 0.2 0.3\n")
    report = verify_kitti_root(kitti_root, workers=1, totals=False)
    assert not report.problems and report.checked == 4 and report.counts.frames.to_dict() == {
        "train": 1, "test1": 1, "test2": 1}
    assert "frames per split file:" in report.format() and "all 4 files present" in report.format()
    full = verify_kitti_root(kitti_root, workers=1, totals=True).problems
    assert full[0] == "splits/train_files.txt: 1 frames, expected 19,655 (docs/kitti-reference.md section 5)"
    files = frame_files(kitti_root, FRAME)
    files.image.unlink()
    data = files.satmap.read_bytes()
    files.satmap.write_bytes(data[: len(data) // 2])
    problems = verify_kitti_root(kitti_root, workers=1, totals=False).problems
    assert problems == ["raw_data/2011_09_30/2011_09_30_drive_0028_sync/image_02/data/0000004082.png: missing",
                        f"satmap/{FRAME}: truncated PNG (no IEND chunk at the end)"]
    res = CliRunner().invoke(app, ["verify-data", "--config", str(REPO / "configs" / "smoke.yaml"),
                                   "--root", str(kitti_root), "--no-totals"])
    assert res.exit_code == 1 and "0000004082.png: missing" in res.output and "truncated PNG" in res.output


def _add_frame(root, path: str, yaw: float = 0.3) -> None:
    files = frame_files(root, path)
    for p in (files.image, files.oxts, files.satmap):
        p.parent.mkdir(parents=True, exist_ok=True)
    files.oxts.write_text(" ".join(["49.0", "8.4", "110", "0", "0", str(yaw)] + ["0"] * 24) + "\n")
    cv2.imwrite(str(files.image), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(files.satmap), np.zeros((8, 8, 3), np.uint8))


def test_the_kitti_index_puts_each_camera_at_its_hand_computed_pixel(kitti_root):
    from geodistill.data.index import COLUMNS
    from geodistill.data.kitti_index import KITTI_COLUMNS, build_kitti_index
    train = [f"2011_09_30/2011_09_30_drive_0028_sync/{4000 + k:010d}.png" for k in range(5)]
    unseen = "2011_09_30/2011_09_30_drive_0033_sync/0000000007.png"
    for path in train + [unseen]:
        _add_frame(kitti_root, path)
    (kitti_root / "splits" / "train_files.txt").write_text("".join(f"{p}\n" for p in train))
    (kitti_root / "splits" / "test2_files.txt").write_text(f"{unseen} -1.0 1.0 -0.5\n")
    table = build_kitti_index(kitti_root, seed=5, val_fraction=0.2)
    assert list(table.columns) == COLUMNS + KITTI_COLUMNS and len(table) == 2 * 5 + 2
    assert table.groupby(["area", "split"]).size().to_dict() == {
        ("cross", "test"): 1, ("cross", "train"): 4, ("cross", "val"): 1,
        ("same", "test"): 1, ("same", "train"): 4, ("same", "val"): 1}
    m = KITTI_MPP
    same = table[(table.area == "same") & (table.split == "test")].iloc[0]          # 0.25 -0.5 0.1 of test1
    phi = math.radians(1.0)
    assert same.gt_col == pytest.approx(256 + (5 * math.cos(phi) + 10 * math.sin(phi)) / m)
    assert same.gt_row == pytest.approx(256 - (5 * math.sin(phi) - 10 * math.cos(phi)) / m)
    assert same.yaw_deg == 89.0 and same.yaw_rad == -1.5708 and same.city == "2011_09_30"
    assert (same.fx, same.cy, same.image_w, same.image_h) == (707.0912, 183.1104, 1226, 370)   # as stored
    cross = table[(table.area == "cross") & (table.split == "test")].iloc[0]        # -20 m, 20 m left, -5 deg
    phi = math.radians(-5.0)
    assert (cross.gt_row, cross.gt_col) == pytest.approx((256 - (-20 * math.sin(phi) + 20 * math.cos(phi)) / m,
                                                          256 + (-20 * math.cos(phi) - 20 * math.sin(phi)) / m))
    drawn = table[table.split != "test"]
    assert drawn[["u", "v", "theta"]].abs().max().max() < 1 and drawn.u.nunique() == 5     # one draw per frame,
    same_rows, cross_rows = (drawn[drawn.area == a].reset_index(drop=True) for a in ("same", "cross"))
    pd.testing.assert_frame_equal(same_rows.drop(columns="area"), cross_rows.drop(columns="area"))  # both protocols
    assert build_kitti_index(kitti_root, seed=5, val_fraction=0.2).equals(table)
    with pytest.raises(ValueError, match="cannot give train and val"):
        build_kitti_index(kitti_root, seed=5, val_fraction=0.01)
