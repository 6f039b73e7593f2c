"""BEV pre-rendering throughput at VIGOR size: 2048x1024 JPEG in, 512x512 BEV out.

    .venv/bin/python benchmarks/bev_speed.py [--n 40] [--min-pano-width 1024]

Compares, per panorama and in one process:
  decode      cv2.imread of the full JPEG, nothing else (the floor);
  ours        render-bev's path: reduced JPEG decode (>= min_pano_width columns) + cv2.remap
              through the cached metric lookup table;
  per-sample  the authors' route: full decode, resize to 640x320, build the sampling grid for
              this sample and torch grid_sample it to 512x512.
Test panoramas are synthetic-world panoramas upscaled to 2048x1024 and JPEG-encoded (q=95).
Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from geodistill.config import load_params
from geodistill.data.bev import read_panorama_for
from geodistill.data.synth.render import PanoLook, render_panorama
from geodistill.data.synth.world import build_city
from geodistill.data.synth.writer import choose_cameras
from geodistill.geometry import bev_ground_coords, ground_to_pano, render_bev

SIZE, MPP, CAM_H = 512, 0.1, 2.0


def make_panoramas(folder: Path, n: int) -> list[Path]:
    synth = load_params("configs/smoke.yaml").synth
    city = synth.cities[0]
    world = build_city(city, synth, synth.seed)
    paths = []
    for cam in choose_cameras(world, city, synth)[:n]:
        rgb, _ = render_panorama(world, cam.col * world.mpp, cam.row * world.mpp, 2.0, 1024, 512, 60.0, PanoLook())
        big = cv2.resize(rgb, (2048, 1024), interpolation=cv2.INTER_CUBIC)
        path = folder / f"{cam.pano_id}.jpg"
        cv2.imwrite(str(path), big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
    return paths


def per_sample_grid_sample(path: Path) -> torch.Tensor:
    pano = cv2.resize(cv2.imread(str(path)), (640, 320), interpolation=cv2.INTER_AREA)
    x = torch.from_numpy(pano).permute(2, 0, 1)[None].float()               # (1, 3, 320, 640)
    east, north = bev_ground_coords(SIZE, MPP)                                # grid rebuilt per sample
    col, row = ground_to_pano(east, north, CAM_H, 640, 320)
    grid = torch.from_numpy(np.stack([(2 * col + 1) / 640 - 1, (2 * row + 1) / 320 - 1], -1)).float()[None]
    return F.grid_sample(x, grid, align_corners=False)                        # (1, 3, 512, 512)


def rate(fn, paths) -> float:
    fn(paths[0])                                                               # warm caches
    t0 = time.perf_counter()
    for p in paths:
        fn(p)
    return len(paths) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--min-pano-width", type=int, default=1024)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_panoramas(Path(tmp), args.n)
        ours = lambda p: render_bev(read_panorama_for(p, args.min_pano_width), SIZE, MPP, CAM_H)
        result = {"panoramas": len(paths), "bev": [SIZE, SIZE], "min_pano_width": args.min_pano_width,
                  "decode_per_s": rate(lambda p: cv2.imread(str(p)), paths),
                  "ours_per_s": rate(ours, paths),
                  "per_sample_grid_sample_per_s": rate(per_sample_grid_sample, paths)}
    result["ours_vs_decode"] = result["ours_per_s"] / result["decode_per_s"]
    result["ours_vs_per_sample"] = result["ours_per_s"] / result["per_sample_grid_sample_per_s"]
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
