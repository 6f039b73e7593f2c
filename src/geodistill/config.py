"""Typed, validated params: the only source of settings.

    from geodistill.config import load_params
    params = load_params("params.yaml")      # raises ConfigError before any work starts

Every section is a pydantic model that forbids unknown keys, so a typo'd key, a wrong type or
an out-of-range value fails at once with one line per problem naming the dotted key, what is
allowed and what was given:

    params.yaml: synth.pano_widht: unknown key (allowed: seed, workers, panoramas_per_city, ...)
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A params file that cannot be used; the message names the file and the key."""


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range must be [low, high] with low <= high, got {list(pair)}")
    return pair


Range = Annotated[tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]], AfterValidator(_ordered)]
IntRange = Annotated[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]], AfterValidator(_ordered)]
CityName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
PALETTES = ("brick", "concrete", "stucco", "glass")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CityParams(Section):
    """One synthetic city; its style makes cross-area a real domain shift."""

    name: CityName
    origin: tuple[Annotated[float, Field(ge=-80, le=80)], Annotated[float, Field(ge=-180, le=180)]]
    mpp: float = Field(gt=0, le=2, description="metres per satellite-tile pixel")
    layout: Literal["grid", "irregular"]
    rotation_deg: float = Field(ge=-90, le=90, description="orientation of the street grid")
    block_m: Range = Field(description="distance between parallel streets")
    road_width_m: Range
    sidewalk_m: Range
    setback_m: Range = Field(description="gap between sidewalk and building")
    building_size_m: Range = Field(description="footprint side length")
    floors: IntRange
    building_fill: float = Field(ge=0, le=1, description="fraction of free block area tried for buildings")
    street_tree_spacing_m: float = Field(gt=0)
    park_trees_per_ha: float = Field(ge=0)
    parked_car_spacing_m: float = Field(gt=0)
    palette: Literal[PALETTES]  # type: ignore[valid-type]
    facade_styles: int = Field(ge=1, le=16, description="distinct facades; few = repetitive architecture")


class AppearanceParams(Section):
    """Appearance gap between the views (calibrated later against VIGOR's error profile)."""

    haze_m: float = Field(gt=0, description="distance at which the panorama fades 63% to haze")
    exposure_jitter: float = Field(ge=0, le=1, description="panorama brightness drawn in 1 ± this")
    sun_elevation_deg: Range
    sat_colour_jitter: float = Field(ge=0, le=1, description="per-tile colour gain drawn in 1 ± this")
    sat_shadow_strength: float = Field(ge=0, le=1, description="darkening of cast shadows in tiles")
    sat_noise_std: float = Field(ge=0, le=50, description="Gaussian sensor noise, grey levels")
    pano_noise_std: float = Field(ge=0, le=50)


class SynthParams(Section):
    seed: int = Field(ge=0)
    workers: int = Field(ge=0, description="render processes; 0 = one per CPU core")
    panoramas_per_city: int = Field(ge=1)
    extent_m: float = Field(gt=0, description="side of each city's square world")
    pano_size: tuple[Annotated[int, Field(ge=16)], Annotated[int, Field(ge=8)]] = Field(description="[width, height]")
    sat_size: int = Field(ge=16, multiple_of=4, description="satellite tile side in pixels")
    world_supersample: int = Field(ge=1, le=4, description="world raster cells per tile pixel (per axis)")
    camera_height_m: float = Field(gt=0, le=10)
    max_range_m: float = Field(gt=0, description="panorama rays stop here (haze beyond)")
    test_fraction: float = Field(gt=0, lt=1, description="same-area test share of each city")
    jpeg_quality: int = Field(ge=1, le=100)
    appearance: AppearanceParams
    cities: list[CityParams] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> "SynthParams":
        names = [c.name for c in self.cities]
        if len(set(names)) != len(names):
            raise ValueError(f"city names must be unique, got {names}")
        w, h = self.pano_size
        if w != 2 * h:
            raise ValueError(f"pano_size must be equirectangular [2H, H], got {[w, h]}")
        for c in self.cities:
            tile_m = self.sat_size * c.mpp
            if self.extent_m < 3 * tile_m:
                raise ValueError(f"extent_m={self.extent_m} must be >= 3 tiles ({3 * tile_m:g} m for {c.name})")
        return self


VIGOR_MPP = {"NewYork": 0.113248, "Seattle": 0.100817, "SanFrancisco": 0.118141, "Chicago": 0.111262}


class IndexParams(Section):
    seed: int = Field(ge=0)
    val_fraction: float = Field(ge=0, lt=1, description="share of each training list held out for validation")
    same_area_cities: list[CityName] = Field(min_length=1)
    cross_area_train: list[CityName] = Field(min_length=1)
    cross_area_test: list[CityName] = Field(min_length=1)
    sat_size: int = Field(ge=1, description="tile side in pixels when the root has no dataset.json (VIGOR: 640)")
    mpp: dict[CityName, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: dict(VIGOR_MPP),
        description="metres per pixel of the tiles as stored, when the root has no dataset.json")

    @model_validator(mode="after")
    def _check(self) -> "IndexParams":
        both = sorted(set(self.cross_area_train) & set(self.cross_area_test))
        if both:
            raise ValueError(f"cross_area_train and cross_area_test must be disjoint, both have {both}")
        return self


class BevParams(Section):
    """Metric bird's-eye views pre-rendered from the panoramas (stage render-bev)."""

    size: int = Field(ge=8, le=2048, description="BEV side in pixels")
    mpp: float = Field(gt=0, le=2, description="metres per BEV pixel")
    camera_height_m: float = Field(gt=0, le=10)
    min_pano_width: int = Field(ge=16, description="JPEGs are decoded at the smallest reduced size at least this wide")
    workers: int = Field(ge=0, description="render processes; 0 = one per CPU core")


class OrientationParams(Section):
    """Yaw from BEV + satellite (stage train-orientation), REFERENCE.md section 3."""

    seed: int = Field(ge=0)
    areas: list[Literal["same", "cross"]] = Field(min_length=1, description="protocols to train and test")
    backbone: str = Field(min_length=1, description="timm model name, one encoder per view")
    pretrained: bool
    weights: str | None = Field(description="local timm checkpoint file for offline pretrained weights")
    input_size: int = Field(ge=32, multiple_of=32, description="side both views are resized to (pixels)")
    range_deg: float = Field(gt=0, le=180, description="yaw drawn in [-range, range); 180 = full circle")
    bins: int = Field(ge=2, description="angle classes over the range")
    label_sigma_bins: float = Field(gt=0, description="width of the soft Gaussian label")
    hidden: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, description="MLP widths after the conv")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)
    max_train_samples: int = Field(ge=0, description="cap on training samples per epoch; 0 = all")
    threads: int = Field(ge=0, description="torch CPU threads; 0 = torch's default")


class Params(Section):
    synth: SynthParams
    index: IndexParams
    bev: BevParams
    orientation: OrientationParams


def _describe(err: dict, model: type[BaseModel]) -> str:
    """One readable line for one pydantic error."""
    key = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        parent = _model_at(model, err["loc"][:-1])
        allowed = ", ".join(parent.model_fields) if parent else "?"
        return f"{key}: unknown key (allowed: {allowed})"
    if err["type"] == "missing":
        return f"{key}: missing"
    given = err.get("input")
    return f"{key}: {err['msg']} (got {given!r})"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        inner = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if inner is None:
            return None
        model = inner
    return model


def parse_params(raw: object, source: str = "params") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = [f"{source}: {_describe(err, Params)}" for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None


def load_params(path: str | Path) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    return parse_params(raw, str(path))
