"""Conventions of geometry.py, checked against VIGOR's stated facts."""
from __future__ import annotations

import numpy as np
import pytest

from geodistill.geometry import (EARTH_RADIUS_M, azimuth_column, column_azimuth, elevation_row,
                                 label_to_pixel, latlon_to_metres, metres_to_latlon, pixel_to_label,
                                 row_elevation)


def test_vigor_panorama_columns():
    """North at the centre column; col 0 = south, W/4 = west, 3W/4 = east (left pixel edges)."""
    W = 2048
    edge = lambda c: column_azimuth(c - 0.5, W)  # azimuth at the left edge of column c
    assert np.degrees(edge(W / 2)) == pytest.approx(0.0)
    assert np.degrees(edge(0)) == pytest.approx(-180.0)
    assert np.degrees(edge(W / 4)) == pytest.approx(-90.0)
    assert np.degrees(edge(3 * W / 4)) == pytest.approx(90.0)


def test_column_and_row_round_trip():
    W, H = 512, 256
    cols = np.arange(W, dtype=float)
    np.testing.assert_allclose(azimuth_column(column_azimuth(cols, W), W), cols, atol=1e-9)
    rows = np.arange(H, dtype=float)
    np.testing.assert_allclose(elevation_row(row_elevation(rows, H), H), rows, atol=1e-9)
    assert row_elevation(-0.5, H) == pytest.approx(np.pi / 2)       # top edge: zenith
    assert row_elevation(H - 0.5, H) == pytest.approx(-np.pi / 2)   # bottom edge: nadir
    assert row_elevation(H / 2 - 0.5, H) == pytest.approx(0.0)      # horizon between two rows


def test_latlon_metres_round_trip_and_scale():
    origin = (41.88, -87.63)
    lat, lon = metres_to_latlon(100.0, 200.0, origin)
    assert (lat - origin[0]) * np.pi / 180 * EARTH_RADIUS_M == pytest.approx(200.0)
    assert (lon - origin[1]) * np.pi / 180 * EARTH_RADIUS_M * np.cos(np.radians(origin[0])) == pytest.approx(100.0)
    e, n = latlon_to_metres(lat, lon, origin)
    assert (e, n) == pytest.approx((100.0, 200.0), abs=1e-9)


def test_vigor_label_to_pixel():
    assert label_to_pixel(23.0, -29.0, 640) == (343.0, 349.0)
    assert pixel_to_label(343.0, 349.0, 640) == (23.0, -29.0)
