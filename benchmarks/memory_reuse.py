"""The same work under glibc's default memory policy and with freed memory kept for reuse
(stages/common.py keep_freed_memory, what every stage does), each run in a fresh process.

    .venv/bin/python benchmarks/memory_reuse.py [--config params.yaml] [--city Brookvale] [--steps 60] [--repeats 2]

Two kinds of work, from the params alone (no data needed):
- world: one city's world build (data/synth/world.py build_city), synth's costliest part: rasters
  of 16-20 M cells rebuilt for every road;
- train: --steps training steps of the g2s_vgg baseline on random inputs at its batch size, one
  thread (as a seed worker trains).
Prints one line per (work, policy): the best of --repeats wall times (the work only, not the
imports), the kernel (sys) seconds of that run and its peak resident memory. The world must come
out the same under both policies: the run compares a digest of its rasters. Run it alone.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # stages/ from a checkout


def world(config: Path, city: str, steps: int) -> str:
    from geodistill.config import load_params
    from geodistill.data.synth.world import build_city
    synth = load_params(config).synth
    chosen = next((c for c in synth.cities if c.name == city), None)
    if chosen is None:
        raise SystemExit(f"{config}: no city {city!r} in synth.cities")
    w = build_city(chosen, synth, synth.seed)
    return hashlib.sha256(w.ground.tobytes() + w.height.tobytes() + w.sat.tobytes()).hexdigest()[:16]


def train(config: Path, city: str, steps: int) -> str:
    import torch
    from geodistill.config import load_params
    from geodistill.models.localizer import Batch, build_localizer
    torch.set_num_threads(1)
    params = load_params(config)
    p = params.baselines["g2s_vgg"]
    torch.manual_seed(0)
    model = build_localizer(p, params.synth.camera_height_m)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b, (w, h), s = p.batch_size, p.pano_size, p.sat_size
    gen = torch.Generator().manual_seed(0)
    batch = Batch(torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=gen),
                  torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=gen),
                  torch.full((b,), 0.5), torch.full((b, 2), s / 2), torch.zeros(b))
    for _ in range(steps):
        optim.zero_grad()
        model.loss(batch).backward()
        optim.step()
    return f"{float(model.loss(batch)):.6f}"


WORK = {"world": world, "train": train}


def child(work: str, keep: bool, config: Path, city: str, steps: int) -> None:
    """Run one kind of work in this process and print its JSON line."""
    from stages.common import keep_freed_memory
    if keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory did not apply (not glibc, or MALLOC_* set in the environment)")
    t0, sys0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    result = WORK[work](config, city, steps)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": time.perf_counter() - t0, "sys_s": usage.ru_stime - sys0,
                      "peak_mb": usage.ru_maxrss / 1024, "result": result}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=Path("params.yaml"))
    ap.add_argument("--city", default="Brookvale", help="synth.cities entry whose world is built")
    ap.add_argument("--steps", type=int, default=60, help="training steps of the train work")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", choices=sorted(WORK), nargs="*", default=sorted(WORK))
    ap.add_argument("--child", choices=sorted(WORK), help=argparse.SUPPRESS)
    ap.add_argument("--keep", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child, bool(a.keep), a.config, a.city, a.steps)
    for work in a.work:
        results = set()
        for keep in (0, 1):
            runs = []
            for _ in range(a.repeats):
                out = subprocess.run([sys.executable, __file__, "--child", work, "--keep", str(keep), "--config",
                                      str(a.config), "--city", a.city, "--steps", str(a.steps)],
                                     check=True, capture_output=True, text=True).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
            best = min(runs, key=lambda r: r["seconds"])
            results |= {r["result"] for r in runs}
            policy = "kept" if keep else "glibc default"
            print(f"{work:5s} {policy:13s} {best['seconds']:6.1f} s  sys {best['sys_s']:5.1f} s  "
                  f"peak {best['peak_mb']:6.0f} MB", flush=True)
        if len(results) != 1:
            raise SystemExit(f"{work}: the policies gave different results {sorted(results)}")


if __name__ == "__main__":
    main()
