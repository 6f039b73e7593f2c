"""Atomic outputs: a file or folder either appears complete or not at all.

    with atomic_file(out) as tmp:            # write to tmp; renamed over `out` on success
        table.to_csv(tmp, index=False)
    with atomic_dir(out) as tmp:             # build a whole folder; replaces `out` on success
        ...
A failed write removes its `<name>.tmp` / `<name>.partial` (a killed process may leave one, which
the next write replaces), never a half-written output that DVC or a later stage could mistake for
a finished one.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_file(path: str | Path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        _name_output(e, path)
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path):
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException as e:
        shutil.rmtree(partial, ignore_errors=True)
        if isinstance(e, OSError):
            _name_output(e, path)
        raise
    if path.exists():
        shutil.rmtree(path)
    partial.rename(path)


def _name_output(error: OSError, path: Path) -> None:
    """Let `error` name the output `path` when it names no file (a write to a full disk names none)."""
    if error.filename is None:
        error.filename = str(path)


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data) -> None:
    """`data` as indented JSON; a NaN or infinite number is refused (ValueError), never written as
    the non-JSON `NaN` / `Infinity`."""
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
