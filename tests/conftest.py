"""Shared fixtures: the smoke preset, shrunk further where a test needs it."""
from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from geodistill.config import Params, load_params
from geodistill.training.checkpoint import Checkpointer

REPO = Path(__file__).resolve().parents[1]
CODE = ("src", "stages")                     # what the stages' code deps in dvc.yaml name


def link_code(project: Path) -> None:
    """Make a scratch DVC project run this checkout's code: its stages depend on the source files."""
    for folder in CODE:
        (Path(project) / folder).symlink_to(REPO / folder)


@pytest.fixture(scope="session")
def smoke_params() -> Params:
    return load_params(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="session")
def plain_params(smoke_params: Params) -> Params:
    """Smoke preset with every appearance knob off: both views show the world's true colours."""
    look = smoke_params.synth.appearance.model_copy(update=dict(
        exposure_jitter=0.0, sat_colour_jitter=0.0, sat_shadow_strength=0.0,
        sat_noise_std=0.0, pano_noise_std=0.0, haze_m=1e9))
    synth = smoke_params.synth.model_copy(update=dict(appearance=look, jpeg_quality=100))
    return smoke_params.model_copy(update=dict(synth=synth))


@pytest.fixture
def killed_after_first_epoch(monkeypatch):
    """A context manager: a training run inside it is killed (KeyboardInterrupt) right after it
    writes its first `last` checkpoint, as a signal after epoch 1 would."""
    real_save = Checkpointer.save

    def save_then_die(self, name, state):
        real_save(self, name, state)
        if name == "last":
            raise KeyboardInterrupt("simulated kill")

    @contextlib.contextmanager
    def killing():
        with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
            patch.setattr(Checkpointer, "save", save_then_die)
            yield
    return killing
