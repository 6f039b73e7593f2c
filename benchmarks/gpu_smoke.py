"""GPU smoke test at VIGOR size: each localization method trains a few steps in bf16 with
channels_last under the training stages' determinism settings, then runs one distillation step
and one evaluation; prints samples/s and peak memory per method.

    benchmarks/gpu_smoke.sh                                   # on a CUDA machine: a few minutes
    .venv/bin/python benchmarks/gpu_smoke.py --device cpu --size params --batch 2 --steps 1   # the same path on CPU

Per method of `baselines` (benchmarks/localization_speed.py's vigor_setting: vgg16 U-Net,
frozen ViT-B/14, EfficientNet-B0 CCVPE at 640x320 / 512; random init), on Placement(device,
bf16, channels_last) after training/device.py's deterministic(device):
  train    --steps training steps (model.loss, training/step.py's optimizer_step: backward,
           clipping, AdamW), random images; samples/s over the steps after the first;
  distill  one step of the params' first distill-mode variant, on this method
           (distill/teacher_student.py's variant_loss: in the default, the FoV-occluded student
           against its teacher), from the trained model;
  predict  one evaluation batch (--predict-batch) through predict_tile_pixels, as `evaluate`.
Checks: nothing raises (on CUDA, kernels without a deterministic implementation only warn:
the script lists them), every loss and prediction is finite. Peak memory: the CUDA allocator's
peak per method (torch.cuda.max_memory_allocated), on CPU the process's peak RSS so far. Prints
one line per method and a JSON line; exits 1 when a check failed.
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch

from geodistill.config import load_params
from geodistill.distill.teacher_student import make_teacher, variant_loss
from geodistill.models.localizer import build_localizer, predict_tile_pixels
from geodistill.training.checkpoint import Checkpointer
from geodistill.training.device import Placement, deterministic
from geodistill.training.step import optimizer_step
from localization_speed import random_batch, vigor_setting

NONDETERMINISTIC = "does not have a deterministic implementation"


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def smoke(name: str, p, variant, place: Placement, args, ckpt: Checkpointer) -> dict:
    """Train, distil and predict with one method; returns its figures (raises on a failed check)."""
    torch.manual_seed(0)
    model = place.model(build_localizer(p, camera_height_m=2.0))
    trainable = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    batch = place.batch(random_batch(p, args.batch))
    times = []
    for step in range(args.steps):
        t0 = clock(place.device)
        with place.autocast():
            loss = model.loss(batch).float()
        total = optimizer_step(loss, 1.0, optimizer, trainable, 1.0, f"{name} step {step + 1}", ckpt)
        times.append(clock(place.device) - t0)
    timed = times[1:] or times
    teacher = make_teacher(model)
    t0 = clock(place.device)
    with place.autocast():
        distill = variant_loss(variant, model, teacher, batch, np.random.default_rng(0)).float()
    distilled = optimizer_step(distill, 1.0, optimizer, trainable, 1.0, f"{name} distill", ckpt)
    distill_s = clock(place.device) - t0
    model.eval()
    queries = place.batch(random_batch(p, args.predict_batch))
    t0 = clock(place.device)
    with torch.no_grad(), place.autocast():
        pixel, _ = predict_tile_pixels(model, queries.pano, queries.sat, queries.sat_mpp,
                                       torch.full((args.predict_batch,), p.sat_size, device=place.device))
    predict_s = clock(place.device) - t0
    if not torch.isfinite(pixel).all():
        raise FloatingPointError(f"{name}: non-finite predictions")
    return {"train_samples_per_s": round(args.batch / float(np.mean(timed)), 2), "last_loss": round(total, 4),
            "distill_step_s": round(distill_s, 2), "distill_loss": round(distilled, 4),
            "predict_ms_per_query": round(1000 * predict_s / args.predict_batch, 1),
            "peak_memory_gib": round(peak_memory_gib(place.device), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=Path("params.yaml"), help="its baselines and distill variants")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", choices=["vigor", "params"], default="vigor", help="VIGOR size, or the params' own")
    ap.add_argument("--batch", type=int, default=8, help="training batch (the VIGOR preset's: 8)")
    ap.add_argument("--predict-batch", type=int, default=16, help="evaluation batch (the VIGOR preset's: 16)")
    ap.add_argument("--steps", type=int, default=4, help="training steps per method (the first warms up)")
    ap.add_argument("--methods", nargs="*", default=None)
    args = ap.parse_args()
    params = load_params(args.config)
    place = Placement(torch.device(args.device), bf16=True, channels_last=True)
    deterministic(place.device)
    print(f"device {place.device} ({torch.cuda.get_device_name(place.device) if place.device.type == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, bf16, channels_last, deterministic algorithms "
          f"({'warn only' if torch.is_deterministic_algorithms_warn_only_enabled() else 'strict'})", flush=True)
    results, failed = {}, []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ckpt = Checkpointer(Path(tmp), {})            # named in the message of a non-finite loss only
        distill = next(v for v in params.distill.variants.values() if v.mode == "distill")
        for name, p in params.baselines.items():
            if args.methods and name not in args.methods:
                continue
            if place.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(place.device)
            try:
                results[name] = smoke(name, vigor_setting(p) if args.size == "vigor" else p,
                                      distill.model_copy(update={"method": name}), place, args, ckpt)
                print(f"{name}: {results[name]}", flush=True)
            except Exception:
                failed.append(name)
                print(f"FAILED {name}:\n{traceback.format_exc()}", flush=True)
    kernels = sorted({str(w.message).split(" does not")[0] for w in caught if NONDETERMINISTIC in str(w.message)})
    print("kernels without a deterministic implementation (warned, not raised):", ", ".join(kernels) or "none")
    print(json.dumps({"device": str(place.device), "methods": results, "nondeterministic_kernels": kernels,
                      "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
