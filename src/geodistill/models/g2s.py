"""G2SWeakly (Shi et al., ECCV 2024; docs/paper-reference.md#g2sweakly): weakly supervised localization by
correlating ground features projected onto the ground plane with satellite features.

    model = G2SWeakly(params.baselines["g2s_vgg"], camera_height_m=2.0)
    maps = model(pano, sat, sat_mpp)              # per level (B, P, P): cosine score per position
    loss = model.loss(batch)                      # weak_loss over every ground/satellite pair
    row, col = locate(maps[-1])                   # sub-cell peak of the finest level
    pred = model.predict(pano, sat, sat_mpp)      # the Localizer interface (models/localizer.py); with
                                                  # symmetric_satellite, on the mean of the tile's and
                                                  # its 180-degree turn's satellite features

Geometry, per level with satellite features of A x A cells at stride s: a cell is
s * sat_mpp metres (sat_mpp = metres per satellite INPUT pixel of the sample), the ground
features are projected onto a c x c grid of the same cells around the camera (c = the
crop_fraction of A, even, camera at cell (c/2, c/2)), and the grid slides over the satellite
features: the score at position (u, v) puts the camera at satellite cell (u + c/2, v + c/2),
whose centre is input pixel (u + c/2) * s + (s - 1) / 2 (see cell_to_input_pixel).
A pinhole ground image (KITTI; `camera` given) is projected with its own intrinsics and heading
(pinhole.sample_pinhole_bev), and the cells it does not see get confidence 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geodistill.config import G2SParams, UnetEncoderParams
from geodistill.distributed import gather_rows
from geodistill.geometry import sample_bev
from geodistill.models.correlation import window_sums
from geodistill.models.decoders import DptEncoder, UnetEncoder
from geodistill.models.localizer import Batch, Prediction, locate
from geodistill.pinhole import sample_pinhole_bev


def build_encoder(p: G2SParams, image_size: tuple[int, int]) -> nn.Module:
    """One view's multi-level encoder; image_size = (H, W) of its input."""
    e = p.encoder
    if isinstance(e, UnetEncoderParams):
        return UnetEncoder(e.backbone, e.channels, p.pretrained, p.weights)
    return DptEncoder(e.backbone, e.blocks, e.channels, image_size, p.pretrained, p.weights, e.freeze,
                      e.patch_size)


class G2SWeakly(nn.Module):
    train_yaw_deg = 0.0

    def __init__(self, p: G2SParams, camera_height_m: float):
        super().__init__()
        self.margin_scale = p.margin_scale
        self.symmetric_satellite = p.symmetric_satellite
        w, h = p.pano_size
        self.ground_encoder = build_encoder(p, (h, w))
        self.sat_encoder = build_encoder(p, (p.sat_size, p.sat_size))
        self.strides = list(self.sat_encoder.strides)
        self.sat_cells = [p.sat_size // s for s in self.strides]
        self.crops = [max(2, 2 * round(p.crop_fraction * a / 2)) for a in self.sat_cells]
        self.camera_height_m = camera_height_m

    def levels(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
               column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None,
               symmetric: bool = False) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """pano (B, H, W, 3) and sat (B, S, S, 3) uint8, sat_mpp (B,) metres per satellite input
        pixel, column_mask (B, W) in [0, 1] (0 = occluded panorama column) or None, camera (B, 5)
        for pinhole ground images or None (models/localizer.py). Per level,
        coarse to fine: satellite features (B, C, A, A) with their confidence applied, the ground
        features projected onto the ground plane (B, C, c, c) and their confidence (B, 1, c, c).
        symmetric: the satellite features are those of satellite_levels(symmetric=True)."""
        ground = self.ground_encoder(pano)                       # [(B, C, H/s, W/s), (B, 1, H/s, W/s)]
        sats = self.satellite_levels(sat, symmetric)             # [(B, C, S/s, S/s), (B, 1, S/s, S/s)]
        out = []
        for (gf, gc), (sf, sc), s, c in zip(ground, sats, self.strides, self.crops):
            if column_mask is not None:
                m = F.interpolate(column_mask[:, None, None, :].float(), size=(1, gf.shape[-1]), mode="area")
                gf, gc = gf * m, gc * m                          # (B, C, h, w), (B, 1, h, w)
            bev = project(torch.cat([gf, gc], dim=1), c, sat_mpp * s, self.camera_height_m, camera,
                          (pano.shape[2], pano.shape[1]))        # (B, C+1, c, c)
            out.append((sf * sc, bev[:, :-1], bev[:, -1:]))
        return out

    def satellite_levels(self, sat: torch.Tensor, symmetric: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The satellite encoder's (features, confidence) per level. symmetric: the mean of the
        tile's and of the tile turned by 180 degrees, each turned back. The weak loss cannot tell
        a translation of the satellite features against the ground features, so a network trained
        from scratch learns one (t, in the tile's frame); the turned tile's features carry -t once
        turned back, and their mean is centred (docs/pipeline.md, G2SWeakly). Exact for any ground camera."""
        levels = self.sat_encoder(sat)
        if not symmetric:
            return levels
        turned = self.sat_encoder(torch.rot90(sat, k=2, dims=(1, 2)))   # (B, S, S, 3) turned by 180 degrees
        return [((f + torch.rot90(tf, k=2, dims=(2, 3))) / 2, (c + torch.rot90(tc, k=2, dims=(2, 3))) / 2)
                for (f, c), (tf, tc) in zip(levels, turned)]

    def forward(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
                column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None,
                symmetric: bool = False) -> list[torch.Tensor]:
        """One score map (B, P, P) per level, coarse to fine: each sample's BEV against its own
        satellite tile (inputs as `levels`)."""
        return [correlate(sat_feat, bev, weight)
                for sat_feat, bev, weight in self.levels(pano, sat, sat_mpp, column_mask, camera, symmetric)]

    def loss(self, batch: Batch) -> torch.Tensor:
        """The weak loss over every ground/satellite pair of the batch (gt_px is not used). Run
        distributed, the satellites of every rank's share of the global batch are the negatives,
        exactly as in one process (distributed.gather_rows)."""
        pair_maps, first = [], 0
        for sat_feat, bev, weight in self.levels(batch.pano, batch.sat, batch.sat_mpp, batch.column_mask, batch.camera):
            sat_feat, first = gather_rows(sat_feat)               # (B_global, C, A, A)
            pair_maps.append(correlate(sat_feat, bev, weight, all_pairs=True))
        return weak_loss(pair_maps, self.margin_scale, first)

    def score_maps(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
                   column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None
                   ) -> list[torch.Tensor]:
        """The correlation maps, per level (B, P, P) cosine."""
        return self(pano, sat, sat_mpp, column_mask, camera)

    def ground_features(self, pano: torch.Tensor) -> torch.Tensor:
        return self.ground_encoder(pano)[0][0]                   # (B, C, H/8, W/8), the coarsest level

    @torch.no_grad()
    def predict(self, pano: torch.Tensor, sat: torch.Tensor, sat_mpp: torch.Tensor,
                column_mask: torch.Tensor | None = None, camera: torch.Tensor | None = None) -> Prediction:
        """The finest level's sub-cell peak as a satellite input pixel; the heatmap is its score map
        (with the symmetric satellite features when params ask for them)."""
        scores = self(pano, sat, sat_mpp, column_mask, camera, self.symmetric_satellite)[-1]   # (B, P, P)
        crop, stride = self.crops[-1], self.strides[-1]
        P = scores.shape[-1]
        top, left = cell_to_input_pixel(torch.tensor([[-0.5, -0.5]]), crop, stride)[0].tolist()
        bottom, right = cell_to_input_pixel(torch.tensor([[P - 0.5, P - 0.5]]), crop, stride)[0].tolist()
        return Prediction(pixel=cell_to_input_pixel(locate(scores), crop, stride), yaw_deg=None, heatmap=scores,
                          extent=(top, left, bottom, right))


def project(feat: torch.Tensor, size: int, cell_m: torch.Tensor, cam_h: float, camera: torch.Tensor | None = None,
            image_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Panorama feature maps (B, C, h, w) -> (B, C, size, size) ground-plane grids, camera at cell
    (size/2, size/2), north up, cell_m (B,) metres per cell (one lookup table per distinct value).
    With a camera (B, 5), the maps are of pinhole images of image_size = (W, H) (sample_pinhole_bev)."""
    if camera is not None:
        return sample_pinhole_bev(feat, size, cell_m, cam_h, camera, image_size)[0]
    out = feat.new_empty(feat.shape[0], feat.shape[1], size, size)
    for m in torch.unique(cell_m):
        rows = (cell_m == m).nonzero()[:, 0]
        out[rows] = sample_bev(feat[rows], size, float(m), cam_h)
    return out


def correlate(sat: torch.Tensor, bev: torch.Tensor, weight: torch.Tensor, all_pairs: bool = False) -> torch.Tensor:
    """Weighted cosine between the BEV grid and every satellite window it fits in.

    sat: (B, C, A, A) satellite features (confidence applied); bev: (B, C, c, c) projected ground
    features and weight: (B, 1, c, c) their confidence. With t = weight * bev, the score at a
    position is the cosine between weight * (satellite window) and t:
        sum(weight * t . sat) / (|t| * sqrt(sum(weight^2 |sat|^2))),
    so occluded (weight 0) cells take no part. Returns (B, P, P), P = A - c + 1, pairing sample
    i's BEV with satellite i, or (B_sat, B_ground, P, P) for all pairs (then sat may hold other
    samples' tiles too: B_sat >= B_ground). The window sums run by convolution for small BEV
    grids and by FFT for large ones (models/correlation.py).
    """
    B = bev.shape[0]
    t = weight * bev                                             # (B_ground, C, c, c)
    t_norm = t.flatten(1).norm(dim=1).clamp_min(1e-8)            # (B_ground,)
    energy = sat.square().sum(dim=1, keepdim=True)               # (B_sat, 1, A, A)
    num = window_sums(sat, weight * t, all_pairs)                # (B_sat, B_ground, P, P) or (B, P, P)
    den = window_sums(energy, weight.square(), all_pairs)        # the same shape
    if all_pairs:
        return num / (den.clamp_min(1e-8).sqrt() * t_norm.view(1, B, 1, 1))
    return num / (den.clamp_min(1e-8).sqrt() * t_norm.view(B, 1, 1))


def weak_loss(pair_maps: list[torch.Tensor], margin_scale: float, first: int = 0) -> torch.Tensor:
    """G2SWeakly's weak loss, averaged over levels: for ground i and satellite j, the distance
    d_ij = min over positions of (2 - 2 score); the soft-margin triplet
    sum over i != j of log(1 + exp(gamma (d_ii - d_ij))) / (B_ground (B_sat - 1)), ground-anchored:
    the mean over the ground panoramas of the mean over their negatives (with B_sat = B_ground =
    B, the authors' / (B (B - 1))). pair_maps: per level (B_sat, B_ground, P, P) from
    correlate(all_pairs=True); ground i's own satellite is row first + i."""
    losses = []
    for maps in pair_maps:
        n_sat, n_ground = maps.shape[:2]
        d = (2 - 2 * maps.flatten(2).amax(dim=2)).T              # (B_ground, B_sat)
        own = torch.arange(n_ground, device=d.device) + first    # (B_ground,) column of each one's satellite
        diff = margin_scale * (d.gather(1, own[:, None]) - d)    # (B_ground, B_sat)
        off = own[:, None] != torch.arange(n_sat, device=d.device)[None, :]
        losses.append(F.softplus(diff[off]).sum() / (n_ground * (n_sat - 1)))
    return torch.stack(losses).mean()


def cell_to_input_pixel(peak: torch.Tensor, crop: int, stride: int) -> torch.Tensor:
    """(B, 2) peak (row, col) of a score map -> the camera's (row, col) in satellite INPUT pixels
    (pixel centres at integers): satellite cell x covers input pixels [x s, (x + 1) s)."""
    return (peak + crop / 2) * stride + (stride - 1) / 2
