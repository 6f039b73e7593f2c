"""verify-data: counts, truncated/missing images and bad label lines are reported by name."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import stages.cli
from geodistill.data.synth.writer import write_world
from geodistill.data.verify import Total, check_image, known_totals, verify_root
from vigor_fixture import N_TEST, N_TRAIN, make_vigor_root

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


@pytest.fixture
def fx(tmp_path):
    return make_vigor_root(tmp_path / "VIGOR")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_clean_root(fx):
    report = verify_root(fx.root, workers=1)
    assert report.problems == []
    files = sum(len(fx.pano_files(c)) + len(fx.sat_files(c)) for c in fx.lines)
    assert report.checked == files
    assert report.counts.loc["Chicago"].tolist() == [N_TRAIN, N_TEST, N_TRAIN + N_TEST]
    assert sorted(report.counts.index) == ["Chicago", "NewYork", "Seattle"]
    assert f"all {files} files present and decodable" in report.format()


def test_the_fingerprint_follows_every_image_and_label_byte(fx):
    """Stages downstream depend on the report, not the root: any content change must change it."""
    first = verify_root(fx.root, workers=1).fingerprint
    assert len(first) == 64 and verify_root(fx.root, workers=2).fingerprint == first
    assert first in verify_root(fx.root, workers=1).format()
    tile = fx.sat_files("Seattle")[0]
    original = tile.read_bytes()
    cv2.imwrite(str(tile), np.full((8, 8, 3), 7, np.uint8))          # an image edited in place
    edited = verify_root(fx.root, workers=1).fingerprint
    tile.write_bytes(original)
    assert edited != first and verify_root(fx.root, workers=1).fingerprint == first
    labels = fx.root / "splits__corrected" / "Chicago" / "same_area_balanced_test__corrected.txt"
    labels.write_text(labels.read_text() + "\n")                     # a label file's bytes, not its lines
    assert verify_root(fx.root, workers=1).fingerprint != first


def test_truncated_jpeg_panorama(fx):
    pano = fx.pano_files("Chicago")[3]
    # a real JPEG big enough that the cut lands in the entropy-coded data
    cv2.imwrite(str(pano), np.random.default_rng(0).integers(0, 255, (64, 128, 3), dtype=np.uint8))
    truncate(pano)
    report = verify_root(fx.root, workers=2)
    assert report.problems == [f"Chicago/panorama/{pano.name}: truncated JPEG (no end-of-image marker)"]
    assert pano.name in report.format()


def test_truncated_png_tile(fx):
    tile = fx.sat_files("Seattle")[0]
    truncate(tile)
    report = verify_root(fx.root, workers=2)
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"Seattle/satellite/{tile.name}: truncated PNG")


def test_missing_and_empty_files(fx):
    gone = fx.pano_files("NewYork")[0]
    gone.unlink()
    empty = fx.sat_files("NewYork")[1]
    empty.write_bytes(b"")
    report = verify_root(fx.root, workers=1)
    assert sorted(report.problems) == sorted([f"NewYork/panorama/{gone.name}: missing",
                                              f"NewYork/satellite/{empty.name}: empty file"])


def test_check_image_reasons(tmp_path):
    ok = tmp_path / "a.png"
    cv2.imwrite(str(ok), np.zeros((8, 8, 3), np.uint8))
    assert check_image(ok) is None
    bad = tmp_path / "b.jpg"
    bad.write_bytes(b"\x89PNG not a jpeg")
    assert check_image(bad) == "not a JPEG (no start-of-image marker)"
    garbage = tmp_path / "c.jpg"
    garbage.write_bytes(b"\xff\xd8" + b"\x00" * 100 + b"\xff\xd9")
    assert check_image(garbage) == "cannot be decoded"


def test_bad_label_lines_and_missing_lists(fx):
    path = fx.root / "splits__corrected" / "Seattle" / "same_area_balanced_test__corrected.txt"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(".jpg", ".png", 1)
    path.write_text("\n".join(lines) + "\n")
    for f in (fx.root / "splits__corrected" / "NewYork").iterdir():
        f.unlink()
    report = verify_root(fx.root, workers=1)
    assert len(report.problems) == 2
    assert "splits__corrected/NewYork: no label files" in report.problems[0]
    assert report.problems[1].startswith("splits__corrected/Seattle/same_area_balanced_test__corrected.txt:2:")
    assert report.counts.loc["Seattle", "test"] == N_TEST - 1
    assert "-" in report.format()        # NewYork's absent lists


def test_problem_list_is_capped(fx):
    for p in fx.pano_files("Chicago") + fx.pano_files("Seattle") + fx.pano_files("NewYork"):
        p.unlink()
    text = verify_root(fx.root, workers=1).format()
    assert f"{3 * (N_TRAIN + N_TEST)} problems" in text
    assert f"and {3 * (N_TRAIN + N_TEST) - 50} more" in text


def _params_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load(SMOKE.read_text())
    raw["index"].update(same_area_cities=["NewYork", "Seattle", "Chicago"], cross_area_train=["NewYork"],
                        cross_area_test=["Chicago"])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_verify_data(fx, tmp_path):
    config = str(_params_file(tmp_path))
    res = CliRunner().invoke(stages.cli.app, ["verify-data", "--config", config, "--root", str(fx.root),
                                                  "--no-totals"])
    assert res.exit_code == 0, res.output
    assert "present and decodable" in res.output
    pano = fx.pano_files("NewYork")[2]
    truncate(pano)
    res = CliRunner().invoke(stages.cli.app, ["verify-data", "--config", config, "--root", str(fx.root),
                                                  "--workers", "2", "--no-totals"])
    assert res.exit_code == 1
    assert pano.name in res.output and "truncated" in res.output


def test_a_partial_vigor_root_falls_short_of_the_published_totals(fx):
    """The fixture has VIGOR's layout but three tiny cities: every published total is missed."""
    report = verify_root(fx.root, workers=1, totals=known_totals(fx.root))
    source = "(VIGOR, docs/paper-reference.md#vigor)"
    assert report.problems == [
        f"same-area test: {3 * N_TEST:,} label lines in the test files of NewYork, Seattle, SanFrancisco, "
        f"Chicago, expected 52,605 {source} (SanFrancisco: no test label file)",
        f"cross-area test: {N_TRAIN + N_TEST:,} label lines in the all files of SanFrancisco, Chicago, "
        f"expected 53,694 {source} (SanFrancisco: no all label file)",
        f"Chicago same-area test: {N_TEST:,} label lines in the test files of Chicago, expected 12,739 {source}"]
    exact = [Total("Chicago test", ("Chicago",), "test", N_TEST, "here"),
             Total("all three", ("NewYork", "Seattle", "Chicago"), "all", 3 * (N_TRAIN + N_TEST), "here")]
    assert verify_root(fx.root, workers=1, totals=exact).problems == []


def test_a_synthetic_world_is_checked_against_its_dataset_json(tmp_path, smoke_params):
    root = tmp_path / "world"
    write_world(smoke_params.synth, root)
    config = str(SMOKE)
    res = CliRunner().invoke(stages.cli.app, ["verify-data", "--config", config, "--root", str(root)])
    assert res.exit_code == 0, res.output
    labels = root / "splits__corrected" / "Ashford" / "pano_label_balanced__corrected.txt"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[1:]))     # one panorama's line lost
    res = CliRunner().invoke(stages.cli.app, ["verify-data", "--config", config, "--root", str(root)])
    n = smoke_params.synth.panoramas_per_city
    assert res.exit_code == 1
    assert (f"Ashford panoramas: {n - 1:,} label lines in the all files of Ashford, expected {n:,} (dataset.json)"
            in res.output)
