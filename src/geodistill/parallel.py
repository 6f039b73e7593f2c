"""Map a function over items in forked worker processes, with a progress bar.

    for result in fork_map(render_one, items, workers=2, desc="render"):
        ...

Workers are forked, so they inherit module-level state prepared by the caller (large arrays are
shared copy-on-write, never pickled). Results come back in input order; workers <= 1 runs in
this process.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator

from tqdm import tqdm


def resolve_workers(workers: int) -> int:
    """0 means one per CPU core."""
    return workers or os.cpu_count() or 1


def fork_map(fn: Callable, items: list, workers: int, desc: str, unit: str = "item",
             chunksize: int = 8) -> Iterator:
    bar = dict(total=len(items), desc=desc, unit=unit, disable=None, leave=False)
    if resolve_workers(workers) <= 1:
        yield from tqdm(map(fn, items), **bar)
        return
    with mp.get_context("fork").Pool(resolve_workers(workers)) as pool:
        yield from tqdm(pool.imap(fn, items, chunksize=chunksize), **bar)
