"""What every stage module shares: the `--config` option, loading params, the process set-up
(logging, glibc's memory reuse), and the one place that turns an expected failure (bad params,
bad data, a bad checkpoint or option, a full disk, an interrupt) into one line on stderr and
exit code 2. A real bug still shows its traceback.

    from stages.common import ConfigOpt, UserError, friendly, load, script
"""
from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
from pathlib import Path
from typing import Callable

import typer

from geodistill import LOG_FORMAT
from geodistill.config import ConfigError, Params, load_params
from geodistill.errors import CheckpointError, FormatError, ImageError

ConfigOpt = typer.Option(Path("params.yaml"), "--config", "-c", help="params file (every setting lives there)")
EXPECTED = (ConfigError, FormatError, ImageError, CheckpointError, FileNotFoundError, FloatingPointError,
            MemoryError)
# what the machine, not the code, got wrong: named with the file, never a traceback
MACHINE = {errno.ENOSPC: "the disk is full: free some space and rerun", errno.EDQUOT: "disk quota exceeded",
           errno.EACCES: "permission denied", errno.EPERM: "not permitted", errno.EROFS: "read-only file system",
           errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "a path above it is a file, not a folder",
           errno.ENAMETOOLONG: "file name too long"}


class UserError(Exception):
    """Bad input named in one line (missing root, corrupt file...): printed without a traceback."""


def friendly(fn: Callable) -> Callable:
    """Print an expected failure as `error: <message>` on stderr and exit with code 2."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, *EXPECTED) as e:
            message = str(e)
        except KeyboardInterrupt:
            message = f"interrupted: {fn.__name__.replace('_', '-')} stopped; nothing half-written was kept"
        except OSError as e:
            if e.errno not in MACHINE:
                raise
            message = (f"{e.filename}: " if e.filename else "") + MACHINE[e.errno]
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    return wrapper


def load(config: Path) -> Params:
    """The validated params of `config`: every problem named, before any work starts."""
    return load_params(config)


def require(path: Path, what: str, hint: str = "") -> None:
    """Refuse a missing input file or folder in one line: `<what> not found: <path>`."""
    if not path.exists():
        raise UserError(f"{what} not found: {path}" + (f" ({hint})" if hint else ""))


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Have glibc keep freed blocks of up to `limit` bytes for reuse instead of handing them back
    to the kernel. By default a block of 32 MB or more is unmapped when freed and the heap top is
    trimmed, so the next array of that size faults in fresh zeroed pages: building the largest
    synthetic city (rasters of 60-240 MB, rebuilt for every road) spent 18.8 of its 34.2 s in the
    kernel. Kept, the same arithmetic runs on warm pages and gives the same bytes: 19.3 s, and
    training steps 6 % faster (benchmarks/memory_reuse.py; peak memory +1 %).
    Forked workers inherit it. Returns whether it applied: not off glibc, nor where the user set
    MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ (their choice wins)."""
    if {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"} & os.environ.keys():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt                          # the process's C library
    except (AttributeError, OSError, TypeError):                     # not glibc (macOS, Windows)
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                      # glibc's <malloc.h>
    return bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))


def start_process() -> None:
    """What a stage's process does first, as a script or under the `geodistill` command."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")
    keep_freed_memory()


def script(command: Callable) -> None:
    """Run one stage as a program (`python -m stages.<stage> --help`): its options, no subcommand."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(command)
    start_process()
    app()
