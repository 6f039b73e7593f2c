"""Run the seeds of one run one after another, or several at once in separate processes.

    results = run_seeds(train_one, [2023, 2024, 2025], params.train)   # seed -> train_one(seed)

With `train.parallel_seeds` = k > 1, k seeds run at once, each in its own process with
`train.threads` torch threads (0: the machine's cores / k). Small CPU models use two cores far
better as two one-thread processes than as one two-thread process, and every seed stays exactly
reproducible: its numbers depend on its own thread count, never on which seeds run beside it.
`fn` must be picklable (a module-level function, or a functools.partial of one).

The workers are forked where that is safe (start_method), so they inherit the torch and timm
this process imported instead of importing them again: a spawned pair took 4.1 s to start on
the quiet 2-core reference machine, a forked one 0.03 s, once per training and scoring stage
(benchmarks/worker_start.py).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor

import torch

from geodistill import LOG_FORMAT
from geodistill.config import TrainParams


def worker_threads(t: TrainParams) -> int:
    """torch threads of one seed's process."""
    return t.threads or max(1, (os.cpu_count() or 1) // t.parallel_seeds)


def start_method(threads: int) -> str:
    """`fork` on Linux for one-thread workers while CUDA is untouched, else `spawn`. A forked child
    cannot use a CUDA context of its parent, and GNU OpenMP can hang in a child that starts a
    multi-thread parallel region after its parent ran one (pytorch/pytorch#58962); with one
    thread torch runs no OpenMP region at all. macOS and Windows always spawn."""
    safe = sys.platform.startswith("linux") and threads == 1 and not torch.cuda.is_initialized()
    return "fork" if safe else "spawn"


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")


def run_seeds(fn: Callable[[Hashable], dict], keys: list, t: TrainParams | None) -> dict:
    """key -> fn(key) for each key (a seed, or a (model, seed) pair), in the order of `keys`,
    train.parallel_seeds at a time (t None: in turn, in this process). An error in a worker is
    raised here as it was raised there, once the keys already running have finished (no other
    key starts)."""
    workers = 1 if t is None else min(t.parallel_seeds, len(keys))
    if workers <= 1:
        return {key: fn(key) for key in keys}
    threads = worker_threads(t)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(start_method(threads)),
                             initializer=_start_worker, initargs=(threads,)) as pool:
        futures = {key: pool.submit(fn, key) for key in keys}
        try:
            return {key: future.result() for key, future in futures.items()}
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)        # the keys not started yet never start
            raise
