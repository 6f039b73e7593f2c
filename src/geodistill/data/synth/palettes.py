"""Named colour palettes (RGB) of the synthetic cities; a city's palette is chosen in params.

Each palette sets what a city looks like from the street (facades, windows) and from above
(roofs, ground), so cities with different palettes are a real domain shift for cross-area.
"""
from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Palette:
    facades: tuple[RGB, ...]
    windows: tuple[RGB, ...]
    roofs: tuple[RGB, ...]
    lots: tuple[RGB, ...]          # unbuilt block ground: grass, dirt, paving
    sidewalk: RGB
    asphalt: RGB
    marking: RGB
    centre_line: RGB
    canopy: tuple[RGB, ...]


PALETTES: dict[str, Palette] = {
    "brick": Palette(
        facades=((150, 72, 52), (170, 96, 70), (120, 60, 48), (190, 150, 120), (140, 110, 90)),
        windows=((40, 52, 64), (70, 86, 100), (200, 190, 150)),
        roofs=((70, 70, 72), (105, 100, 95), (60, 56, 52), (130, 120, 110)),
        lots=((96, 118, 62), (120, 108, 84), (150, 146, 138)),
        sidewalk=(168, 160, 150), asphalt=(62, 62, 66), marking=(235, 235, 230), centre_line=(230, 190, 60),
        canopy=((58, 90, 44), (72, 104, 50), (48, 78, 40))),
    "stucco": Palette(
        facades=((226, 214, 190), (214, 190, 160), (236, 228, 214), (200, 206, 196), (222, 196, 170)),
        windows=((60, 70, 80), (90, 104, 120)),
        roofs=((150, 80, 60), (120, 70, 56), (160, 140, 120), (92, 92, 96)),
        lots=((88, 132, 60), (104, 140, 70), (140, 130, 100)),
        sidewalk=(190, 186, 176), asphalt=(80, 80, 82), marking=(240, 240, 236), centre_line=(240, 240, 236),
        canopy=((64, 104, 48), (80, 120, 56), (52, 92, 44))),
    "concrete": Palette(
        facades=((160, 160, 156), (130, 132, 134), (180, 176, 168), (110, 112, 116), (150, 144, 132)),
        windows=((50, 60, 72), (80, 92, 108), (30, 36, 44)),
        roofs=((120, 120, 118), (90, 92, 94), (150, 148, 144), (70, 72, 76)),
        lots=((120, 116, 108), (100, 112, 72), (136, 130, 120)),
        sidewalk=(146, 144, 140), asphalt=(56, 58, 62), marking=(220, 220, 214), centre_line=(220, 180, 50),
        canopy=((70, 96, 54), (60, 84, 46))),
    "glass": Palette(
        facades=((70, 96, 120), (96, 120, 140), (60, 74, 90), (140, 150, 160), (90, 110, 110)),
        windows=((150, 180, 200), (190, 210, 220), (110, 140, 170)),
        roofs=((170, 172, 176), (130, 134, 140), (200, 200, 200), (96, 100, 108)),
        lots=((128, 128, 124), (90, 120, 70), (160, 156, 150)),
        sidewalk=(176, 176, 172), asphalt=(48, 50, 54), marking=(245, 245, 245), centre_line=(245, 245, 245),
        canopy=((56, 96, 52), (44, 84, 46))),
}

CAR_COLOURS: tuple[RGB, ...] = ((200, 200, 204), (30, 30, 34), (150, 20, 24), (20, 50, 120), (120, 124, 130),
                                (230, 230, 226), (60, 90, 60), (210, 170, 40))
SKY_ZENITH: RGB = (80, 130, 200)
SKY_HORIZON: RGB = (200, 215, 230)
