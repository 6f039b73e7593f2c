"""Backbone weights from a local file, with the network unreachable (offline machines).

    .venv/bin/pytest -q tests/test_weights_offline.py
"""
from __future__ import annotations

import socket

import pytest
import torch
from safetensors.torch import save_file

from geodistill.models.backbones import Encoder, create_timm


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def saved_state() -> dict[str, torch.Tensor]:
    """A full resnet18 state dict (classifier included, as timm publishes it), shifted away from
    any random init so a match cannot be chance."""
    torch.manual_seed(0)
    model = create_timm("resnet18", False, None)
    return {k: (v + 0.5 if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fmt", ["safetensors", "pth"])
def test_create_timm_loads_a_local_weights_file_exactly(tmp_path, saved_state, no_network, fmt):
    path = tmp_path / f"resnet18.{fmt}"
    if fmt == "safetensors":
        save_file(saved_state, str(path))
    else:
        torch.save(saved_state, path)
    model = create_timm("resnet18", False, str(path), num_classes=0)
    loaded = model.state_dict()
    assert set(loaded) == set(saved_state) - {"fc.weight", "fc.bias"}     # classifier dropped by num_classes=0
    for name, tensor in loaded.items():
        assert torch.equal(tensor, saved_state[name]), name


def test_encoder_loads_a_local_weights_file(tmp_path, saved_state, no_network):
    path = tmp_path / "resnet18.safetensors"
    save_file(saved_state, str(path))
    encoder = Encoder("resnet18", levels=(1,), weights=str(path))
    params = dict(encoder.net.named_parameters())
    assert params
    for name, tensor in params.items():
        assert torch.equal(tensor.detach(), saved_state[name]), name
    feats = encoder(torch.zeros(1, 3, 64, 64))
    assert len(feats) == 1 and torch.isfinite(feats[0]).all()


def test_a_missing_weights_file_is_a_clear_error(tmp_path, no_network):
    missing = tmp_path / "nowhere" / "resnet18.safetensors"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        create_timm("resnet18", False, str(missing), num_classes=0)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        Encoder("resnet18", weights=str(missing))
