"""CCVPE: orientation-aware matching (exact), its targets, and the model on tiny inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geodistill.geometry import roll_panorama
from geodistill.models.ccvpe import CCVPE, CCVPEOutput, infonce_target, match, roll_descriptor
from geodistill.models.localizer import Batch, gaussian_target


@pytest.fixture(scope="module")
def params(smoke_params):
    return smoke_params.baselines["ccvpe"]          # 8 bins, pano 128 x 64, sat 64


@pytest.fixture(scope="module")
def model(params):
    torch.manual_seed(0)
    return CCVPE(params).eval()


def random_batch(p, B=3, seed=0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    (W, H), S = p.pano_size, p.sat_size
    return Batch(pano=torch.randint(0, 256, (B, H, W, 3), generator=g, dtype=torch.uint8),
                 sat=torch.randint(0, 256, (B, S, S, 3), generator=g, dtype=torch.uint8),
                 sat_mpp=torch.full((B,), 0.5), gt_px=torch.rand(B, 2, generator=g) * (S - 1),
                 yaw_deg=torch.rand(B, generator=g) * 90 - 45)


def test_shapes_no_nan_and_every_parameter_learns(params):
    torch.manual_seed(1)
    model = CCVPE(params).train()
    batch = random_batch(params)
    out = model(batch.pano, batch.sat)
    S, n = params.sat_size, params.orientation_bins
    assert out.heatmap.shape == (3, S, S) and out.orientation.shape == (3, 2, S, S)
    assert [v.shape for v in out.matching] == [(3, n, S // 32, S // 32), (3, n, S // 16, S // 16)]
    torch.testing.assert_close(out.orientation.norm(dim=1), torch.ones(3, S, S))
    loss = model.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    missing = [name for name, q in model.named_parameters() if q.grad is None or not q.grad.abs().sum() > 0]
    assert missing == []


def test_matching_at_shift_k_is_matching_the_panorama_turned_by_k_bins(model, params):
    batch = random_batch(params, B=2, seed=3)
    n = params.orientation_bins
    with torch.no_grad():
        sat = model.sat_heads[0](torch.randn(2, params.decoder_channels[0], 2, 2))
        sat = sat.view(2, -1, n, 2, 2)                                     # any satellite descriptor
        base = model.ground_descriptors(batch.pano)
        for k in (1, 3, n - 1):
            turned = np.stack([roll_panorama(p, k * 360 / n) for p in batch.pano.numpy()])
            g = model.ground_descriptors(torch.from_numpy(turned))
            for level, (gk, g0) in enumerate(zip(g, base)):
                torch.testing.assert_close(gk, g0.roll(-k, dims=-1), atol=1e-5, rtol=1e-4)   # columns roll
            volume, volume_turned = match(base[0], sat), match(g[0], sat)               # (B, n, a, a)
            torch.testing.assert_close(volume_turned[:, k], volume[:, 0], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(volume_turned, volume.roll(k, dims=1), atol=1e-5, rtol=1e-4)


def test_roll_descriptor_is_torch_roll_per_shift():
    g = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)
    rolled = roll_descriptor(g)                                            # (B, D, shift, n)
    for o in range(5):
        torch.testing.assert_close(rolled[:, :, o], g.roll(o, dims=-1))


def test_infonce_target_sums_to_one_at_the_true_cell_and_orientation():
    gt = torch.tensor([[40.0, 7.0], [0.0, 63.0], [31.4, 32.6]])          # input px of a 64-px tile
    yaw = torch.tensor([45.0, -10.0, 0.0])                                 # 8 bins of 45 degrees
    t = infonce_target(gt, yaw, bins=8, cells=4, stride=16)               # (B, 8, 4, 4)
    torch.testing.assert_close(t.sum((1, 2, 3)), torch.ones(3))
    assert t[0, 1, 2, 0] == 1.0                                            # yaw 45 = bin 1 exactly
    assert t[1, 7, 0, 3] == pytest.approx(1 - 35 / 45, rel=1e-5) and t[1, 0, 0, 3] == pytest.approx(35 / 45, rel=1e-5)
    assert t[2, 0, 1, 2] == 1.0                                            # (31.4, 32.6) -> cell (1, 2)
    assert (t > 0).sum() == 4


def test_matching_orientation_is_the_direction_of_a_confident_shift_and_short_when_unsure(model, params):
    n = params.orientation_bins                                           # 8 bins of 45 degrees
    volume = torch.zeros(1, n, 2, 2)
    volume[0, 3, 0, 1] = 10.0                                             # confident: shift 3 = 135 degrees
    volume[0, 6, 1, 0] = 10.0                                             # confident: shift 6 = 270 degrees
    u = model.matching_orientation(volume)                                # (1, 2, 2, 2)
    expect = torch.tensor([[np.cos(np.deg2rad(135)), np.sin(np.deg2rad(135))], [0.0, -1.0]], dtype=torch.float32)
    torch.testing.assert_close(u[0, :, 0, 1], expect[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(u[0, :, 1, 0], expect[1], atol=1e-6, rtol=0)
    torch.testing.assert_close(u[0, :, 0, 0], torch.zeros(2), atol=1e-6, rtol=0)   # flat: no direction


def test_gaussian_target_sums_to_one_and_peaks_at_the_centre():
    g = gaussian_target(torch.tensor([[3.0, 10.0], [0.0, 0.0]]), 16, 2.0)
    torch.testing.assert_close(g.sum((1, 2)), torch.ones(2))
    assert g[0].argmax() == 3 * 16 + 10 and g[1].argmax() == 0
    assert g[0, 3, 8] == pytest.approx(g[0, 3, 12].item(), rel=1e-5) == pytest.approx(g[0, 5, 10].item(), rel=1e-5)


def test_predict_reads_the_yaw_at_the_predicted_position(model, params, monkeypatch):
    S = params.sat_size
    heat = torch.full((2, S, S), -10.0)
    heat[0, 20, 41], heat[1, 5, 6] = 5.0, 5.0
    angle = torch.full((2, S, S), np.deg2rad(170.0))
    angle[0, 20, 41], angle[1, 5, 6] = np.deg2rad(-30.0), np.deg2rad(100.0)
    field = torch.stack([angle.cos(), angle.sin()], dim=1)
    monkeypatch.setattr(CCVPE, "forward", lambda self, pano, sat, column_mask=None: CCVPEOutput(heat, field, [], []))
    batch = random_batch(params, B=2)
    pred = model.predict(batch.pano, batch.sat, batch.sat_mpp)
    torch.testing.assert_close(pred.pixel, torch.tensor([[20.0, 41.0], [5.0, 6.0]]))
    torch.testing.assert_close(pred.yaw_deg, torch.tensor([-30.0, 100.0]))
    assert pred.extent == (-0.5, -0.5, S - 0.5, S - 0.5)


def test_learning_moves_the_heatmap_to_the_label(params):
    """A few steps on one batch: the heatmap cross-entropy falls (the loss is wired to the label)."""
    torch.manual_seed(2)
    model = CCVPE(params).train()
    batch = random_batch(params, B=2, seed=5)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(15):
        loss = model.loss(batch)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_a_pano_width_that_does_not_give_the_bins_is_named(params):
    bad = params.model_copy(update={"orientation_bins": 10})
    with pytest.raises(ValueError, match="orientation_bins is 10.*use width 160"):
        CCVPE(bad)
