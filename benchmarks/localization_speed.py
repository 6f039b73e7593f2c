"""Localization baselines on CPU: training step times, memory and FLOPs at VIGOR size; training
samples/s, inference ms/query and the loader's rate at the params' (synthetic) size.

    .venv/bin/python benchmarks/localization_speed.py [--config params.yaml] [--index data/index.csv]
        [--steps 5] [--vigor-steps 1] [--vigor-batch 4] [--threads 2] [--methods g2s_vgg ccvpe]

For each method of `baselines` in the params file, in deterministic mode as training runs:
  synthetic  at its configured input sizes, batch 8: `train` samples/s of full training steps
             (the method's loss, backward, clipping, AdamW step; the median step) and `infer` ms per query of
             the 2-DoF prediction (eval mode, no grad);
  vigor      in the paper's setting at VIGOR size (vigor_setting: vgg16 U-Net / frozen DINOv2
             ViT-B/14 / EfficientNet-B0 CCVPE, panorama 640x320, satellite 512), random init,
             batch --vigor-batch, each method in a fresh process: per step `forward_s`,
             `backward_s` (backward, clipping and the optimiser step), `samples_per_s`, and
             `step_cpu_s` (CPU seconds of the process: on a shared machine, wall time over
             CPU time / threads tells how much of the step waited for a core); `peak_rss_mib`,
             the process's peak resident memory (getrusage ru_maxrss: model, batch, activations
             and gradients, plus ~0.4 GiB of torch itself); `gflop`, the step's floating-point
             operations (forward and backward; torch's FlopCounterMode: convolutions, matmuls,
             attention, plus FFTs here at 2.5 n log2 n per real transform of n points;
             elementwise work is not counted), and `roofline_s` = gflop / the machine's float32
             matmul rate (`machine`, measured first), the step's time at that rate: `x_roofline`
             = the measured step / roofline_s;
  loader     (needs --index) samples/s of LocalizationSamples.batch after the images are cached
             in memory, the same with the method's training augmentation (`augment`), and of the
             first pass that decodes them (the synthetic world's JPEGs).
The first training step of each setting warms up (and is the one whose FLOPs are counted); the
next steps are timed (their mean at VIGOR size); --profile ROWS prints the profiler's top
operators of the last VIGOR-size step. Random images stand in for the inputs. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from geodistill.config import CCVPEParams, DptEncoderParams, UnetEncoderParams, load_params
from geodistill.models.localizer import Batch, build_localizer, predict_tile_pixels
from geodistill.training.augment import augment_batch
from geodistill.training.device import deterministic
from geodistill.training.samples import LocalizationSamples, tile_disjoint_batches
from pipeline_time import machine


def random_batch(p, batch: int) -> Batch:
    W, H = p.pano_size
    return Batch(pano=torch.randint(0, 256, (batch, H, W, 3), dtype=torch.uint8),
                 sat=torch.randint(0, 256, (batch, p.sat_size, p.sat_size, 3), dtype=torch.uint8),
                 sat_mpp=torch.full((batch,), 64.0 / p.sat_size), gt_px=torch.rand(batch, 2) * (p.sat_size - 1),
                 yaw_deg=torch.rand(batch) * 90 - 45)


def train_steps(model, batch: Batch, steps: int, profile_rows: int = 0) -> tuple[list[dict], float]:
    """steps + 1 training steps; per step its forward, backward (with clipping and the AdamW step)
    and CPU seconds, and the FLOPs of the first (warm-up) step. profile_rows > 0: the last step
    runs under torch.profiler, whose top operators (by self CPU time, per input shape) go to stderr."""
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    times, flops = [], 0.0
    for step in range(steps + 1):
        counter = FlopCounterMode(display=False, custom_mapping=FFT_FLOPS)
        profiler = torch.profiler.profile(record_shapes=True)
        watch = counter if step == 0 else profiler if profile_rows and step == steps else contextlib.nullcontext()
        with watch:
            cpu0, t0 = time.process_time(), time.perf_counter()
            loss = model.loss(batch)
            t1 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            t2 = time.perf_counter()
        times.append({"forward_s": t1 - t0, "backward_s": t2 - t1, "step_cpu_s": time.process_time() - cpu0})
        if watch is counter:
            flops = float(counter.get_total_flops())
        if watch is profiler:
            print(profiler.key_averages(group_by_input_shape=True).table(
                sort_by="self_cpu_time_total", row_limit=profile_rows, max_name_column_width=40,
                max_shapes_column_width=100), file=sys.stderr)
    return times[1:], flops


def synthetic_rates(p, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_localizer(p, camera_height_m=2.0)
    data = random_batch(p, batch)
    times, _ = train_steps(model, data, steps)
    model.eval()
    tile_px = torch.full((batch,), p.sat_size)
    predict_tile_pixels(model, data.pano, data.sat, data.sat_mpp, tile_px)
    t0 = time.perf_counter()
    for _ in range(steps):
        predict_tile_pixels(model, data.pano, data.sat, data.sat_mpp, tile_px)
    infer = (time.perf_counter() - t0) / (steps * batch)
    step_s = float(np.median([t["forward_s"] + t["backward_s"] for t in times]))
    return {"batch": batch, "train_samples_per_s": round(batch / step_s, 2), "infer_ms_per_query": round(1000 * infer, 1)}


def vigor_step(p, batch: int, steps: int, threads: int, gflops: float, profile_rows: int = 0) -> dict:
    """One method's VIGOR-size training steps, run in a fresh process (its own peak memory)."""
    torch.set_num_threads(threads)
    deterministic()
    torch.manual_seed(0)
    model = build_localizer(p, camera_height_m=2.0)
    times, flops = train_steps(model, random_batch(p, batch), steps, profile_rows)
    mean = {k: float(np.mean([t[k] for t in times])) for k in times[0]}
    step_s = mean["forward_s"] + mean["backward_s"]
    roofline_s = flops / (gflops * 1e9)
    return {"batch": batch, **{k: round(v, 2) for k, v in mean.items()},
            "samples_per_s": round(batch / step_s, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "gflop": round(flops / 1e9, 1), "roofline_s": round(roofline_s, 2), "x_roofline": round(step_s / roofline_s, 1)}


def fft_flops(transform_points: float, transforms: float, complex_input: bool) -> float:
    """2.5 n log2 n per real FFT of n points (5 n log2 n complex)."""
    return (5.0 if complex_input else 2.5) * transforms * transform_points * math.log2(max(transform_points, 2))


def _r2c(input_shape, dim, *args, out_shape=None, **kwargs) -> float:
    n = math.prod(input_shape[d] for d in dim)
    return fft_flops(n, math.prod(input_shape) / n, False)


def _c2r(input_shape, dim, *args, out_shape=None, **kwargs) -> float:
    n = math.prod(out_shape[d] for d in dim)
    return fft_flops(n, math.prod(out_shape) / n, False)


def _c2c(input_shape, dim, *args, out_shape=None, **kwargs) -> float:
    n = math.prod(input_shape[d] for d in dim)
    return fft_flops(n, math.prod(input_shape) / n, True)


FFT_FLOPS = {torch.ops.aten._fft_r2c: _r2c, torch.ops.aten._fft_c2r: _c2r, torch.ops.aten._fft_c2c: _c2c}


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
    with the ground descriptor at stride 32 (20 columns of a 640-px panorama). Random init."""
    if isinstance(p, CCVPEParams):
        return p.model_copy(update={"backbone": "efficientnet_b0", "ground_level": 4, "orientation_bins": 20,
                                    "pano_size": (640, 320), "sat_size": 512, "pretrained": False,
                                    "decoder_channels": [256, 128, 64, 32, 16, 16], "descriptor_dims": [64, 32, 16]})
    if isinstance(p.encoder, DptEncoderParams):
        encoder = DptEncoderParams(kind="dpt", backbone="vit_base_patch14_dinov2", blocks=[2, 5, 8, 11],
                                   channels=[256, 64, 16], freeze=True)
        return p.model_copy(update={"encoder": encoder, "pano_size": (672, 336), "sat_size": 504, "pretrained": False})
    encoder = UnetEncoderParams(kind="unet", backbone="vgg16", channels=[256, 64, 16])
    return p.model_copy(update={"encoder": encoder, "pano_size": (640, 320), "sat_size": 512, "pretrained": False})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("params.yaml"))
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--vigor-steps", type=int, default=1, help="timed VIGOR-size steps (0: none)")
    ap.add_argument("--vigor-batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--methods", nargs="*", default=None, help="keys of params baselines (default: all)")
    ap.add_argument("--profile", type=int, default=0, metavar="ROWS",
                    help="print the top ROWS operators of the last VIGOR-size step to stderr")
    args = ap.parse_args()
    params = load_params(args.config)
    unknown = set(args.methods or ()) - set(params.baselines)
    if unknown:
        ap.error(f"unknown methods {sorted(unknown)}; params baselines has {list(params.baselines)}")
    torch.set_num_threads(args.threads)
    deterministic()
    host = machine()
    out = {"threads": args.threads, "machine": host}
    for name, p in params.baselines.items():
        if args.methods and name not in args.methods:
            continue
        out[name] = {"synthetic": {"pano": list(p.pano_size), "sat": p.sat_size, **synthetic_rates(p, 8, args.steps)}}
        if args.vigor_steps:
            v = vigor_setting(p)
            backbone = v.backbone if isinstance(v, CCVPEParams) else v.encoder.backbone
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as fresh:
                rates = fresh.submit(vigor_step, v, args.vigor_batch, args.vigor_steps, args.threads,
                                     host["gflops"], args.profile).result()
            out[name]["vigor"] = {"backbone": backbone, "pano": list(v.pano_size), "sat": v.sat_size, **rates}
        if args.index:
            out[name]["loader"] = loader_rates(p, args.index)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
