"""Geometry conventions shared by every stage, defined once here.

Satellite tiles (VIGOR): a tile of side S pixels is centred on its file name's lat/lon. Pixel
indices are pixel CENTRES (OpenCV's convention): the tile centre is pixel (S/2, S/2), rows go
south and columns go east. A label line's deltas (dy, dx) put the camera at
    row = S/2 + dy,   col = S/2 - dx.

Panoramas (VIGOR): equirectangular, W = 2H. North is the centre column; azimuth phi grows
clockwise (east = +90 deg), so column c (centre) looks at
    phi(c) = 2*pi * (c + 0.5 - W/2) / W,
i.e. column 0 looks south, W/4 west, W/2 north, 3W/4 east. Row r (centre) has elevation
    elev(r) = pi * (H/2 - r - 0.5) / H     (zenith at the top, nadir at the bottom).

Metric frames: a city's local frame is x = east, y = SOUTH (metres), so it matches image rows and
columns. Latitude/longitude use a local equirectangular projection around the city's origin with
Earth radius EARTH_RADIUS_M (the convention of VIGOR's labels).
"""
from __future__ import annotations

import numpy as np

EARTH_RADIUS_M = 6371004.0


def column_azimuth(col, width: int):
    """Azimuth (radians, clockwise from north) seen by panorama column `col` (may be fractional)."""
    return 2 * np.pi * (np.asarray(col, dtype=np.float64) + 0.5 - width / 2) / width


def azimuth_column(phi, width: int):
    """Inverse of column_azimuth, wrapped into [-0.5, width - 0.5)."""
    col = np.asarray(phi, dtype=np.float64) / (2 * np.pi) * width + width / 2 - 0.5
    return (col + 0.5) % width - 0.5


def row_elevation(row, height: int):
    """Elevation (radians, up positive) seen by panorama row `row` (may be fractional)."""
    return np.pi * (height / 2 - np.asarray(row, dtype=np.float64) - 0.5) / height


def elevation_row(elev, height: int):
    """Inverse of row_elevation."""
    return height / 2 - 0.5 - np.asarray(elev, dtype=np.float64) / np.pi * height


def metres_to_latlon(east_m, north_m, origin: tuple[float, float]):
    """Local east/north offsets (metres) from `origin` = (lat, lon) to (lat, lon) in degrees."""
    lat0, lon0 = origin
    lat = lat0 + np.degrees(np.asarray(north_m, dtype=np.float64) / EARTH_RADIUS_M)
    lon = lon0 + np.degrees(np.asarray(east_m, dtype=np.float64) / (EARTH_RADIUS_M * np.cos(np.radians(lat0))))
    return lat, lon


def latlon_to_metres(lat, lon, origin: tuple[float, float]):
    """Inverse of metres_to_latlon: (east_m, north_m) of (lat, lon) relative to `origin`."""
    lat0, lon0 = origin
    north = np.radians(np.asarray(lat, dtype=np.float64) - lat0) * EARTH_RADIUS_M
    east = np.radians(np.asarray(lon, dtype=np.float64) - lon0) * EARTH_RADIUS_M * np.cos(np.radians(lat0))
    return east, north


def label_to_pixel(dy: float, dx: float, sat_size: int) -> tuple[float, float]:
    """VIGOR label deltas -> (row, col) of the camera in the tile as stored."""
    return sat_size / 2 + dy, sat_size / 2 - dx


def pixel_to_label(row: float, col: float, sat_size: int) -> tuple[float, float]:
    """Inverse of label_to_pixel: (dy, dx)."""
    return row - sat_size / 2, sat_size / 2 - col
