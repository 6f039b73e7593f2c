"""Checkpoints that are written atomically and resumed only under the same params and code.

    ckpt = Checkpointer(folder, params_key)      # params_key: a dict of every setting that matters
    state = ckpt.resume()                         # None, or the state dict of last.pt to go on from
    ckpt.save("last", {...}); ckpt.save("best", {...})

A checkpoint records a hash of `params_key` and of the package's source code; one left by other
params or other code is ignored (and reported), so a DVC `persist: true` output resumes an
interrupted run but never the wrong experiment. Checkpoints hold only tensors and plain Python
values and load with `torch.load(weights_only=True)`. A last.pt whose run has kept a best model
(best.pt; a distillation's teacher.pt and student.pt) is resumed only beside those files: were
one deleted or damaged, the rerun could never write it again, so it is refused, naming what to
delete, instead of reported done.
"""
from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from pathlib import Path

import torch

from geodistill.errors import CheckpointError  # noqa: F401  (raised here, imported from here too)
from geodistill.io import atomic_file

log = logging.getLogger(__name__)


# the models a distillation run keeps, each as <seed folder>/<model>.pt in the baseline checkpoint
# format: the EMA teacher (the paper evaluates it) and the student (the authors' code evaluates it)
DISTILLED_MODELS = ("teacher", "student")


def params_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """sha256 (16 hex digits) of a file's bytes: an input a checkpoint was made from."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@lru_cache(maxsize=1)
def code_digest() -> str:
    """sha256 of every source file of the installed geodistill package."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


class Checkpointer:
    def __init__(self, folder: Path, params_key: dict):
        self.folder = Path(folder)
        self.hash = params_hash({"params": params_key, "code": code_digest()})

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.pt"

    def save(self, name: str, state: dict) -> None:
        with atomic_file(self.path(name)) as tmp:
            torch.save({**state, "params_hash": self.hash}, tmp)

    def load(self, name: str) -> dict | None:
        path = self.path(name)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a checkpoint cut short by a crash: start over, say so
            log.warning("ignoring unreadable checkpoint %s (%s)", path, e)
            return None
        if state.get("params_hash") != self.hash:
            log.warning("ignoring %s: it was written with different params or code", path)
            return None
        return state

    def resume(self, kept: tuple[str, ...] = ("best",)) -> dict | None:
        """The state of last.pt to go on from (None: start afresh). The models its epochs kept
        (`kept`: best.pt; a distillation's teacher.pt and student.pt) must be there beside it: one
        missing or unreadable raises CheckpointError saying what to delete."""
        state = self.load("last")
        lost = [self.path(name).name for name in kept if state is not None and self.load(name) is None]
        if lost:
            raise CheckpointError(f"{self.folder}: {' and '.join(lost)} missing or unreadable, but last.pt has trained "
                                  f"through epoch {state['epoch'] + 1}: a rerun could not write it again; "
                                  f"delete {self.path('last')} to train from the start")
        return state


def seed_dir(run_dir: Path, seed: int) -> Path:
    """The folder of one training seed of a run (params report.seeds): <run_dir>/seed<seed>."""
    return Path(run_dir) / f"seed{seed}"
