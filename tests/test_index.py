"""Sample table from a VIGOR-layout root: protocols, ground-truth pixels, splits, errors, CLI."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import stages.cli
from geodistill.config import IndexParams
from geodistill.data.index import COLUMNS, build_index, summarize, write_index
from geodistill.data.vigor import FormatError
from vigor_fixture import FIRST_DELTAS, MPP, N_TEST, N_TRAIN, make_vigor_root, synthetic_meta

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"


def index_params(**over) -> IndexParams:
    kw = dict(seed=11, val_fraction=0.2, same_area_cities=["NewYork", "Seattle", "Chicago"],
              cross_area_train=["NewYork", "Seattle"], cross_area_test=["Chicago"], sat_size=640, mpp=dict(MPP),
              gps_noise_m=0.0)
    kw.update(over)
    return IndexParams(**kw)


@pytest.fixture
def fx(tmp_path):
    return make_vigor_root(tmp_path / "VIGOR")


def test_columns_and_one_row_per_sample_and_protocol(fx):
    table = build_index(fx.root, index_params())
    assert list(table.columns) == COLUMNS
    n = N_TRAIN + N_TEST
    assert (table.area == "same").sum() == 3 * n
    assert (table.area == "cross").sum() == 3 * n
    assert (table.yaw_deg == 0.0).all()
    assert table.pano_path.iloc[0] == str(fx.root / "Chicago" / "panorama" / fx.lines["Chicago"]["train"][0].split()[0])
    tokens = fx.lines["Chicago"]["train"][0].split()
    assert table.tiles.iloc[0] == ";".join(tokens[i] for i in (1, 4, 7, 10))      # positive first
    assert all(t.split(";")[0] == Path(p).name for t, p in zip(table.tiles, table.sat_path))


def test_gt_pixel_from_positive_deltas(fx):
    table = build_index(fx.root, index_params())
    first = fx.lines["NewYork"]["train"][0].split()
    row = table[(table.pano_path == str(fx.root / "NewYork" / "panorama" / first[0])) & (table.area == "same")]
    assert len(row) == 1
    dy, dx = FIRST_DELTAS
    assert (dy, dx) == (23.0, -29.0)
    assert row.gt_row.item() == 343.0 and row.gt_col.item() == 349.0     # 320 + dy, 320 - dx
    assert row.sat_path.item() == str(fx.root / "NewYork" / "satellite" / first[1])   # the positive
    assert row.sat_size.item() == 640
    # every row: row = S/2 + dy, col = S/2 - dx of the first satellite
    by_pano = {ln.split()[0]: ln.split() for ln in fx.lines["Seattle"]["all"]}
    sea = table[table.city == "Seattle"]
    for r in sea.itertuples():
        tok = by_pano[Path(r.pano_path).name]
        assert r.gt_row == 320 + float(tok[2]) and r.gt_col == 320 - float(tok[3])


def test_gps_noise_moves_only_training_labels_to_the_nearest_listed_tile(fx):
    exact = build_index(fx.root, index_params())
    noisy = build_index(fx.root, index_params(gps_noise_m=3.0))
    assert (exact.pano_path == noisy.pano_path).all() and (exact.split == noisy.split).all()
    held = exact.split != "train"
    pd.testing.assert_frame_equal(exact[held], noisy[held])                       # val and test exact
    train = ~held
    moved = noisy[train].gt_row.to_numpy() - exact[train].gt_row.to_numpy()
    same_tile = (noisy[train].sat_path == exact[train].sat_path).to_numpy()
    assert moved[same_tile].std() * MPP["NewYork"] == pytest.approx(3.0, rel=0.35)   # ~3 m (mpp ~0.1-0.11)
    assert 0 < (~same_tile).sum() < train.sum()                                    # some positives change
    lines = {ln.split()[0]: ln.split() for c in MPP for ln in fx.lines.get(c, {}).get("all", [])}
    for r in noisy[train].itertuples():
        tok = lines[Path(r.pano_path).name]
        at = [(320 + float(tok[2 + 3 * k]), 320 - float(tok[3 + 3 * k])) for k in range(4)]   # camera per tile
        k = [tok[1 + 3 * j] for j in range(4)].index(Path(r.sat_path).name)
        shift = (r.gt_row - at[k][0], r.gt_col - at[k][1])                   # the GPS error, in pixels
        cheb = [max(abs(a + shift[0] - 320), abs(b + shift[1] - 320)) for a, b in at]
        assert cheb[k] == min(cheb)                                          # the nearest listed tile
    again = build_index(fx.root, index_params(gps_noise_m=3.0))
    pd.testing.assert_frame_equal(noisy, again)                                     # seeded


def test_mpp_from_params_without_dataset_json(fx):
    table = build_index(fx.root, index_params())
    assert table.groupby("city").mpp.unique().map(list).to_dict() == {c: [m] for c, m in MPP.items()}


def test_missing_mpp_names_city_and_key(fx):
    with pytest.raises(FormatError, match=r"Chicago.*index\.mpp"):
        build_index(fx.root, index_params(mpp={"NewYork": 0.1, "Seattle": 0.1}))


def test_dataset_json_gives_size_and_mpp(tmp_path):
    mpp = {"NewYork": 0.5, "Seattle": 0.25, "Chicago": 0.75}
    fx = make_vigor_root(tmp_path / "world", dataset_json=synthetic_meta(128, mpp))
    table = build_index(fx.root, index_params(mpp={}))          # params' mpp and sat_size unused
    assert (table.sat_size == 128).all()
    assert table.groupby("city").mpp.first().to_dict() == mpp
    first = fx.lines["NewYork"]["train"][0].split()[0]
    row = table[(table.pano_path.str.endswith(first)) & (table.area == "same")]
    assert row.gt_row.item() == 64 + 23.0 and row.gt_col.item() == 64 + 29.0


def test_same_area_protocol(fx):
    table = build_index(fx.root, index_params())
    same = table[table.area == "same"]
    for city in ("NewYork", "Seattle", "Chicago"):
        rows = same[same.city == city]
        names = lambda which: [ln.split()[0] for ln in fx.lines[city][which]]
        trainval = rows[rows.split.isin(["train", "val"])]
        assert sorted(trainval.pano_path.map(lambda p: Path(p).name)) == sorted(names("train"))
        assert list(rows[rows.split == "test"].pano_path.map(lambda p: Path(p).name)) == names("test")
        assert (rows.split == "val").sum() == round(N_TRAIN * 0.2)


def test_cross_area_protocol(fx):
    table = build_index(fx.root, index_params())
    cross = table[table.area == "cross"]
    all_names = lambda city: sorted(ln.split()[0] for ln in fx.lines[city]["all"])
    for city in ("NewYork", "Seattle"):
        rows = cross[cross.city == city]
        assert set(rows.split) == {"train", "val"}
        assert sorted(rows.pano_path.map(lambda p: Path(p).name)) == all_names(city)
        assert (rows.split == "val").sum() == round((N_TRAIN + N_TEST) * 0.2)
    chicago = cross[cross.city == "Chicago"]
    assert set(chicago.split) == {"test"} and len(chicago) == N_TRAIN + N_TEST


def test_cross_area_val_holds_out_whole_cities(fx):
    table = build_index(fx.root, index_params(cross_area_val=["Seattle"]))
    cross = table[table.area == "cross"]
    counts = cross.groupby(["city", "split"]).size().to_dict()
    n = N_TRAIN + N_TEST
    assert counts == {("Chicago", "test"): n, ("NewYork", "train"): n, ("Seattle", "val"): n}
    same = build_index(fx.root, index_params())
    assert table[table.area == "same"].equals(same[same.area == "same"])    # the same-area protocol is untouched


@pytest.mark.parametrize("val, message", [
    (["Chicago"], r"cross_area_val must name cities of cross_area_train \['NewYork', 'Seattle'\], got \['Chicago'\]"),
    (["NewYork", "Seattle"], r"holds out every cross_area_train city"),
])
def test_cross_area_val_must_leave_a_training_city(val, message):
    with pytest.raises(ValueError, match=message):
        index_params(cross_area_val=val)


def test_val_share_follows_val_fraction(fx):
    for frac in (0.0, 0.5):
        table = build_index(fx.root, index_params(val_fraction=frac))
        tv = table[table.split != "test"]
        assert (tv.split == "val").mean() == pytest.approx(frac, abs=0.02)


def test_split_deterministic_and_seeded(fx):
    a = build_index(fx.root, index_params(seed=11))
    b = build_index(fx.root, index_params(seed=11))
    c = build_index(fx.root, index_params(seed=12))
    pd.testing.assert_frame_equal(a, b)
    val = lambda t: set(zip(t.area[t.split == "val"], t.pano_path[t.split == "val"]))
    test = lambda t: set(zip(t.area[t.split == "test"], t.pano_path[t.split == "test"]))
    assert val(a) != val(c) and len(val(a)) == len(val(c))
    assert test(a) == test(c)                                   # only train/val is seeded


def test_row_order_is_deterministic(fx):
    table = build_index(fx.root, index_params(same_area_cities=["Seattle", "Chicago", "NewYork"]))
    keys = list(dict.fromkeys(zip(table.area, table.city, table.split)))
    assert keys[:3] == [("same", "Chicago", "train"), ("same", "Chicago", "val"), ("same", "Chicago", "test")]
    assert keys[-1] == ("cross", "Seattle", "val")
    pd.testing.assert_frame_equal(table, build_index(fx.root, index_params()))


def test_relative_root_stays_relative(fx, monkeypatch):
    monkeypatch.chdir(fx.root.parent)
    table = build_index(Path("VIGOR"), index_params())
    assert table.pano_path.str.startswith("VIGOR/NewYork/panorama/").any()
    assert not table.sat_path.str.startswith("/").any()


def test_unknown_city_named(fx):
    with pytest.raises(FormatError, match=r"Boston.*available: Chicago, NewYork, Seattle"):
        build_index(fx.root, index_params(cross_area_test=["Boston"]))


def test_missing_label_file_named(fx):
    path = fx.root / "splits__corrected" / "Seattle" / "same_area_balanced_test__corrected.txt"
    path.unlink()
    with pytest.raises((FormatError, FileNotFoundError), match=str(path)):
        build_index(fx.root, index_params())


def test_malformed_line_names_file_and_line(fx):
    path = fx.root / "splits__corrected" / "Chicago" / "pano_label_balanced__corrected.txt"
    lines = path.read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:-1])        # 12 tokens
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=rf"{path}:5: expected 13 tokens, got 12"):
        build_index(fx.root, index_params())


def test_bad_pano_name_names_file(fx):
    path = fx.root / "splits__corrected" / "Seattle" / "same_area_balanced_test__corrected.txt"
    path.write_text(path.read_text().replace(",.jpg", ".jpg", 1))
    with pytest.raises(FormatError, match=str(path)):
        build_index(fx.root, index_params())


def test_write_index_round_trips(fx, tmp_path):
    table = build_index(fx.root, index_params())
    out = tmp_path / "out" / "deep" / "index.csv"
    write_index(table, out)
    back = pd.read_csv(out)
    pd.testing.assert_frame_equal(back, table, check_exact=True)
    assert (back.gt_row == 320 + 12.345678901234567).any()
    assert [p.name for p in out.parent.iterdir()] == ["index.csv"]     # no .tmp left


def test_summarize_counts(fx):
    text = summarize(build_index(fx.root, index_params()))
    assert "NewYork" in text and "val" in text and "total" in text
    assert text.index("same") < text.index("cross")
    assert text.splitlines()[-1].split() == ["total", "90", "22", "44", "156"]


def _params_file(tmp_path: Path) -> Path:
    raw = yaml.safe_load(SMOKE.read_text())
    raw["index"] = index_params().model_dump()
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_index(fx, tmp_path):
    out = tmp_path / "data" / "index.csv"
    res = CliRunner().invoke(stages.cli.app, ["index", "--config", str(_params_file(tmp_path)),
                                                  "--root", str(fx.root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out)
    assert list(table.columns) == COLUMNS and len(table) == 6 * (N_TRAIN + N_TEST)
    assert "Chicago" in res.output


def test_cli_index_missing_root(tmp_path):
    res = CliRunner().invoke(stages.cli.app, ["index", "--config", str(_params_file(tmp_path)),
                                                  "--root", str(tmp_path / "nowhere"),
                                                  "--out", str(tmp_path / "i.csv")])
    assert res.exit_code == 2
    assert "dataset root not found" in res.output
