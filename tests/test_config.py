"""Params validation: bad values fail at once, one line per problem, naming the key."""
from __future__ import annotations

import copy

import pytest
import yaml
from typer.testing import CliRunner

from stages.cli import app
from geodistill.config import ConfigError, load_params, parse_params

from conftest import REPO


@pytest.fixture()
def raw():
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())


def test_shipped_params_load():
    for path in (REPO / "params.yaml", REPO / "configs" / "smoke.yaml"):
        p = load_params(path)
        assert p.synth.cities and p.index.same_area_cities


def test_default_world_is_big_enough():
    """The issue's floor for the synthetic default: >= 4 cities, >= 1000 panoramas per city."""
    p = load_params(REPO / "params.yaml")
    assert len(p.synth.cities) >= 4 and p.synth.panoramas_per_city >= 1000
    assert set(p.index.cross_area_train).isdisjoint(p.index.cross_area_test)


def test_typo_key_is_named_with_allowed_keys(raw):
    raw["synth"]["pano_sise"] = [64, 32]
    with pytest.raises(ConfigError) as e:
        parse_params(raw, "params.yaml")
    msg = str(e.value)
    assert msg.count("\n") == 0
    assert msg.startswith("params.yaml: synth.pano_sise: unknown key (allowed: seed, workers,")
    assert "pano_size" in msg


def test_negative_size_is_named(raw):
    raw["synth"]["sat_size"] = -128
    with pytest.raises(ConfigError, match=r"^params: synth\.sat_size: .*greater than or equal to 16.*got -128"):
        parse_params(raw)


def test_bad_choice_lists_allowed_values(raw):
    raw["synth"]["cities"][1]["layout"] = "spiral"
    with pytest.raises(ConfigError, match=r"synth\.cities\.1\.layout: .*'grid' or 'irregular'.*got 'spiral'"):
        parse_params(raw)


def test_reversed_range_and_overlapping_protocols(raw):
    bad = copy.deepcopy(raw)
    bad["synth"]["cities"][0]["floors"] = [9, 2]
    with pytest.raises(ConfigError, match=r"synth\.cities\.0\.floors: .*low <= high"):
        parse_params(bad)
    bad = copy.deepcopy(raw)
    bad["index"]["cross_area_test"] = ["Ashford"]
    with pytest.raises(ConfigError, match="must be disjoint"):
        parse_params(bad)


@pytest.mark.parametrize("seeds, message", [([], "at least 1 item"), ([1, 1], "must be distinct"),
                                            ([-1], "greater than or equal to 0")])
def test_training_seeds_must_be_distinct_and_at_least_one(raw, seeds, message):
    raw["report"]["seeds"] = seeds
    with pytest.raises(ConfigError, match=rf"report\.seeds.*{message}"):
        parse_params(raw)


def test_several_problems_one_line_each(raw):
    raw["synth"]["seed"] = "x"
    raw["index"]["val_fraction"] = 1.5
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and "synth.seed" in lines[0] and "index.val_fraction" in lines[1]


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("synth: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_cli_rejects_bad_params_before_work(tmp_path, raw):
    raw["synth"]["sat_size"] = -1
    cfg = tmp_path / "p.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "world"
    res = CliRunner().invoke(app, ["synth", "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 2
    assert "synth.sat_size" in res.output
    assert not out.exists() and not (tmp_path / "world.partial").exists()


def test_cli_help_lists_stages():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    for name in ("synth", "index", "verify-data"):
        assert name in res.output


def test_bad_augmentation_is_named_with_the_method(raw):
    raw["baselines"]["ccvpe"]["augment"]["gain"] = 1.5
    del raw["baselines"]["g2s_vgg"]["augment"]["mirror"]
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    lines = sorted(str(e.value).splitlines())
    assert len(lines) == 2, lines
    assert "baselines.ccvpe.augment.gain" in lines[0] and "less than 1" in lines[0]
    assert "baselines.g2s_vgg.augment.mirror" in lines[1] and "missing" in lines[1]


def test_bad_baseline_runs_are_named(raw):
    bad = copy.deepcopy(raw)
    bad["runs"]["g2s_vgg-same"]["model"] = "ccvpe"
    with pytest.raises(ConfigError, match=r"runs\.g2s_vgg-same: must be named g2s_vgg-same and have model 'g2s'"):
        parse_params(bad)
    bad = copy.deepcopy(raw)
    bad["runs"]["sift-same"] = {"method": "sift", "area": "same", "model": "g2s"}
    with pytest.raises(ConfigError, match=r"runs\.sift-same\.method: unknown method 'sift'"):
        parse_params(bad)


def test_a_run_may_train_with_its_own_augmentation(raw):
    """runs.<m>-<a>.augment replaces baselines.<m>.augment for that run only (and its distillation)."""
    off = {"mirror": False, "rotate90": False, "permute_channels": False, "gain": 0.0}
    raw["baselines"]["ccvpe"]["augment"] = off
    raw["runs"]["ccvpe-same"]["augment"] = off | {"mirror": True, "gain": 0.1}
    p = parse_params(raw)
    own = p.method_params("ccvpe", "same")
    assert own.augment.model_dump() == off | {"mirror": True, "gain": 0.1}
    assert own.model_dump(exclude={"augment"}) == p.baselines["ccvpe"].model_dump(exclude={"augment"})
    assert p.method_params("ccvpe", "cross") is p.baselines["ccvpe"]        # no run of its own: the method's
    assert p.method_params("g2s_vgg", "same") is p.baselines["g2s_vgg"]     # a run without `augment`


def test_bad_run_augmentation_is_named(raw):
    bad = copy.deepcopy(raw)
    bad["runs"]["ccvpe-same"]["augment"] = {"mirror": True, "rotate90": False, "permute_channels": False}
    with pytest.raises(ConfigError, match=r"runs\.ccvpe-same\.augment\.gain: missing"):
        parse_params(bad)
    bad = copy.deepcopy(raw)
    bad["baselines"]["g2s_vgg"]["symmetric_satellite"] = True
    bad["baselines"]["g2s_vgg"]["augment"]["rotate90"] = True
    bad["runs"]["g2s_vgg-same"]["augment"] = bad["baselines"]["g2s_vgg"]["augment"] | {"rotate90": False}
    with pytest.raises(ConfigError, match=r"runs\.g2s_vgg-same\.augment: symmetric_satellite needs augment\.rotate90"):
        parse_params(bad)


def test_variant_without_its_baseline_run_is_named(raw):
    del raw["runs"]["g2s_vgg-cross"]
    with pytest.raises(ConfigError, match=r"distill\.variants\.geodistill-g2s_vgg-cross: no baseline run "
                                          r"g2s_vgg-cross in `runs`"):
        parse_params(raw)


def test_presets_run_what_their_variants_need():
    for name in ("params.yaml", "configs/smoke.yaml"):
        p = load_params(REPO / name)
        runs = {(r.method, r.area) for r in p.runs.values()}
        assert {(v.method, v.area) for v in p.distill.variants.values()} <= runs
        assert set(p.runs) >= {f"{m}-{a}" for m in ("g2s_vgg", "ccvpe") for a in ("same", "cross")}
