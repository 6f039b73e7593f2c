"""A cross-view KITTI root in the real layout through index -> render-bev -> train -> distill ->
evaluate with a tiny G2SWeakly: the pinhole camera, the aligned satellite crop, the 60-m batch
rule and the lateral/longitudinal metrics, with hand-computed values."""
from __future__ import annotations

import json
import math
import shutil
import sys

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from stages.cli import app
from geodistill.config import ConfigError, load_params, parse_params
from geodistill.data.kitti import CAMERA_GPS_SHIFT_M, KITTI_MPP, camera_pixel, frame_files, lateral_longitudinal
from geodistill.pinhole import pinhole_bev_maps, render_pinhole_bev, sample_pinhole_bev
from geodistill.training.samples import KITTI_BATCH_DISTANCE_M, LocalizationSamples
from conftest import REPO, link_code
from test_pipeline import _run

W, H, RAW = 256, 64, 640                      # stored image and raw satellite map sizes of the fixture
CALIB = (f"calib_time: 09-Jan-2012 14:00:15\nS_rect_02: {W:.6e} {H:.6e}\n"
         "P_rect_02: 1.45e+02 0 1.27e+02 4.6e+01 0 1.45e+02 3.1e+01 1.1e-01 0 0 1 6.2e-03\n")
DRIVE, UNSEEN = "2011_09_30/2011_09_30_drive_0028_sync", "2011_09_30/2011_09_30_drive_0033_sync"
YAW = 0.4                                     # OXTS heading of every frame, radians from east


def _frame(root, path: str, k: int, rng) -> None:
    files = frame_files(root, path)
    for p in (files.image, files.oxts, files.satmap):
        p.parent.mkdir(parents=True, exist_ok=True)
    lat = 49.0 + k * 0.0009                   # ~100 m north of the previous frame: batches of 2 are allowed
    files.oxts.write_text(" ".join([f"{lat:.7f}", "8.4", "110", "0", "0", str(YAW)] + ["0"] * 24) + "\n")
    cv2.imwrite(str(files.image), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    sat = rng.integers(0, 200, (RAW, RAW, 3), dtype=np.uint8)
    # a white dot where the camera is: the OXTS fix at the map centre, moved by the camera's offset
    ahead, right = CAMERA_GPS_SHIFT_M
    east = ahead * math.cos(YAW) + right * math.sin(YAW)
    north = ahead * math.sin(YAW) - right * math.cos(YAW)
    x, y = RAW / 2 + east / KITTI_MPP, RAW / 2 - north / KITTI_MPP
    cv2.circle(sat, (round(x - 0.5), round(y - 0.5)), 4, (255, 255, 255), -1)
    cv2.imwrite(str(files.satmap), sat)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return make_kitti_project(tmp_path_factory.mktemp("kitti"))


def make_kitti_project(folder):
    """Eight training frames of one drive, two same-area (test1) and two cross-area (test2) test
    frames under <folder>/KITTI, and <folder>/params.yaml: KITTI params for a tiny g2s_vgg (from
    the smoke preset). Returns both paths."""
    root = folder / "KITTI"
    rng = np.random.default_rng(0)
    (root / "raw_data" / "2011_09_30").mkdir(parents=True)
    (root / "raw_data" / "2011_09_30" / "calib_cam_to_cam.txt").write_text(CALIB)
    train = [f"{DRIVE}/{k:010d}.png" for k in range(8)]
    test1 = [f"{DRIVE}/{k:010d}.png" for k in (100, 101)]
    test2 = [f"{UNSEEN}/{k:010d}.png" for k in (0, 1)]
    for k, path in enumerate(train + test1 + test2):
        _frame(root, path, k, rng)
    (root / "splits").mkdir()
    (root / "splits" / "train_files.txt").write_text("".join(f"{p}\n" for p in train))
    (root / "splits" / "test1_files.txt").write_text(f"{test1[0]} 0.5 -0.25 0.2\n{test1[1]} -0.1 0.3 -1.0\n")
    (root / "splits" / "test2_files.txt").write_text(f"{test2[0]} 0.0 0.0 0.0\n{test2[1]} 0.75 0.5 0.5\n")

    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["data"] |= {"source": "kitti", "root": str(root), "generate": [], "check_totals": False}
    raw["bev"]["camera_height_m"] = 1.65
    raw["runs"] = {name: r for name, r in raw["runs"].items() if r["method"] == "g2s_vgg"}
    raw["distill"]["variants"] = {"geodistill-g2s_vgg-cross": {"method": "g2s_vgg", "area": "cross",
                                                               "occlusion": {"kind": "fov", "fov_deg": [270, 300]}}}
    vgg = raw["baselines"]["g2s_vgg"]
    vgg.update(pano_size=[128, 32], batch_size=2, epochs=1, max_train_samples=0)
    vgg["augment"]["mirror"] = True           # the pinhole mirror (cx and heading) is exercised too
    (root.parent / "params.yaml").write_text(yaml.safe_dump(raw))
    return root, root.parent / "params.yaml"


def test_ccvpe_is_refused_on_kitti_before_any_work(kitti):
    _, config = kitti
    raw = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    raw["data"] = yaml.safe_load(config.read_text())["data"]
    with pytest.raises(ConfigError, match="runs ccvpe-same, ccvpe-cross: CCVPE reads equirectangular panoramas"):
        parse_params(raw)


def test_features_project_as_the_image_lookup_table():
    """sample_pinhole_bev on an image equals cv2.remap with pinhole_bev_maps (the numpy lookup)."""
    rng = np.random.default_rng(1)
    image = rng.random((H, W)).astype(np.float32)
    K = np.array([[145.0, 0, 127.0], [0, 145.0, 31.0], [0, 0, 1]])
    size, mpp, heading = 48, 0.5, 30.0
    map_x, map_y, seen = pinhole_bev_maps(size, mpp, 1.65, K, W, H, heading)
    want = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) * seen
    camera = torch.tensor([[145.0, 145.0, 127.0, 31.0, heading]])
    got, mask = sample_pinhole_bev(torch.from_numpy(image)[None, None], size, torch.tensor([mpp]), 1.65, camera, (W, H))
    assert np.array_equal(mask[0, 0].numpy() > 0, seen) and seen.sum() > 100
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=2e-3)
    # the camera looks 30 degrees east of north: a cell 10 m that way is seen, 10 m behind is not
    r, c = size / 2 - 10 * math.cos(math.radians(30)) / mpp, size / 2 + 10 * math.sin(math.radians(30)) / mpp
    assert seen[round(r), round(c)] and not seen[round(size - r), round(size - c)]
    assert np.array_equal(render_pinhole_bev(image[..., None].repeat(3, 2), size, mpp, 1.65, K, heading)[..., 0],
                          (cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR) * seen))


def test_kitti_index_to_evaluate(kitti, tmp_path):
    root, config = kitti
    runner = CliRunner()
    index = tmp_path / "index.csv"
    res = runner.invoke(app, ["index", "--config", str(config), "--root", str(root), "--out", str(index)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(index)
    assert len(table) == 2 * (8 + 2)
    row = table[(table.area == "same") & (table.split == "test")].iloc[0]     # 0.5 -0.25 0.2 of test1
    phi = math.radians(2.0)                                                   # 10 m ahead, 5 m right, 2 degrees
    assert (row.gt_row, row.gt_col) == pytest.approx((256 - (10 * math.sin(phi) - 5 * math.cos(phi)) / KITTI_MPP,
                                                      256 + (10 * math.cos(phi) + 5 * math.sin(phi)) / KITTI_MPP))
    assert (row.gt_row, row.gt_col) == pytest.approx(camera_pixel(0.5, -0.25, 0.2))
    assert row.yaw_deg == 88.0 and (row.fx, row.cx, row.image_w) == (145.0, 127.0, W)

    # the loader: the aligned crop has the camera's dot at the labelled pixel, the intrinsics follow the resize
    params = load_params(config)
    data = LocalizationSamples(table[table.split == "test"], (128, 32), 512)
    _, sat, _ = data.batch(np.arange(len(data)))
    for i, (r, c) in enumerate(data.gt_px(np.arange(len(data))).numpy()):
        assert sat[i, round(r), round(c)].min() == 255, f"sample {i}: no camera dot at ({r:.1f}, {c:.1f})"
    cam = data.camera([0], roll_deg=[5.0])[0].numpy()          # half size: pixel centres kept, heading turned back
    np.testing.assert_allclose(cam, [72.5, 72.5, 127.5 / 2 - 0.5, 31.5 / 2 - 0.5, data.rows.yaw_deg[0] - 5.0],
                               rtol=1e-5)                      # a float32 tensor: float32 precision
    train = LocalizationSamples(table[(table.split == "train") & (table.area == "cross")], (128, 32), 64)
    north = (train.rows.lat - 49.0).to_numpy() * math.pi / 180 * 6371004.0
    batches = train.batches(2, seed=1, epoch=0)
    assert len(batches) == len(train) // 2
    for batch in batches:
        assert len(batch) == 2 and abs(north[batch[0]] - north[batch[1]]) >= KITTI_BATCH_DISTANCE_M
    assert len(train.batches(2, seed=1, epoch=0, limit=2)) == 1

    res = runner.invoke(app, ["render-bev", "--config", str(config), "--index", str(index), "--out", str(tmp_path / "bev")])
    assert res.exit_code == 0, res.output
    bev = np.load(tmp_path / "bev" / "bev.npy")
    s = params.bev.size
    assert bev.shape == (len(table.pano_path.unique()), s, s, 3)
    assert bev[:, :, : s // 2 - 4].max() == 0 and bev[:, :, s // 2 + 4:].max() > 0   # heading ~east: west unseen

    from geodistill.distill.teacher_student import train_distill
    from geodistill.evaluation import evaluate
    from geodistill.training.baseline import train_baseline
    seed = params.report.seeds[0]
    train_baseline(index, tmp_path / "base" / "g2s_vgg-cross" / f"seed{seed}", "g2s_vgg", "cross", params)
    train_distill(index, tmp_path / "base", tmp_path / "distill", "geodistill-g2s_vgg-cross", params)
    test = table[(table.area == "cross") & (table.split == "test")]
    pd.DataFrame({"pano_path": test.pano_path, "true_yaw_deg": 4.0, "pred_yaw_deg": 1.0}).to_csv(
        tmp_path / "orient.csv", index=False)
    for checkpoint in (tmp_path / "base" / "g2s_vgg-cross" / f"seed{seed}" / "best.pt", tmp_path / "distill" / "teacher.pt"):
        m = evaluate(checkpoint, index, tmp_path / "orient.csv", tmp_path / "pred.csv", tmp_path / "m.json")
        assert json.loads((tmp_path / "m.json").read_text()) == m and m["2dof"]["n"] == 2
        pred = pd.read_csv(tmp_path / "pred.csv")
        # lateral and longitudinal split the 2-D error exactly, along the heading of each crop
        np.testing.assert_allclose(np.hypot(pred.lateral_m, pred.longitudinal_m), pred.error_m, rtol=1e-6)
        lat, lon = lateral_longitudinal(pred[["pred_row", "pred_col"]].to_numpy(), pred[["gt_row", "gt_col"]].to_numpy(),
                                        test.yaw_deg.to_numpy(), test.mpp.to_numpy())
        # pred_row and pred_col are float32 predictions, written to the CSV in float32's shortest form:
        # recomputed from what the CSV holds, lateral_m agrees to float32 precision only (0.01 mm)
        np.testing.assert_allclose(pred.lateral_m, lat, rtol=1e-5, atol=1e-5)
        assert m["2dof"]["lateral"]["mean_m"] == pytest.approx(lat.mean(), rel=1e-5, abs=1e-5)
        assert m["3dof"]["longitudinal"]["n"] == 2 and (pred.yaw_residual_deg == 3.0).all()
    m = evaluate(checkpoint, index, tmp_path / "orient.csv", tmp_path / "pred.csv", None, three_dof=False)
    assert "3dof" not in m and m["2dof"]["lateral"]["n"] == 2       # known orientation only: still split
    assert "lateral_m" in pd.read_csv(tmp_path / "pred.csv") and "lateral_3dof_m" not in pd.read_csv(tmp_path / "pred.csv")


@pytest.mark.slow
def test_dvc_repro_runs_the_whole_pipeline_on_a_kitti_root(tmp_path):
    """The unchanged dvc.yaml on data.source kitti: verify-data -> index -> render-bev ->
    orientation -> g2s_vgg -> GeoDistill -> evaluate -> tables and figures (~1 min)."""
    root, _ = make_kitti_project(tmp_path)
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    link_code(tmp_path)
    _run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], tmp_path)
    _run([sys.executable, "-m", "dvc", "repro"], tmp_path)
    assert "present and decodable" in (tmp_path / "reports" / "verify-data.txt").read_text()
    table = pd.read_csv(tmp_path / "data" / "eval" / "geodistill-g2s_vgg-cross" / "teacher" / "seed2023.csv")
    want = [camera_pixel(0.0, 0.0, 0.0), camera_pixel(0.75, 0.5, 0.5)]     # test2's fixed triples
    np.testing.assert_allclose(table[["gt_row", "gt_col"]].to_numpy(), want)
    metrics = json.loads((tmp_path / "reports" / "results" / "geodistill-g2s_vgg-cross.json").read_text())
    assert metrics["teacher"]["2dof"]["lateral"]["n"] == 2 and metrics["seeds"] == [2023, 2024]
    assert (tmp_path / "reports" / "tables" / "main.md").is_file()
