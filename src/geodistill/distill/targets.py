"""What the student learns from the teacher (GeoDistill, docs/paper-reference.md#geodistill).

    loss = distill_loss(student.score_maps(occluded, sat, mpp, columns),
                        teacher.score_maps(pano, sat, mpp), p.target)      # p: a distill variant

Each score map (B, ...) becomes a distribution over all its non-batch cells (positions, and
orientations for CCVPE). The teacher's distribution per target kind:
    sharpened   softmax(score / tau)                  (tau = 0.06: the paper's "dark knowledge")
    raw         softmax(score)                        (tau = 1)
    unimodal    a Gaussian of sigma_cells at the teacher's argmax (the last two dims are the grid;
                for a CCVPE volume, all its mass on the argmax's orientation)
The student's is softmax(score / tau) (tau = 1 for raw). The loss is the cross-entropy
-sum P_t log P_s, averaged over the batch and then the levels; the teacher gets no gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from geodistill.config import RawTarget, SharpenedTarget, Target, UnimodalTarget


def temperature(target: Target) -> float:
    return 1.0 if isinstance(target, RawTarget) else target.tau


def teacher_distribution(scores: torch.Tensor, target: Target) -> torch.Tensor:
    """(B, ...) teacher scores -> (B, N) target probabilities over the flattened cells."""
    scores = scores.detach()
    if isinstance(target, (SharpenedTarget, RawTarget)):
        return F.softmax(scores.flatten(1) / temperature(target), dim=1)
    if isinstance(target, UnimodalTarget):
        return unimodal(scores, target.sigma_cells).flatten(1)
    raise ValueError(f"unknown target {target!r}")


def unimodal(scores: torch.Tensor, sigma_cells: float) -> torch.Tensor:
    """(B, ..., h, w) -> same shape: a Gaussian (sums to 1) around the argmax cell of the grid, in
    the argmax's leading (e.g. orientation) slice, zero elsewhere."""
    B, (h, w) = scores.shape[0], scores.shape[-2:]
    flat = scores.flatten(1).argmax(dim=1)                               # (B,)
    plane, cell = flat // (h * w), flat % (h * w)
    rows = torch.arange(h, dtype=scores.dtype, device=scores.device)
    cols = torch.arange(w, dtype=scores.dtype, device=scores.device)
    dr = (rows[None, :] - (cell // w)[:, None]).square()                # (B, h)
    dc = (cols[None, :] - (cell % w)[:, None]).square()                 # (B, w)
    g = torch.exp(-(dr[:, :, None] + dc[:, None, :]) / (2 * sigma_cells ** 2))   # (B, h, w)
    out = scores.new_zeros(B, scores[0].numel() // (h * w), h, w)
    out[torch.arange(B, device=scores.device), plane] = g / g.sum((1, 2), keepdim=True)
    return out.view_as(scores)


def distill_loss(student: list[torch.Tensor], teacher: list[torch.Tensor], target: Target) -> torch.Tensor:
    """Mean over levels of the batch-mean cross-entropy -sum P_t log P_s."""
    if len(student) != len(teacher):
        raise ValueError(f"student has {len(student)} score levels, teacher {len(teacher)}")
    tau = temperature(target)
    losses = []
    for s, t in zip(student, teacher):
        p_t = teacher_distribution(t, target)                              # (B, N)
        log_p_s = F.log_softmax(s.flatten(1) / tau, dim=1)                 # (B, N)
        losses.append(-(p_t * log_p_s).sum(dim=1).mean())
    return torch.stack(losses).mean()
