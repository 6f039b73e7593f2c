"""Synthetic-world throughput: world build time and panoramas rendered per second.

    .venv/bin/python benchmarks/synth_speed.py                  # params.yaml, first city
    .venv/bin/python benchmarks/synth_speed.py --config configs/smoke.yaml --panoramas 50

Renders `--panoramas` panoramas of one city in this process (render only, then render + JPEG
encode) and prints one JSON line with the figures. Multi-process throughput of the whole stage
is logged by `geodistill synth` itself (one line per city).
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np

from geodistill.config import load_params
from geodistill.data.synth.render import PanoLook, render_panorama
from geodistill.data.synth.world import build_city, city_seed
from geodistill.data.synth.writer import choose_cameras


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="params.yaml")
    ap.add_argument("--city", type=int, default=0, help="index into synth.cities")
    ap.add_argument("--panoramas", type=int, default=100)
    args = ap.parse_args()

    synth = load_params(args.config).synth
    city = synth.cities[args.city]
    t0 = time.perf_counter()
    world = build_city(city, synth, synth.seed)
    t_world = time.perf_counter() - t0
    cams = choose_cameras(world, city, synth)[: args.panoramas]
    W, H = synth.pano_size

    def render(cam):
        look = PanoLook.draw(np.random.default_rng(city_seed(synth.seed, city.name, 2, cam.index)), synth.appearance)
        return render_panorama(world, cam.col * world.mpp, cam.row * world.mpp, synth.camera_height_m, W, H,
                               synth.max_range_m, look)[0]

    t0 = time.perf_counter()
    images = [render(c) for c in cams]
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    for img in images:
        cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, synth.jpeg_quality])
    t_jpeg = time.perf_counter() - t0
    n = len(cams)
    print(json.dumps({
        "config": args.config, "city": city.name, "pano_size": [W, H], "sat_size": synth.sat_size,
        "world_cells": int(world.size) ** 2, "world_build_s": round(t_world, 2), "panoramas": n,
        "render_ms_per_pano": round(1000 * t_render / n, 1),
        "panoramas_per_s_one_process": round(n / (t_render + t_jpeg), 1),
        "jpeg_ms_per_pano": round(1000 * t_jpeg / n, 2),
        "cpu": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
