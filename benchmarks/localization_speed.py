"""Localization baselines on CPU: training samples/s, inference ms/query, and the loader's rate.

    .venv/bin/python benchmarks/localization_speed.py [--config params.yaml] [--index data/index.csv]
        [--steps 5] [--vigor-steps 1] [--methods g2s_vgg ccvpe]

For each method of `baselines` in the params file, at its configured (synthetic) setting and in
the paper's setting at VIGOR size (vgg16 / frozen ViT-B/14 / EfficientNet-B0 CCVPE, panorama
640x320, satellite 512; batch 8 for the synthetic setting, 2 for VIGOR):
  train     samples/s of full training steps (the method's loss, backward, step);
  infer     ms per query of the 2-DoF prediction (eval mode, no grad);
  loader    samples/s of LocalizationSamples.batch after the images are cached in memory, the
            same with the method's training augmentation (`augment`), and of the first pass that
            decodes them (needs --index; the synthetic world's JPEGs).
Random images stand in for the synthetic inputs of the model timings. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from geodistill.config import CCVPEParams, DptEncoderParams, UnetEncoderParams, load_params
from geodistill.models.localizer import Batch, build_localizer, predict_tile_pixels
from geodistill.training.augment import augment_batch
from geodistill.training.samples import LocalizationSamples, tile_disjoint_batches


def model_rates(p, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_localizer(p, camera_height_m=2.0)
    W, H = p.pano_size
    pano = torch.randint(0, 256, (batch, H, W, 3), dtype=torch.uint8)
    sat = torch.randint(0, 256, (batch, p.sat_size, p.sat_size, 3), dtype=torch.uint8)
    mpp = torch.full((batch,), 64.0 / p.sat_size)
    gt_px = torch.rand(batch, 2) * (p.sat_size - 1)
    yaw = torch.rand(batch) * 90 - 45
    optimizer = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4)
    times = []
    for step in range(steps + 1):                       # the first step warms up and is not counted
        t0 = time.perf_counter()
        loss = model.loss(Batch(pano, sat, mpp, gt_px, yaw))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    predict_tile_pixels(model, pano, sat, mpp, torch.full((batch,), p.sat_size))
    t0 = time.perf_counter()
    for _ in range(steps):
        predict_tile_pixels(model, pano, sat, mpp, torch.full((batch,), p.sat_size))
    infer = (time.perf_counter() - t0) / (steps * batch)
    return {"batch": batch, "train_samples_per_s": round(batch / float(np.mean(times[1:])), 2),
            "infer_ms_per_query": round(1000 * infer, 1)}


def loader_rates(p, index: Path, n: int = 400) -> dict:
    rows = pd.read_csv(index).query("split == 'train'").drop_duplicates("pano_path").head(n)
    data = LocalizationSamples(rows, p.pano_size, p.sat_size)
    t0 = time.perf_counter()
    data.load()
    first = len(data) / (time.perf_counter() - t0)
    batches = tile_disjoint_batches(data.tiles, 8, seed=0, epoch=0)
    t0 = time.perf_counter()
    for idx in batches:
        data.batch(idx)
    cached = sum(map(len, batches)) / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for idx in batches:
        pano, sat, mpp = data.batch(idx)
        augment_batch(Batch(pano, sat, mpp, data.gt_px(idx), torch.zeros(len(idx))), p.augment, rng)
    augmented = sum(map(len, batches)) / (time.perf_counter() - t0)
    return {"decode_samples_per_s": round(first, 1), "cached_samples_per_s": round(cached, 1),
            "augmented_samples_per_s": round(augmented, 1)}


def vigor_setting(p):
    """The paper's encoder at VIGOR size: vgg16 U-Net, frozen DINOv2 ViT-B/14 (whose inputs
    must be multiples of its 14-px patch and of 8: 672x336 and 504), or CCVPE's EfficientNet-B0
    with the ground descriptor at stride 32 (20 columns of a 640-px panorama)."""
    if isinstance(p, CCVPEParams):
        return p.model_copy(update={"backbone": "efficientnet_b0", "ground_level": 4, "orientation_bins": 20,
                                    "pano_size": (640, 320), "sat_size": 512,
                                    "decoder_channels": [256, 128, 64, 32, 16, 16], "descriptor_dims": [64, 32, 16]})
    if isinstance(p.encoder, DptEncoderParams):
        encoder = DptEncoderParams(kind="dpt", backbone="vit_base_patch14_dinov2", blocks=[2, 5, 8, 11],
                                   channels=[256, 64, 16], freeze=True)
        return p.model_copy(update={"encoder": encoder, "pano_size": (672, 336), "sat_size": 504})
    encoder = UnetEncoderParams(kind="unet", backbone="vgg16", channels=[256, 64, 16])
    return p.model_copy(update={"encoder": encoder, "pano_size": (640, 320), "sat_size": 512})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("params.yaml"))
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--vigor-steps", type=int, default=1)
    ap.add_argument("--methods", nargs="*", default=None, help="keys of params baselines (default: all)")
    args = ap.parse_args()
    params = load_params(args.config)
    unknown = set(args.methods or ()) - set(params.baselines)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}; params baselines has {list(params.baselines)}")
    out = {"threads": torch.get_num_threads()}
    for name, p in params.baselines.items():
        if args.methods and name not in args.methods:
            continue
        out[name] = {"synthetic": {"pano": list(p.pano_size), "sat": p.sat_size, **model_rates(p, 8, args.steps)}}
        if args.vigor_steps:
            v = vigor_setting(p)
            backbone = v.backbone if isinstance(v, CCVPEParams) else v.encoder.backbone
            out[name]["vigor"] = {"backbone": backbone, "pano": list(v.pano_size), "sat": v.sat_size,
                                  **model_rates(v, 2, args.vigor_steps)}
        if args.index:
            out[name]["loader"] = loader_rates(p, args.index)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
