"""How long the seed workers of one training or scoring stage take to start, forked or spawned.

    .venv/bin/python benchmarks/worker_start.py [--workers 2] [--repeats 3]

Imports what a stage's process imports (torch, timm, the training, distillation and evaluation
modules), then starts a pool of --workers processes the way training/seeds.py does, once per
start method, and waits until each worker has run one trivial job that needs those modules. A
spawned worker imports everything again; a forked one inherits it. Prints one JSON line: the
parent's import time and, per start method, the median of --repeats pool starts (seconds).
Run it alone: the imports are CPU-bound, so a busy machine inflates the spawned start.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

t_import = time.perf_counter()
import timm  # noqa: E402,F401  what a stage imports before its workers start
import torch  # noqa: E402,F401

import geodistill.distill.teacher_student  # noqa: E402,F401
import geodistill.evaluation  # noqa: E402,F401
import geodistill.training.baseline  # noqa: E402,F401

IMPORT_S = time.perf_counter() - t_import


def _ready(key: int) -> int:
    """A job that needs the worker's imports: a spawned worker loads them for it."""
    import geodistill.training.baseline  # noqa: F401
    return key


def pool_start_s(method: str, workers: int) -> float:
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
        assert list(pool.map(_ready, range(workers))) == list(range(workers))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    result = {"parent_import_s": round(IMPORT_S, 2), "workers": args.workers}
    for method in ("spawn", "fork"):
        starts = [pool_start_s(method, args.workers) for _ in range(args.repeats)]
        result[f"{method}_start_s"] = round(statistics.median(starts), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
