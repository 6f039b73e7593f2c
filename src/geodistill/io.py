"""Atomic outputs: a file or folder either appears complete or not at all.

    with atomic_file(out) as tmp:            # write to tmp; renamed over `out` on success
        table.to_csv(tmp, index=False)
    with atomic_dir(out) as tmp:             # build a whole folder; replaces `out` on success
        ...
An interrupted write leaves only `<name>.tmp` / `<name>.partial`, never a half-written output
that DVC or a later stage could mistake for a finished one.
"""
from __future__ import annotations

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
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path):
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    yield partial
    if path.exists():
        shutil.rmtree(path)
    partial.rename(path)


def write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text)
