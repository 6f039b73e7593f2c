"""G2SWeakly's correlation by convolution and by FFT (models/correlation.py), forward + backward,
at the preset sizes: the measurement behind FFT_MIN_KERNEL_CELLS.

    .venv/bin/python benchmarks/correlation_speed.py [--threads 1] [--batches 4 8 32]

Per level of each preset's G2SWeakly (satellite channels C, A x A cells, c x c BEV crop), both
pairings (all_pairs: the training loss; paired: prediction and distillation), the best of 5
of forward + backward in process CPU time (seconds the process computed, which a busy shared
machine does not inflate; 1 thread by default for the same reason), and the route window_sums
takes. Deterministic mode, as training runs. Prints one line per case.
"""
from __future__ import annotations

import argparse
import time

import torch

from geodistill.models import correlation
from geodistill.training.device import deterministic

# (preset, channels, satellite cells, crop) per level: params.yaml, configs/synthetic-large.yaml, configs/vigor.yaml
LEVELS = [("default g2s_vgg", 64, 8, 4), ("default g2s_vgg", 32, 16, 6), ("default g2s_vgg", 16, 32, 12),
          ("default g2s_dino", 64, 7, 2), ("default g2s_dino", 32, 14, 6), ("default g2s_dino", 16, 28, 12),
          ("large g2s_vgg", 64, 16, 6), ("large g2s_vgg", 32, 32, 12), ("large g2s_vgg", 16, 64, 26),
          ("vigor g2s_vgg", 256, 64, 26), ("vigor g2s_vgg", 64, 128, 52), ("vigor g2s_vgg", 16, 256, 102)]


def cpu_seconds(route, x: torch.Tensor, k: torch.Tensor, all_pairs: bool, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        xs, ks = x.detach().requires_grad_(), k.detach().requires_grad_()
        t0 = time.process_time()
        route(xs, ks, all_pairs).sum().backward()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", type=int, nargs="+", default=[4, 8, 32])
    ap.add_argument("--max-direct-flops", type=float, default=1e10, help="skip the convolution above this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    deterministic()
    for batch in args.batches:
        for preset, C, A, c in LEVELS:
            for all_pairs in (True, False):
                x, k = torch.randn(batch, C, A, A), torch.randn(batch, C, c, c)
                flops = 2 * (batch if all_pairs else 1) * batch * C * c * c * (A - c + 1) ** 2
                repeats = 5 if flops < 1e9 else 1
                fft = cpu_seconds(correlation.fft, x, k, all_pairs, repeats)
                conv = cpu_seconds(correlation.direct, x, k, all_pairs, repeats) if flops <= args.max_direct_flops \
                    else float("nan")
                route = "fft" if correlation.takes_fft(k.shape) else "direct"
                print(f"{preset:17s} batch {batch:2d} C {C:3d} A {A:3d} c {c:3d} "
                      f"{'all_pairs' if all_pairs else 'paired   '}  conv {1e3 * conv:9.2f} ms  fft {1e3 * fft:8.2f} ms  "
                      f"conv/fft {conv / fft:6.2f}  takes {route}", flush=True)


if __name__ == "__main__":
    main()
