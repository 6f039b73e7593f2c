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
from types import UnionType
from typing import Annotated, Literal, Union, get_args, get_origin

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A params file that cannot be used; the message names the file and the key."""


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range must be [low, high] with low <= high, got {list(pair)}")
    return pair


def _increasing(pair: tuple[int, int]) -> tuple[int, int]:
    if pair[0] >= pair[1]:
        raise ValueError(f"range must be [low, high) with low < high, got {list(pair)}")
    return pair


def _distinct(values: list) -> list:
    if len(set(values)) != len(values):
        raise ValueError(f"values must be distinct, got {values}")
    return values


Range = Annotated[tuple[Annotated[float, Field(ge=0)], Annotated[float, Field(ge=0)]], AfterValidator(_ordered)]
IntRange = Annotated[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]], AfterValidator(_ordered)]
CityName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
PALETTES = ("brick", "concrete", "stucco", "glass")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, raw):
        """YAML's true/false where a number belongs fails as a wrong type (pydantic would take it as 1/0)."""
        if not isinstance(raw, dict):
            return raw
        return {k: _unbool(v, cls.model_fields[k].annotation) if k in cls.model_fields else v for k, v in raw.items()}


class _YamlBool:
    """A true/false given for a number: no number type accepts it, and errors show it as written."""

    def __init__(self, value: bool):
        self.value = value

    def __repr__(self) -> str:
        return str(self.value).lower()


def _unbool(value, ann):
    """`value` with every bool that the annotation `ann` wants as an int or float made a _YamlBool."""
    origin, args = get_origin(ann), get_args(ann)
    if origin is Annotated:
        return _unbool(value, args[0])
    if origin in (Union, UnionType):
        if bool in args:
            return value
        changed = (_unbool(value, a) for a in args)       # the first member that wants a number decides
        return next((v for v in changed if v is not value), value)
    if isinstance(value, bool):
        return _YamlBool(value) if ann in (int, float) else value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        inner = args if origin is tuple and Ellipsis not in args else [args[0]] * len(value)
        return [_unbool(v, a) for v, a in zip(value, inner)] + list(value[len(inner):])
    if origin is dict and isinstance(value, dict):
        return {k: _unbool(v, args[1]) for k, v in value.items()}
    return value


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
    leafy_street_fraction: float = Field(ge=0, le=1, description="share of roads lined with large trees whose "
                                         "crowns close over the road, hiding it from above")
    leafy_tree_radius_m: Range = Field(description="crown radius of a leafy street's trees (others: 1.6-3.2 m)")


class AppearanceParams(Section):
    """Appearance gap between the views (calibrated later against VIGOR's error profile)."""

    haze_m: float = Field(gt=0, description="distance at which the panorama fades 63% to haze")
    exposure_jitter: float = Field(ge=0, le=1, description="panorama brightness drawn in 1 ± this")
    sun_elevation_deg: Range
    sat_colour_jitter: float = Field(ge=0, le=1, description="per-tile colour gain drawn in 1 ± this")
    sat_shadow_strength: float = Field(ge=0, le=1, description="darkening of cast shadows in tiles")
    sat_noise_std: float = Field(ge=0, le=50, description="Gaussian sensor noise, grey levels")
    pano_noise_std: float = Field(ge=0, le=50)
    white_balance_jitter: float = Field(ge=0, le=1, description="per-panorama, per-channel colour gain drawn in "
                                        "1 ± this (time of day, camera white balance)")
    sat_cloud_cover: float = Field(ge=0, lt=1, description="share of the satellite mosaic under cloud")
    sat_cloud_size_m: float = Field(gt=0, description="typical cloud diameter (m)")
    sat_cloud_opacity: float = Field(ge=0, le=1, description="how much of the ground a cloud hides (1: all)")


class TransientParams(Section):
    """Objects in the panorama only: traffic and people present when it was captured."""

    busy_fraction: float = Field(ge=0, le=1, description="share of panoramas captured in traffic")
    vehicles: float = Field(ge=0, le=50, description="mean (Poisson) vehicles near a busy panorama's camera")
    pedestrians: float = Field(ge=0, le=50, description="mean (Poisson) pedestrians near a busy panorama's camera")
    radius_m: float = Field(gt=0, le=100, description="they stand within this distance along the camera's road")


class SynthParams(Section):
    seed: int = Field(ge=0)
    workers: int = Field(ge=0, description="render processes; 0 = one per CPU core")
    panoramas_per_city: int = Field(ge=1)
    extent_m: float = Field(gt=0, description="side of each city's square world")
    pano_size: tuple[Annotated[int, Field(ge=16)], Annotated[int, Field(ge=8)]] = Field(description="[width, height]")
    sat_size: int = Field(ge=16, multiple_of=4, description="satellite tile side in pixels")
    world_supersample: int = Field(ge=1, le=4, description="world raster cells per tile pixel (per axis)")
    camera_height_m: float = Field(gt=0, le=10)
    camera_height_jitter_m: float = Field(ge=0, le=1.5, description="per-panorama camera height drawn in "
                                          "camera_height_m ± this (the BEV assumes camera_height_m)")
    cameras_under_canopy: bool = Field(description="panoramas may be taken under a tree crown (hidden from above)")
    parked_car_turnover: float = Field(ge=0, le=1, description="share of parked cars gone when the panoramas "
                                       "were taken (in the satellite image only)")
    transients: TransientParams
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
        if self.camera_height_jitter_m >= self.camera_height_m:
            raise ValueError(f"camera_height_jitter_m={self.camera_height_jitter_m} must be below "
                             f"camera_height_m={self.camera_height_m}")
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
    cross_area_val: list[CityName] = Field(
        default_factory=list, description="cross_area_train cities held out whole as the cross-area validation "
        "split, none of them trained on: validation on unseen cities; [] = val_fraction of every training city")
    sat_size: int = Field(ge=1, description="tile side in pixels when the root has no dataset.json (VIGOR: 640)")
    gps_noise_m: float = Field(ge=0, le=50, description="GPS error (std per axis, metres) of the training rows' "
                               "positions: it picks their positive tile and the position fully supervised "
                               "methods learn; val and test rows stay exact")
    mpp: dict[CityName, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: dict(VIGOR_MPP),
        description="metres per pixel of the tiles as stored, when the root has no dataset.json")

    @model_validator(mode="after")
    def _check(self) -> "IndexParams":
        both = sorted(set(self.cross_area_train) & set(self.cross_area_test))
        if both:
            raise ValueError(f"cross_area_train and cross_area_test must be disjoint, both have {both}")
        stray = [c for c in self.cross_area_val if c not in self.cross_area_train]
        if stray:
            raise ValueError(f"cross_area_val must name cities of cross_area_train {self.cross_area_train}, "
                             f"got {stray}")
        if self.cross_area_val and set(self.cross_area_train) <= set(self.cross_area_val):
            raise ValueError(f"cross_area_val {self.cross_area_val} holds out every cross_area_train city: "
                             "leave at least one to train on")
        return self


class BevParams(Section):
    """Metric bird's-eye views pre-rendered from the panoramas (stage render-bev)."""

    size: int = Field(ge=8, le=2048, description="BEV side in pixels")
    mpp: float = Field(gt=0, le=2, description="metres per BEV pixel")
    camera_height_m: float = Field(gt=0, le=10)
    min_pano_width: int = Field(ge=16, description="JPEGs are decoded at the smallest reduced size at least this wide")
    workers: int = Field(ge=0, description="render processes; 0 = one per CPU core")


class ConcatHead(Section):
    """The authors' head: both encoders' last (stride-32) features concatenated -> conv3x3 + BN +
    ReLU -> MLP -> one logit per bin. Both views are resized to input_size, whatever their scale."""

    kind: Literal["concat"]
    hidden: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, description="MLP widths after the conv")


class CorrelateHead(Section):
    """Matching head (this project's, not the authors'): BEV features rotated to every bin centre
    and correlated with the satellite features at one metric scale; the best match per angle is
    the bin's logit. The satellite tile is resampled to input_mpp and centre-cropped or padded to
    input_size; the BEV is resampled to input_mpp too (bev extent / input_mpp pixels)."""

    kind: Literal["correlate"]
    level: int = Field(description="encoder feature level (timm feature_info index; -1 = last)")
    channels: int = Field(ge=1, description="matching feature width")
    input_mpp: float = Field(gt=0, description="metres per input pixel of both views")


class OrientationParams(Section):
    """Yaw from BEV + satellite (stage train-orientation), docs/paper-reference.md#orientation-network."""

    seed: int = Field(ge=0)
    areas: list[Literal["same", "cross"]] = Field(min_length=1, description="protocols to train and test")
    backbone: str = Field(min_length=1, description="timm model name, one encoder per view")
    pretrained: bool
    weights: str | None = Field(description="local timm checkpoint file for offline pretrained weights")
    input_size: int = Field(ge=32, multiple_of=32, description="satellite input side (pixels)")
    head: ConcatHead | CorrelateHead = Field(discriminator="kind")
    range_deg: float = Field(gt=0, le=180, description="yaw drawn in [-range, range); 180 = full circle")
    bins: int = Field(ge=2, description="angle classes over the range")
    label_sigma_bins: float = Field(gt=0, description="width of the soft Gaussian label")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)
    max_train_samples: int = Field(ge=0, description="cap on training samples per epoch; 0 = all")
    threads: int = Field(ge=0, description="torch CPU threads; 0 = torch's default")


class UnetEncoderParams(Section):
    """A timm CNN cut at stride 8 with a U-Net decoder (G2SWeakly's VGG16 variant)."""

    kind: Literal["unet"]
    backbone: str = Field(min_length=1, description="timm CNN name (paper: vgg16)")
    channels: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=3,
                                                        description="widths of the levels at strides 8, 4, 2")


class DptEncoderParams(Section):
    """A frozen timm ViT read at four blocks with a trainable DPT-style decoder (DINO variant)."""

    kind: Literal["dpt"]
    backbone: str = Field(min_length=1, description="timm ViT name (paper: vit_base_patch14_dinov2)")
    blocks: list[Annotated[int, Field(ge=0)]] = Field(min_length=4, max_length=4)
    channels: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=3,
                                                        description="widths of the levels at strides 8, 4, 2")
    freeze: bool = Field(description="keep the ViT frozen (the paper's setting)")
    patch_size: int | None = Field(default=None, ge=2, description="ViT patch side; null = the backbone's own")


class AugmentParams(Section):
    """Training augmentation, drawn per sample and applied alike to both views (training/augment.py)."""

    mirror: bool = Field(description="mirror the world east-west for half the samples (exact labels)")
    rotate90: bool = Field(description="turn the world by 0, 90, 180 or 270 degrees per sample (exact labels)")
    permute_channels: bool = Field(description="one random order of the colour channels per sample")
    gain: float = Field(ge=0, lt=1, description="per-channel colour gain drawn in [1 - gain, 1 + gain]; 0 = off")


class LocalizerParams(Section):
    """What every localization method shares: inputs, weights and its training schedule."""

    pretrained: bool
    weights: str | None = Field(description="local timm checkpoint file for offline pretrained weights")
    pano_size: tuple[Annotated[int, Field(ge=8)], Annotated[int, Field(ge=8)]] = Field(
        description="panorama input [W, H], W = 2H, multiples of 8")
    sat_size: int = Field(ge=16, multiple_of=8, description="satellite input side (pixels)")
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=2, description="weak loss needs negatives: at least 2")
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)
    max_train_samples: int = Field(ge=0, description="cap on training samples per epoch; 0 = all")
    lr_schedule: Literal["constant", "cosine"] = Field(
        description="constant, or cosine: lr decays to 0 over the run (after the warm-up)")
    warmup_fraction: float = Field(ge=0, lt=1, description="share of the run's steps over which lr ramps up "
                                                            "linearly from 0 (0 = none)")
    augment: AugmentParams

    @model_validator(mode="after")
    def _check_pano(self) -> "LocalizerParams":
        w, h = self.pano_size
        if w % 8 or h % 8:
            raise ValueError(f"pano_size must be multiples of 8, got {[w, h]}")
        return self


class G2SParams(LocalizerParams):
    """G2SWeakly (docs/paper-reference.md#g2sweakly): one encoder per view, ground features projected to the
    ground plane at the satellite features' metres per cell, weak soft-margin loss over the batch."""

    kind: Literal["g2s"]
    encoder: UnetEncoderParams | DptEncoderParams = Field(discriminator="kind")
    crop_fraction: float = Field(gt=0, le=1, description="BEV crop side / satellite feature side")
    margin_scale: float = Field(gt=0, description="gamma of log(1 + exp(gamma (d_pos - d_neg)))")
    symmetric_satellite: bool = Field(description="predict with the mean of the tile's satellite features and "
                                      "those of the tile turned by 180 degrees (turned back): cancels a learned "
                                      "translation between the views; needs augment.rotate90")

    @model_validator(mode="after")
    def _check_symmetry(self) -> "G2SParams":
        if self.symmetric_satellite and not self.augment.rotate90:
            raise ValueError("symmetric_satellite needs augment.rotate90: true (the satellite encoder must "
                             "have been trained on turned tiles)")
        return self


class CCVPEParams(LocalizerParams):
    """CCVPE (docs/paper-reference.md#ccvpe): orientation-aware ground descriptors matched on a satellite
    U-Net decoder; full supervision (heatmap, infoNCE, orientation)."""

    kind: Literal["ccvpe"]
    backbone: str = Field(min_length=1, description="timm CNN for both views (paper: efficientnet_b0)")
    ground_level: int = Field(description="timm feature level of the ground descriptor (-1 = last)")
    orientation_bins: int = Field(ge=2, description="orientation shifts; pano width / ground stride")
    decoder_channels: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=6, max_length=6, description="decoder widths at strides 32, 16, 8, 4, 2, 1")
    descriptor_dims: list[Annotated[int, Field(ge=1)]] = Field(
        min_length=1, max_length=6, description="descriptor width per column at the matching stages (32, 16, ...)")
    heatmap_sigma_px: float = Field(gt=0, description="Gaussian target width (satellite input pixels)")
    infonce_temperature: float = Field(gt=0)
    heatmap_weight: float = Field(ge=0)
    infonce_weight: float = Field(ge=0)
    orientation_weight: float = Field(ge=0)
    train_yaw_deg: float = Field(ge=0, le=180, description="training panoramas turned in [-it, it)")
    orientation_source: Literal["network", "own"] = Field(
        description="3-DoF yaw of the headline numbers: the orientation stage's or CCVPE's own")


BaselineParams = Annotated[G2SParams | CCVPEParams, Field(discriminator="kind")]


class BaselineRun(Section):
    """One `train-baseline` / `evaluate` run of dvc.yaml (`foreach: ${runs}`), named <method>-<area>."""

    method: str = Field(min_length=1, description="a key of `baselines`")
    area: Literal["same", "cross"]
    model: str = Field(min_length=1, description="the method's module models/<model>.py (= its `kind`)")
    augment: AugmentParams | None = Field(default=None, description="this run's training augmentation, in place "
                                          "of baselines.<method>.augment (its distillation runs draw it too); "
                                          "null = the method's")


class TrainParams(Section):
    """Shared by every training stage (orientation, baselines, distillation); device, precision
    and memory format also by `evaluate`. The training seeds are `report.seeds`."""

    threads: int = Field(ge=0, description="torch CPU threads; 0 = torch's default")
    devices: int = Field(ge=1, description="data-parallel training processes under torchrun (NCCL on "
                                           "CUDA, gloo on CPU); 1 = one process, no torchrun")
    parallel_seeds: int = Field(ge=1, description="seeds of a run trained at once, each in its own process with "
                                                  "`threads` threads (0: the cores / parallel_seeds); 1 = in turn")
    device: Literal["cpu", "cuda", "auto"] = Field(description="where training and evaluation compute: "
                                                   "cuda = this rank's GPU (LOCAL_RANK), auto = cuda if present")
    precision: Literal["fp32", "bf16"] = Field(description="bf16 = autocast matmuls and convolutions to bfloat16")
    channels_last: bool = Field(description="NHWC memory format for the convolutions (faster on tensor cores)")
    max_val_samples: int = Field(ge=0, description="validation samples scored after each epoch of a baseline or "
                                                   "distillation: a seeded subset of the val split; 0 = all")
    predict_batch_size: int = Field(ge=1, description="samples per forward pass of validation and evaluate "
                                                      "(speed and memory only: predictions are per sample)")

    @model_validator(mode="after")
    def _one_kind_of_parallelism(self) -> "TrainParams":
        if self.parallel_seeds > 1 and self.devices > 1:
            raise ValueError(f"train.parallel_seeds ({self.parallel_seeds}) and train.devices ({self.devices}) "
                             "both ask for several processes: set one of them to 1")
        return self


class EvaluateParams(Section):
    """The test metrics of every run (stages evaluate@, evaluate-distill@, and the orientation
    stage's test predictions)."""

    max_samples: int = Field(ge=0, description="a seeded subset of each area's test split, the same for "
                                               "every run (so runs compare sample by sample); 0 = all")
    seed: int = Field(ge=0)
    three_dof: list[Literal["baselines", "distill"]] = Field(
        default=["baselines", "distill"], description="runs also scored with unknown orientation (the orientation "
        "stage's yaw; a method's own yaw): train-baseline runs, distill runs, both or none ([])")


class ReportParams(Section):
    """Repeats of every baseline and distillation run (`seed<s>/` folders of each run); the tables
    show the mean and standard deviation over them, the figures every seed; and the claims
    table's paired bootstrap (reports/claims.py)."""

    seeds: Annotated[list[Annotated[int, Field(ge=0)]], AfterValidator(_distinct)] = Field(
        min_length=1, description="training seeds: model initialisation, batch order and every random draw")
    bootstrap_samples: int = Field(ge=100, description="draws of the claims table's paired bootstrap")
    confidence: float = Field(gt=0, lt=1, description="the claims table's interval (0.95 = 95%)")
    bootstrap_seed: int = Field(ge=0)
    power: float = Field(gt=0, lt=1, description="the claims table's smallest detectable effect: the change the "
                                                 "comparison would find with this probability")
    plateau_tolerance_pct: float = Field(gt=0, description="claims: the plateau check holds when the `continue` "
                                                           "control's interval lies within +- this % of its baseline")
    distilled_model: Literal["teacher", "student"] = Field(
        description="the model of a distillation run the claims use: teacher (the paper evaluates the EMA "
                    "teacher) or student (the authors' code); the tables show both")


class FovOcclusion(Section):
    """A contiguous kept field of view, the rest of the panorama's columns zeroed (GeoDistill)."""

    kind: Literal["fov"]
    fov_deg: Annotated[tuple[Annotated[int, Field(gt=0, le=360)], Annotated[int, Field(gt=1, le=361)]],
                       AfterValidator(_increasing)] = Field(description="kept FoV drawn in [low, high) whole degrees")


class RandomPatchOcclusion(Section):
    """Square blocks zeroed at random until a drawn share of the panorama is covered."""

    kind: Literal["random_patch"]
    block_px: int = Field(ge=1, description="block side in input pixels (authors: 14)")
    ratio: Annotated[tuple[Annotated[float, Field(ge=0, le=1)], Annotated[float, Field(ge=0, le=1)]],
                     AfterValidator(_ordered)] = Field(description="covered share drawn in [low, high)")


class MaxActivationOcclusion(Section):
    """The most activated share of the teacher's panorama features zeroed."""

    kind: Literal["max_activation"]
    fraction: float = Field(gt=0, lt=1, description="share of feature locations zeroed (authors: 0.2)")


class SharpenedTarget(Section):
    """softmax(score / tau) on both sides (tau < 1 sharpens)."""

    kind: Literal["sharpened"]
    tau: float = Field(gt=0)


class RawTarget(Section):
    """softmax(score) on both sides (tau = 1)."""

    kind: Literal["raw"]


class UnimodalTarget(Section):
    """A Gaussian at the teacher's argmax; the student's softmax(score / tau)."""

    kind: Literal["unimodal"]
    sigma_cells: float = Field(gt=0, description="Gaussian width in cells of each level (authors: 4)")
    tau: float = Field(gt=0, description="the student's temperature")


Occlusion = Annotated[FovOcclusion | RandomPatchOcclusion | MaxActivationOcclusion, Field(discriminator="kind")]
Target = Annotated[SharpenedTarget | RawTarget | UnimodalTarget, Field(discriminator="kind")]


class DistillVariant(Section):
    """One GeoDistill run (or its augmentation control) on a trained baseline."""

    method: str = Field(min_length=1, description="a key of `baselines`; its trained checkpoint is the start")
    area: Literal["same", "cross"]
    mode: Literal["distill", "augment"] = Field(
        description="distill: FoV student vs full teacher; augment: the baseline's own loss on occluded panoramas")
    occlusion: Occlusion
    target: Target
    ema_alpha: float = Field(ge=0, lt=1, description="teacher <- alpha teacher + (1 - alpha) student")
    ema_every: Literal["epoch", "step"] = Field(description="the authors' code: epoch; the paper reads: step")
    epochs_factor: float = Field(gt=0, description="epochs = this x the baseline's epochs (rounded, at least 1)")
    max_train_samples: int = Field(ge=0, description="cap on training samples per epoch; 0 = the baseline's")
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    grad_clip: float = Field(gt=0)


class DistillParams(Section):
    """`defaults` shared by every variant; each `variants.<name>` overrides any of its keys (a
    sub-section of another `kind` replaces the default's wholesale)."""

    defaults: dict
    variants: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$")], DistillVariant]

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, raw):
        if isinstance(raw, dict) and isinstance(raw.get("defaults"), dict) and isinstance(raw.get("variants"), dict):
            for name, v in raw["variants"].items():
                missing = [k for k in ("method", "area") if not isinstance(v, dict) or k not in v]
                if missing:                                     # dvc.yaml reads them from the variant itself
                    raise ValueError(f"variants.{name}: set {' and '.join(missing)} in the variant "
                                     f"itself, not in distill.defaults")
            raw = {**raw, "variants": {name: _merge(raw["defaults"], v) if isinstance(v, dict) else v
                                       for name, v in raw["variants"].items()}}
        return raw


def _merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`, recursively; a dict whose `kind` differs replaces wholesale."""
    if override.get("kind", base.get("kind")) != base.get("kind"):
        return dict(override)
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


class DataParams(Section):
    """Which dataset the pipeline runs on. DVC cannot branch on a value, so `generate` names the
    world(s) the `synth` stage generates ([world] for the synthetic source, [] for a real one) and
    `download` the dataset the `download` stage fills `root` with ([vigor] or [kitti]; [] for the
    synthetic source, or for a real root that already holds the whole dataset)."""

    source: Literal["synthetic", "vigor", "kitti"]
    root: str = Field(min_length=1, description="the dataset root every stage reads (synthetic: data/world, "
                                                "written by synth@world; vigor or kitti: your copy, e.g. "
                                                "/data/VIGOR)")
    generate: list[Literal["world"]] = Field(description="[world] for synthetic, [] for a real dataset")
    download: list[Literal["vigor", "kitti"]] = Field(
        max_length=1, description="[source]: stage download@<source> fills root from the pinned public files "
                                  "and your archives; [] when nothing is downloaded")
    archives: dict[Annotated[str, Field(min_length=1)], Annotated[str, Field(min_length=1)]] = Field(
        description="stage download: NAME -> path of what you obtained by hand, by the names of "
                    "src/geodistill/data/sources.yaml (an archive, e.g. Chicago: /downloads/Chicago.zip, or a "
                    "local copy of a pinned file, by its path under the root)")
    manifest: Annotated[str, Field(min_length=1)] | None = Field(
        description="stage download: the sources file with the pins; null = the packaged "
                    "src/geodistill/data/sources.yaml (another one only for tests)")
    check_totals: bool = Field(description="verify-data compares the label counts with the complete "
                                           "dataset's; false for a deliberately partial copy")

    @model_validator(mode="after")
    def _consistent(self) -> "DataParams":
        if self.source == "synthetic" and (self.generate != ["world"] or self.root != "data/world" or self.download):
            raise ValueError("the synthetic source needs generate: [world], root: data/world (the output of stage "
                             f"synth@world) and download: []; got generate: {self.generate}, root: {self.root}, "
                             f"download: {self.download}")
        if self.source != "synthetic" and (self.generate or self.root.startswith("data/world")):
            raise ValueError(f"source {self.source!r} is read, not generated: it needs generate: [] and root "
                             f"pointing at your copy of the dataset (got generate: {self.generate}, "
                             f"root: {self.root})")
        if self.download not in ([], [self.source]):
            raise ValueError(f"download must be [{self.source}] (stage download@{self.source} fills root) or "
                             f"[] (root already holds the dataset), got {self.download}")
        if self.archives and not self.download:
            raise ValueError(f"archives {', '.join(self.archives)}: nothing reads them (download is [])")
        return self


class Params(Section):
    data: DataParams
    synth: SynthParams
    index: IndexParams
    bev: BevParams
    orientation: OrientationParams
    train: TrainParams
    evaluate: EvaluateParams
    baselines: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")], BaselineParams] = Field(
        description="localization methods by name (g2s_vgg, g2s_dino, ccvpe, ...)")
    runs: dict[str, BaselineRun] = Field(description="the baseline runs dvc.yaml trains and evaluates")
    distill: DistillParams
    report: ReportParams

    @model_validator(mode="after")
    def _check(self) -> "Params":
        head = self.orientation.head
        if isinstance(head, CorrelateHead):
            bev_px = self.bev.size * self.bev.mpp / head.input_mpp
            if not 8 <= bev_px <= self.orientation.input_size:
                raise ValueError(
                    f"orientation.head.input_mpp={head.input_mpp} puts the BEV (bev.size * bev.mpp = "
                    f"{self.bev.size * self.bev.mpp:g} m) at {bev_px:g} px; it must be 8 px to "
                    f"orientation.input_size={self.orientation.input_size} px")
        for name, r in self.runs.items():
            if r.method not in self.baselines:
                raise ValueError(f"runs.{name}.method: unknown method {r.method!r} "
                                 f"(baselines has {', '.join(self.baselines)})")
            if name != f"{r.method}-{r.area}" or r.model != self.baselines[r.method].kind:
                raise ValueError(f"runs.{name}: must be named {r.method}-{r.area} and have model "
                                 f"{self.baselines[r.method].kind!r} (got {name!r}, {r.model!r})")
            if r.augment is not None:
                try:
                    self.method_params(r.method, r.area)
                except ValidationError as err:          # e.g. symmetric_satellite without rotate90
                    why = err.errors()[0]["msg"].removeprefix("Value error, ")
                    raise ValueError(f"runs.{name}.augment: {why}") from None
        for name, b in self.baselines.items():       # KITTI's pinhole images keep their own shape
            w, h = b.pano_size
            if self.data.source != "kitti" and w != 2 * h:
                raise ValueError(f"baselines.{name}.pano_size: a panorama is [2H, H], got {[w, h]}")
        if self.data.source == "kitti":
            panoramic = [name for name, r in self.runs.items() if r.model == "ccvpe"]
            if panoramic:
                raise ValueError(f"runs {', '.join(panoramic)}: CCVPE reads equirectangular panoramas and KITTI's "
                                 "camera is a pinhole; with data.source kitti, runs use G2SWeakly methods only")
        runs = {(r.method, r.area) for r in self.runs.values()}
        for name, v in self.distill.variants.items():
            if v.method not in self.baselines:
                raise ValueError(f"distill.variants.{name}.method: unknown method {v.method!r} "
                                 f"(baselines has {', '.join(self.baselines)})")
            if (v.method, v.area) not in runs:
                raise ValueError(f"distill.variants.{name}: no baseline run {v.method}-{v.area} in `runs` "
                                 f"to start from")
        return self

    def method_params(self, method: str, area: str) -> BaselineParams:
        """baselines.<method> as run <method>-<area> trains it: with the run's own `augment`, if it has one."""
        base, run = self.baselines[method], self.runs.get(f"{method}-{area}")
        if run is None or run.augment is None:
            return base
        return type(base).model_validate(base.model_dump() | {"augment": run.augment.model_dump()})


def _describe(err: dict, model: type[BaseModel]) -> str:
    """One readable line for one pydantic error."""
    if not err["loc"]:                                  # a check across sections names its keys itself
        return err["msg"].removeprefix("Value error, ")
    parent, parts = _walk(model, err["loc"][:-1])
    key = ".".join(parts + [str(err["loc"][-1])])
    if err["type"] == "extra_forbidden":
        allowed = ", ".join(parent.model_fields) if parent else "?"
        return f"{key}: unknown key (allowed: {allowed})"
    if err["type"] == "missing":
        return f"{key}: missing"
    given, msg = err.get("input"), err["msg"].removeprefix("Value error, ")
    named = isinstance(given, dict) or err["type"] == "value_error" and "got " in msg     # our own says what it got
    return f"{key}: {msg}" if named else f"{key}: {msg} (got {given!r})"


def _walk(model: type[BaseModel], loc: tuple) -> tuple[type[BaseModel] | None, list[str]]:
    """The section model at an error location and the location as the user writes it. A tagged
    union (e.g. orientation.head, each method under baselines) is entered through its tag, which
    pydantic puts in the location but the user does not write."""
    current: type[BaseModel] | list[type[BaseModel]] | _MappingOf | None = model
    parts: list[str] = []
    for part in loc:
        if isinstance(current, list):
            current = next((m for m in current if _tag(m) == part), None)
            continue
        parts.append(str(part))
        if isinstance(current, _MappingOf):                  # `part` is a key the user chose
            current = current.value
            continue
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(part)
        ann = field.annotation if field else None
        if get_origin(ann) is dict:
            current = _MappingOf(_single(_models_in(get_args(ann)[1])))
            continue
        current = _single(_models_in(ann))
    return (current if isinstance(current, type) else None), parts


class _MappingOf:
    """A dict field during _walk: its next location part is a key, then come its values."""

    def __init__(self, value):
        self.value = value


def _single(models: list[type[BaseModel]]):
    return (models[0] if len(models) == 1 else models) if models else None


def _models_in(ann) -> list[type[BaseModel]]:
    """The section models an annotation can hold, through Annotated and unions."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return [ann]
    if get_origin(ann) in (Annotated, list):
        return _models_in(get_args(ann)[0])
    if get_origin(ann) in (Union, UnionType):
        return [m for a in get_args(ann) for m in _models_in(a)]
    return []


def _tag(model: type[BaseModel]) -> str | None:
    kind = model.model_fields.get("kind")
    return getattr(kind.annotation, "__args__", (None,))[0] if kind else None


def parse_params(raw: object, source: str = "params") -> Params:
    if raw is None:
        raise ConfigError(f"{source}: empty (expected the sections {', '.join(Params.model_fields)})")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections ({', '.join(Params.model_fields)}), "
                          f"got a {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        lines = [f"{source}: {_describe(err, Params)}" for err in e.errors()]
        raise ConfigError("\n".join(lines)) from None


class _UniqueKeys(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _unique_mapping(loader: _UniqueKeys, node: yaml.MappingNode) -> dict:
    """The mapping `node`, once no key in it repeats (ConstructorError at the repeat, naming the first)."""
    first: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, str | int | float | bool):
            continue                                    # construct_mapping refuses what cannot be a key
        if key in first:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r} (first on line {first[key]})",
                                                    key_node.start_mark)
        first[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=True)


_UniqueKeys.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def parse_yaml(text: str, source: str, error: type[Exception] = ConfigError):
    """The YAML document `text`; a syntax error or a duplicate key raises `error` naming
    `source`:line:column and PyYAML's reason."""
    try:
        return yaml.load(text, Loader=_UniqueKeys)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        context = f" ({e.context})" if e.context and e.problem else ""
        raise error(f"{where}: not valid YAML: {e.problem or e.context}{context}") from None
    except yaml.YAMLError as e:
        raise error(f"{source}: not valid YAML: {str(e).splitlines()[0]}") from None


def read_yaml(path: str | Path, what: str = "params file", error: type[Exception] = ConfigError):
    """The parsed YAML file at `path`; a missing, non-UTF-8 or malformed file raises `error` naming it."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    return parse_yaml(text, str(path), error)


def load_params(path: str | Path) -> Params:
    return parse_params(read_yaml(path), str(path))
