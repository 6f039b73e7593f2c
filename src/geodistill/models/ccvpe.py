"""CCVPE (Xia et al., TPAMI 2023; docs/paper-reference.md#ccvpe), compact but faithful in structure:
fully supervised localization with orientation-aware ground descriptors.

    model = CCVPE(params.baselines["ccvpe"])
    out = model(pano, sat)                       # pano (B, H, W, 3), sat (B, S, S, 3) uint8
    out.heatmap, out.orientation                 # (B, S, S) logits, (B, 2, S, S) unit (cos, sin)
    out.matching                                 # per matching level (B, n, a, a), coarse to fine
    loss = model.loss(batch)                     # heatmap CE + infoNCE + orientation regression

Ground: a timm CNN made circular along the panorama's width, cut at the level where the
panorama is n = `orientation_bins` columns wide, so turning the camera by one bin (360/n
degrees) rolls its features by exactly one column. Per matching level a (h x 1) convolution
folds the height into a D-wide descriptor per column, g (B, D, n): the column order is kept.
Satellite: a timm CNN and a U-Net decoder from its stride-32 level up to the input resolution.
At each of the first `descriptor_dims` decoder stages the features become a (D x n) descriptor
per cell, matched (cosine) against g rolled by every o in 0..n-1: volume (B, n, a, a), which
joins the decoder. Heads at full resolution: heatmap logits and a (cos, sin) orientation field;
the orientation head also sees each level's matching orientation (the infoNCE-softmax expectation
of the shift's direction per cell, upsampled), the path by which the volumes' yaw reaches it.

Yaw convention: a panorama turned by yaw t (roll_panorama(p, t)) matches best at o = t / (360/n);
the orientation field regresses (cos t, sin t), and is read at the predicted position.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from geodistill.config import CCVPEParams
from geodistill.models.backbones import Encoder, normalize
from geodistill.models.decoders import conv_bn_relu, resize
from geodistill.models.localizer import Batch, Prediction, gaussian_target, locate


@dataclass
class CCVPEOutput:
    heatmap: torch.Tensor             # (B, S, S) logits over satellite input pixels
    orientation: torch.Tensor         # (B, 2, S, S) unit vectors (cos yaw, sin yaw)
    matching: list[torch.Tensor]      # per matching level (B, n, a, a) cosine, coarse to fine
    strides: list[int]                # the matching levels' strides (satellite input px per cell)


def make_width_circular(net: nn.Module) -> nn.Module:
    """Every convolution of `net` pads the width circularly (height keeps its zero padding), in
    place; weights and state-dict keys are unchanged. A 360-degree panorama has no left or
    right edge, and with circular width a roll of the input by a multiple of the network's
    stride rolls every feature map exactly."""
    for name, conv in net.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        if type(conv).__name__ == "Conv2dSame" or isinstance(conv.padding, str):
            raise ValueError(f"convolution {name!r} pads dynamically ({type(conv).__name__}); "
                             f"pick a backbone with static padding (e.g. efficientnet_b0, not tf_*)")
        pad_h, pad_w = conv.padding
        if pad_w:
            conv.padding = (pad_h, 0)
            conv.register_forward_pre_hook(lambda _, args, p=pad_w: (F.pad(args[0], (p, p, 0, 0), mode="circular"),))
    return net


def roll_descriptor(g: torch.Tensor) -> torch.Tensor:
    """(B, D, n) ground descriptor -> (B, D, n_shifts = n, n): shift o is g rolled by o columns,
    [:, :, o, j] = g[:, :, (j - o) mod n]."""
    n = g.shape[-1]
    idx = (torch.arange(n)[None, :] - torch.arange(n)[:, None]) % n      # (o, j)
    return g[:, :, idx.to(g.device)]


def match(ground: torch.Tensor, sat: torch.Tensor) -> torch.Tensor:
    """Cosine between the ground descriptor at every shift and every satellite cell.
    ground (B, D, n); sat (B, D, n, a, a) -> (B, n, a, a); [b, o] matches ground rolled by o."""
    g = F.normalize(ground.flatten(1), dim=1).view_as(ground)            # unit over (D, n)
    s = F.normalize(sat.flatten(1, 2), dim=1).view_as(sat)               # unit per cell
    return torch.einsum("bdoj,bdjyx->boyx", roll_descriptor(g), s)


def infonce_target(gt_px: torch.Tensor, yaw_deg: torch.Tensor, bins: int, cells: int, stride: int) -> torch.Tensor:
    """(B, n, a, a) target of one matching level: all mass on the cell holding the true pixel
    (input pixels, centres at integers), split between the two orientation bins around the true
    yaw in proportion to closeness."""
    B = gt_px.shape[0]
    cell = ((gt_px + 0.5) / stride).floor().long().clamp(0, cells - 1)  # (B, 2) row, col
    pos = torch.remainder(yaw_deg / (360.0 / bins), bins)               # (B,) fractional bin
    lo = pos.floor().long() % bins
    frac = pos - pos.floor()
    target = gt_px.new_zeros(B, bins, cells, cells)
    b = torch.arange(B, device=gt_px.device)
    target[b, lo, cell[:, 0], cell[:, 1]] += 1 - frac
    target[b, (lo + 1) % bins, cell[:, 0], cell[:, 1]] += frac
    return target


def panoramas_only(camera: torch.Tensor | None) -> None:
    """CCVPE's ground descriptor is a full circle of panorama columns: a pinhole image has none."""
    if camera is not None:
        raise ValueError("CCVPE reads equirectangular panoramas; this batch holds pinhole images (KITTI): "
                         "use a G2SWeakly method (kind: g2s) on this dataset")


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum target * log softmax(logits), both (B, ...) flattened."""
    return -(target.flatten(1) * F.log_softmax(logits.flatten(1), dim=1)).sum(1).mean()


class CCVPE(nn.Module):
    """camera_height_m is accepted for the shared interface and unused: CCVPE learns the view
    relation, it projects nothing."""

    def __init__(self, p: CCVPEParams, camera_height_m: float = 2.0):
        super().__init__()
        self.p = p
        w, h = p.pano_size
        self.bins, self.train_yaw_deg = p.orientation_bins, p.train_yaw_deg
        self.ground = make_width_circular(Encoder(p.backbone, (p.ground_level,), p.pretrained, p.weights,
                                                 "ground_level"))
        g_stride, g_chs = self.ground.reductions[0], self.ground.channels[0]
        if w % g_stride or w // g_stride != self.bins or h % g_stride:
            raise ValueError(f"the ground features at level {p.ground_level} have stride {g_stride}: "
                             f"pano_size {[w, h]} gives {w / g_stride:g} columns, but orientation_bins is "
                             f"{self.bins} (use width {self.bins * g_stride} and a height divisible by {g_stride})")
        self.sat = Encoder(p.backbone, tuple(range(-5, 0)), p.pretrained, p.weights)   # strides 2 .. 32
        if self.sat.reductions != [2, 4, 8, 16, 32] or p.sat_size % 32:
            raise ValueError(f"CCVPE needs a backbone with feature strides 2..32 and sat_size divisible by 32; "
                             f"got strides {self.sat.reductions}, sat_size {p.sat_size}")
        widths, dims = p.decoder_channels, p.descriptor_dims
        self.strides = [32 >> j for j in range(len(widths))]              # 32, 16, 8, 4, 2, 1
        skips = self.sat.channels[::-1] + [0]                              # efficientnet_b0: 320, 112, 40, 24, 16, 0
        self.ground_heads = nn.ModuleList(nn.Conv2d(g_chs, d, (h // g_stride, 1)) for d in dims)
        self.stages = nn.ModuleList()
        for j, c in enumerate(widths):
            cin = skips[j] + (widths[j - 1] if j else 0)
            self.stages.append(nn.Sequential(conv_bn_relu(cin, c), conv_bn_relu(c, c)))
        self.sat_heads = nn.ModuleList(nn.Conv2d(widths[j], d * self.bins, 1) for j, d in enumerate(dims))
        self.merges = nn.ModuleList(conv_bn_relu(widths[j] + self.bins + 1, widths[j]) for j in range(len(dims)))
        self.heatmap_head = nn.Conv2d(widths[-1], 1, 3, padding=1)
        self.orientation_head = nn.Conv2d(widths[-1] + 2 * len(dims), 2, 3, padding=1)
        shift = torch.deg2rad(torch.arange(self.bins) * (360.0 / self.bins))
        self.register_buffer("shift_dirs", torch.stack([shift.cos(), shift.sin()], 1), persistent=False)  # (n, 2)

    def ground_descriptors(self, pano: torch.Tensor, column_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per matching level (B, D, n), column order = panorama azimuth order. column_mask (B, W)
        in [0, 1] zeroes the descriptor columns of occluded panorama columns."""
        feat = self.ground(normalize(pano))[0]                             # (B, C, h, n)
        descriptors = [head(feat)[:, :, 0] for head in self.ground_heads]  # (B, D, n)
        if column_mask is not None:
            keep = F.adaptive_avg_pool1d(column_mask[:, None].float(), self.bins)   # (B, 1, n)
            descriptors = [d * keep for d in descriptors]
        return descriptors

    def forward(self, pano: torch.Tensor, sat: torch.Tensor, column_mask: torch.Tensor | None = None) -> CCVPEOutput:
        ground = self.ground_descriptors(pano, column_mask)
        skips = self.sat(normalize(sat))[::-1]                             # strides 32, 16, 8, 4, 2
        x, matching = None, []
        for j, stage in enumerate(self.stages):
            parts = [] if x is None else [resize(x, (x.shape[-2] * 2, x.shape[-1] * 2))]
            if j < len(skips):
                parts.append(skips[j])
            x = stage(torch.cat(parts, dim=1))                             # (B, Cj, S/s, S/s)
            if j < len(ground):
                a = x.shape[-1]
                volume = match(ground[j], self.sat_heads[j](x).view(x.shape[0], -1, self.bins, a, a))  # (B, n, a, a)
                matching.append(volume)
                x = self.merges[j](torch.cat([x, volume, volume.amax(1, keepdim=True)], dim=1))
        S = x.shape[-1]
        cues = [resize(self.matching_orientation(v), (S, S)) for v in matching]   # each (B, 2, S, S)
        orientation = F.normalize(self.orientation_head(torch.cat([x, *cues], 1)), dim=1, eps=1e-6)
        return CCVPEOutput(self.heatmap_head(x)[:, 0], orientation, matching, self.strides[:len(matching)])

    def matching_orientation(self, volume: torch.Tensor) -> torch.Tensor:
        """(B, n, a, a) matching volume -> (B, 2, a, a): per cell the mean (cos, sin) of the
        shifts' yaws under the infoNCE softmax over shifts (not unit: short when unsure)."""
        prob = F.softmax(volume / self.p.infonce_temperature, dim=1)
        return torch.einsum("boyx,oc->bcyx", prob, self.shift_dirs)

    def loss(self, batch: Batch) -> torch.Tensor:
        panoramas_only(batch.camera)
        out = self(batch.pano, batch.sat, batch.column_mask)
        p, S = self.p, batch.sat.shape[1]
        gauss = gaussian_target(batch.gt_px, S, p.heatmap_sigma_px)           # (B, S, S), sums to 1
        heat = soft_cross_entropy(out.heatmap, gauss)
        nce = torch.stack([soft_cross_entropy(v / p.infonce_temperature,
                                              infonce_target(batch.gt_px, batch.yaw_deg, self.bins, v.shape[-1], s))
                           for v, s in zip(out.matching, out.strides)]).mean()
        yaw = torch.deg2rad(batch.yaw_deg)
        truth = torch.stack([yaw.cos(), yaw.sin()], dim=1)[:, :, None, None]   # (B, 2, 1, 1)
        orient = (gauss * (out.orientation - truth).square().sum(1)).sum((1, 2)).mean()
        return p.heatmap_weight * heat + p.infonce_weight * nce + p.orientation_weight * orient

    def score_maps(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor | None = None,
                   column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None
                   ) -> list[torch.Tensor]:
        """The matching volumes, per level (B, n, a, a) cosine over orientation and position: the
        occlusion masks the orientation-aware ground descriptor, as GeoDistill does on CCVPE."""
        panoramas_only(camera)
        return self(pano, sat, column_mask).matching

    def ground_features(self, pano: torch.Tensor) -> torch.Tensor:
        return self.ground(normalize(pano))[0]                   # (B, C, H/s, n)

    @torch.no_grad()
    def predict(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor | None = None,
                column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None) -> Prediction:
        panoramas_only(camera)
        out = self(pano, sat, column_mask)
        peak = locate(out.heatmap)                                         # (B, 2) input px
        S = sat.shape[1]
        r, c = peak.round().long().clamp(0, S - 1).unbind(1)
        b = torch.arange(len(peak), device=peak.device)
        cos, sin = out.orientation[b, 0, r, c], out.orientation[b, 1, r, c]
        yaw = torch.rad2deg(torch.atan2(sin, cos))
        return Prediction(pixel=peak, yaw_deg=yaw, heatmap=out.heatmap, extent=(-0.5, -0.5, S - 0.5, S - 0.5))

