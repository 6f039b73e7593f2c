"""G2SWeakly's correlation by either route (convolution, FFT) against the straightforward
definition, values and gradients w.r.t. the satellite features, the BEV and its weight; and
which sizes take which route."""
from __future__ import annotations

import pytest
import torch

from geodistill.config import load_params
from geodistill.models import correlation
from geodistill.models.g2s import G2SWeakly, correlate
from conftest import REPO


def reference_correlate(sat: torch.Tensor, bev: torch.Tensor, weight: torch.Tensor, all_pairs: bool) -> torch.Tensor:
    """The docstring of `correlate`, window by window: the cosine between weight * window and
    t = weight * bev at every position, (B_sat, B_ground, P, P) or (B, P, P)."""
    c = bev.shape[-1]
    t = weight * bev                                                      # (B_g, C, c, c)
    windows = sat.unfold(2, c, 1).unfold(3, c, 1)                         # (B_s, C, P, P, c, c)
    energy = sat.square().sum(1).unfold(1, c, 1).unfold(2, c, 1)          # (B_s, P, P, c, c)
    num = torch.einsum("scuvyx,gcyx->sguv", windows, weight * t)          # (B_s, B_g, P, P)
    den = torch.einsum("suvyx,gyx->sguv", energy, weight[:, 0].square())  # (B_s, B_g, P, P)
    scores = num / (den.clamp_min(1e-8).sqrt() * t.flatten(1).norm(dim=1).clamp_min(1e-8)[None, :, None, None])
    return scores if all_pairs else scores.diagonal(dim1=0, dim2=1).permute(2, 0, 1)


@pytest.mark.parametrize("route", ["direct", "fft"])
@pytest.mark.parametrize("all_pairs", [True, False])
def test_both_routes_match_the_definition_values_and_gradients(route, all_pairs, monkeypatch):
    monkeypatch.setattr(correlation, "takes_fft", lambda shape: route == "fft")
    torch.manual_seed(0)
    B, C, A, c = 3, 5, 19, 8
    inputs = [torch.randn(B, C, A, A), torch.randn(B, C, c, c), torch.rand(B, 1, c, c)]
    inputs[2][..., :2] = 0.0                                              # occluded cells
    upstream = torch.randn((B, B, A - c + 1, A - c + 1) if all_pairs else (B, A - c + 1, A - c + 1))
    results = []
    for fn, dtype in ((correlate, torch.float32), (reference_correlate, torch.float64)):
        leaves = [x.detach().to(dtype).requires_grad_() for x in inputs]
        out = fn(*leaves, all_pairs=all_pairs)
        (out * upstream.to(dtype)).sum().backward()
        results.append([out] + [x.grad for x in leaves])
    for got, want in zip(*results):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)


def test_fft_route_on_non_square_maps_and_more_satellites_than_kernels():
    """As in a distributed loss (B_x > B_k: every rank's satellites against this rank's BEVs)."""
    torch.manual_seed(1)
    x, k = torch.randn(3, 2, 9, 11, dtype=torch.float64), torch.randn(2, 2, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(correlation.fft(x, k, all_pairs=True), correlation.direct(x, k, all_pairs=True))
    assert torch.autograd.gradcheck(lambda a, b: correlation.fft(a, b, all_pairs=True),
                                    (x.requires_grad_(), k.requires_grad_()))
    assert torch.autograd.gradcheck(lambda a, b: correlation.fft(a, b), (x[:2], k))


@pytest.mark.parametrize("preset", ["params.yaml", "configs/smoke.yaml", "configs/vigor.yaml"])
def test_the_synthetic_sizes_convolve_and_vigor_sizes_take_the_fft(preset):
    """The default and smoke presets keep the plain convolution (their numbers, bit for bit);
    every level of VIGOR's (satellite 512 to stride 2) takes the FFT. The crops depend on the
    satellite size, the strides and crop_fraction only: a small backbone stands in."""
    for p in load_params(REPO / preset).baselines.values():
        if p.kind != "g2s":
            continue
        encoder = p.encoder.model_copy(update={"backbone": "resnet18"}) if p.encoder.kind == "unet" else p.encoder
        model = G2SWeakly(p.model_copy(update={"pretrained": False, "encoder": encoder}), camera_height_m=2.0)
        routes = [correlation.takes_fft((1, 1, c, c)) for c in model.crops]
        assert routes == [preset == "configs/vigor.yaml"] * 3, (preset, model.crops)
