"""UnetEncoder / DptEncoder: level count, shapes, confidences, gradients, frozen ViT, bad arguments."""
from __future__ import annotations

from functools import cache

import pytest
import torch

from geodistill.models.decoders import DptEncoder, UnetEncoder

CHANNELS = [16, 8, 4]
VIT = "vit_small_patch14_dinov2"  # the paper's DINOv2 family, patch 14
TINY_VIT = "test_vit"  # timm's 6-block test ViT, patch 16: cheap to build

ENCODERS = {
    "unet-vgg16": lambda size: UnetEncoder("vgg16", CHANNELS),
    "unet-resnet18": lambda size: UnetEncoder("resnet18", CHANNELS),
    "dpt-vit": lambda size: DptEncoder(VIT, blocks=[0, 1, 2, 3], channels=CHANNELS, image_size=size),
}
SIZES = {  # (panorama 1:2, square); the ViT needs multiples of 14 and 8
    "unet-vgg16": [(32, 64), (32, 32)],
    "unet-resnet18": [(32, 64), (32, 32)],
    "dpt-vit": [(56, 112), (56, 56)],
}
CASES = [(name, size) for name in ENCODERS for size in SIZES[name]]


@cache
def _encoder(name: str, size: tuple[int, int]) -> UnetEncoder | DptEncoder:
    """Built once per session (timm init dominates the run time); tests set train/eval themselves."""
    torch.manual_seed(0)
    return ENCODERS[name](size)


def _images(size: tuple[int, int], batch: int = 2) -> torch.Tensor:
    return torch.randint(0, 256, (batch, *size, 3), dtype=torch.uint8)


@pytest.mark.parametrize("name,size", CASES)
def test_levels_shapes_and_confidences(name, size):
    torch.manual_seed(0)
    encoder = _encoder(name, size).eval()
    with torch.no_grad():
        levels = encoder(_images(size))
    assert encoder.channels == CHANNELS and encoder.strides == [8, 4, 2]
    assert len(levels) == len(CHANNELS)
    h, w = size
    for (feats, conf), c, s in zip(levels, CHANNELS, encoder.strides):
        assert feats.shape == (2, c, h // s, w // s)
        assert conf.shape == (2, 1, h // s, w // s)
        assert torch.isfinite(feats).all()
        assert ((conf >= 0) & (conf <= 1)).all()


@pytest.mark.parametrize("name", list(ENCODERS))
def test_every_trainable_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    size = SIZES[name][0]
    encoder = _encoder(name, size).train()
    encoder.zero_grad(set_to_none=True)
    loss = sum(f.mean() + c.mean() for f, c in encoder(_images(size)))
    loss.backward()
    trainable = {n: p for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable
    assert [n for n, p in trainable.items() if p.grad is None] == []


def test_frozen_vit_gets_no_gradient_and_stays_in_eval_mode():
    torch.manual_seed(0)
    encoder = _encoder("dpt-vit", (56, 56)).train()
    encoder.zero_grad(set_to_none=True)
    assert encoder.training and not encoder.net.training
    assert not any(m.training for m in encoder.net.modules())
    assert encoder.reassemble.training
    sum(f.mean() + c.mean() for f, c in encoder(_images((56, 56)))).backward()
    assert all(not p.requires_grad and p.grad is None for p in encoder.net.parameters())
    assert len(encoder.net.blocks) == 4  # pruned after the deepest requested block


def test_unfrozen_vit_trains():
    encoder = DptEncoder(TINY_VIT, blocks=[0, 1], channels=[8], image_size=(32, 64), freeze=False).train()
    assert encoder.net.training
    assert all(p.requires_grad for p in encoder.net.parameters())
    (feats, conf), = encoder(_images((32, 64), batch=1))
    assert feats.shape == (1, 8, 4, 8)


def test_fewer_levels_stop_at_coarser_strides():
    encoder = UnetEncoder("resnet18", [8, 4])
    assert encoder.strides == [8, 4]
    assert [f.shape[-2:] for f, _ in encoder(_images((32, 64)))] == [(4, 8), (8, 16)]


@pytest.mark.parametrize("make,match", [
    pytest.param(lambda: UnetEncoder("convnext_atto", CHANNELS), r"none at \[2\]", id="no-stride-2-skip"),
    pytest.param(lambda: UnetEncoder("resnet18", []), "channels", id="no-levels"),
    pytest.param(lambda: UnetEncoder("resnet18", [16, 8, 4, 2]), "channels", id="four-levels"),
    pytest.param(lambda: UnetEncoder("resnet18", [16, 0]), "channels", id="zero-width"),
    pytest.param(lambda: DptEncoder(TINY_VIT, [0, 1], CHANNELS, (32, 32)), "blocks", id="too-few-blocks"),
    pytest.param(lambda: DptEncoder(TINY_VIT, [0, 1, 6], [8], (32, 32)), "blocks", id="bad-block"),
    pytest.param(lambda: DptEncoder(TINY_VIT, [0, 1, 2], CHANNELS, (40, 80)), "multiples", id="bad-size"),
])
def test_bad_arguments_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_dpt_rejects_images_of_another_size():
    encoder = _encoder("dpt-vit", (56, 56))
    with pytest.raises(ValueError, match="built for"):
        encoder(_images((56, 112)))
