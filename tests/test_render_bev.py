"""The render-bev stage and the `geodistill bev` command."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from stages.cli import app
from geodistill.data.bev import ImageError, jpeg_width, load_bev, read_panorama, reduction_for, render_all
from geodistill.data.synth.writer import write_world
from geodistill.geometry import render_bev


@pytest.fixture(scope="module")
def world(tmp_path_factory, smoke_params):
    root = tmp_path_factory.mktemp("bevworld") / "world"
    synth = smoke_params.synth.model_copy(update={"panoramas_per_city": 6})
    write_world(synth, root)
    return root


def test_reduced_decode_factor():
    assert reduction_for(2048, 512) == 4
    assert reduction_for(2048, 640) == 2
    assert reduction_for(2048, 1024) == 2
    assert reduction_for(512, 512) == 1
    assert reduction_for(4096, 100) == 8


def testjpeg_width_from_header(tmp_path):
    path = tmp_path / "p.jpg"
    cv2.imwrite(str(path), np.zeros((50, 100, 3), np.uint8))
    assert jpeg_width(str(path)) == 100


def test_render_all_packs_every_panorama(world, tmp_path):
    paths = sorted(str(p) for p in world.glob("*/panorama/*.jpg"))
    width = cv2.imread(paths[0]).shape[1]
    for min_width, reduce in ((width, 1), (width // 4, 4)):         # full decode, then JPEG reduced by 4
        out = render_all(paths, size=32, mpp=0.5, cam_h=2.0, out=tmp_path / "bev", min_pano_width=min_width,
                         workers=2)
        array, rows = load_bev(out)
        assert array.shape == (len(paths), 32, 32, 3) and array.dtype == np.uint8
        assert sorted(rows) == paths
        for p in paths[:3]:
            expected = render_bev(read_panorama(p, reduce), 32, 0.5, 2.0)
            assert np.array_equal(array[rows[p]], expected)
        assert not (tmp_path / "bev.partial").exists()


def test_bad_panoramas_are_named(tmp_path):
    square = tmp_path / "square.jpg"
    cv2.imwrite(str(square), np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ImageError, match="square.jpg is 64x64, not equirectangular"):
        read_panorama(square)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageError, match="cannot read panorama .*broken.jpg"):
        read_panorama(broken)
    with pytest.raises(ValueError, match="positive"):
        render_all([str(square)], size=0, mpp=0.5, cam_h=2.0, out=tmp_path / "b", min_pano_width=16)


def test_bev_command(world, tmp_path):
    pano = next(world.glob("*/panorama/*.jpg"))
    out = tmp_path / "bev.png"
    res = CliRunner().invoke(app, ["bev", "--pano", str(pano), "--out", str(out), "--size", "48", "--mpp", "0.5"])
    assert res.exit_code == 0, res.output
    assert cv2.imread(str(out)).shape == (48, 48, 3)
    res = CliRunner().invoke(app, ["bev", "--pano", str(pano), "--out", str(out), "--size", "0"])
    assert res.exit_code == 2 and "--size" in res.output
    square = tmp_path / "square.jpg"
    cv2.imwrite(str(square), np.zeros((64, 64, 3), np.uint8))
    res = CliRunner().invoke(app, ["bev", "--pano", str(square), "--out", str(out)])
    assert res.exit_code == 2 and "square.jpg" in res.output and "equirectangular" in res.output


def test_render_bev_command_needs_an_index(tmp_path):
    from conftest import REPO
    res = CliRunner().invoke(app, ["render-bev", "--config", str(REPO / "configs" / "smoke.yaml"),
                                   "--index", str(tmp_path / "none.csv"), "--out", str(tmp_path / "bev")])
    assert res.exit_code == 2 and "sample table not found" in res.output
