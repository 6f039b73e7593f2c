"""Qualitative examples: where the teacher (full panorama) and the student (occluded panorama) of a
GeoDistill run put the camera, on a few test samples.

    geodistill figures --config params.yaml --eval data/eval --runs data --out reports/figures --index data/index.csv

    fig = qualitative_figure(Path("data/distill/geodistill-g2s_vgg-cross/seed2023/last.pt"), index, "cross",
                             params.distill.variants["geodistill-g2s_vgg-cross"].occlusion, seed=2023,
                             dataset="VIGOR")

A distill run's last.pt holds both models (its best.pt only the evaluated one): the student is
loaded with training.baseline.load_checkpoint, the teacher is a copy given the checkpoint's
`teacher` weights. The samples and the occlusion are drawn from `seed` (distill.occlusion.occlude,
as in training). Each heatmap is the model's Prediction.heatmap (scores over candidate
positions), min-max normalised per panel and drawn over the satellite input where it lies
(Prediction.extent); 2-DoF, the panoramas as indexed (north at the centre column).
"""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from geodistill.config import Occlusion
from geodistill.distill.occlusion import occlude
from geodistill.reports.runs import ReportError
from geodistill.training.baseline import load_checkpoint
from geodistill.training.checkpoint import CheckpointError
from geodistill.training.samples import LocalizationSamples

EXAMPLES = 3


def load_teacher_student(checkpoint: Path) -> tuple[torch.nn.Module, torch.nn.Module, dict]:
    """Teacher, student (both in eval mode) and the metadata of a distill run's last.pt."""
    student, state = load_checkpoint(checkpoint)
    if "teacher" not in state:
        raise CheckpointError(f"{checkpoint} holds no teacher weights (a distill run's last.pt does)")
    teacher = copy.deepcopy(student)
    teacher.load_state_dict(state["teacher"])
    return teacher.eval(), student.eval(), state


def normalised(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.min()) / max(float(np.ptp(scores)), 1e-8)


def qualitative_figure(checkpoint: Path, index: pd.DataFrame, area: str, occlusion: Occlusion, seed: int,
                       dataset: str, examples: int = EXAMPLES) -> Figure:
    """One row per test sample: full panorama, occluded panorama, satellite with the true
    position, the teacher's heatmap and the student's, each with its peak and error in metres."""
    teacher, student, state = load_teacher_student(checkpoint)
    p = state["method_params"]
    test = index[(index.area == area) & (index.split == "test")].reset_index(drop=True)
    if test.empty:
        raise ReportError(f"the sample table has no {area}-area test samples for the qualitative figure")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(test), size=min(examples, len(test)), replace=False))
    data = LocalizationSamples(test.iloc[pick], p["pano_size"], p["sat_size"], desc="qualitative examples")
    idx = np.arange(len(data))
    pano, sat, mpp = data.batch(idx)                                   # (B, H, W, 3), (B, S, S, 3), (B,)
    occluded, columns = occlude(occlusion, pano, rng, teacher.ground_features)
    camera = data.camera(idx)                                          # (B, 5) pinhole images, else None
    with torch.no_grad():
        preds = {"teacher": teacher.predict(pano, sat, mpp, camera=camera),
                 "student": student.predict(occluded, sat, mpp, columns, camera)}
    gt = data.gt_px(idx).numpy()                                       # (B, 2) row, col input px
    S = sat.shape[1]

    fig = Figure(figsize=(15, 2.5 * len(idx) + 0.8), layout="constrained")
    axes = fig.subplots(len(idx), 5, squeeze=False, gridspec_kw={"width_ratios": [2, 2, 1, 1, 1]})
    for i in idx:
        kept = "" if columns is None else f", {360 * float(columns[i].mean()):.0f}° kept"
        panels = [(pano[i], "full panorama (teacher input)"),
                  (occluded[i], f"{occlusion.kind}-occluded panorama (student input{kept})")]
        for ax, (image, title) in zip(axes[i, :2], panels):
            ax.imshow(image.numpy())
            ax.set_title(title, fontsize=9)
        axes[i, 2].imshow(sat[i].numpy())
        axes[i, 2].set_title(f"satellite ({S * float(mpp[i]):.0f} m wide)", fontsize=9)
        for ax, (who, pred) in zip(axes[i, 3:], preds.items()):
            top, left, bottom, right = pred.extent
            ax.imshow(sat[i].numpy())
            ax.imshow(normalised(pred.heatmap[i].numpy()), extent=(left, right, bottom, top), cmap="jet",
                      alpha=0.5, vmin=0, vmax=1)
            row, col = pred.pixel[i].tolist()
            ax.plot(col, row, "X", color="white", markeredgecolor="black", markersize=10, label="predicted (peak)")
            error = float(np.hypot(row - gt[i, 0], col - gt[i, 1]) * mpp[i])
            ax.set_title(f"{who} heatmap: error {error:.1f} m", fontsize=9)
            ax.set_xlim(-0.5, S - 0.5)
            ax.set_ylim(S - 0.5, -0.5)
        for ax in axes[i, 2:]:
            ax.plot(gt[i, 1], gt[i, 0], "*", color="lime", markeredgecolor="black", markersize=11,
                    label="true position")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.legend(*axes[0, 3].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=9)
    fig.suptitle(f"{state.get('variant', checkpoint)}: {state['method']}, {area}-area test, {dataset}; teacher and "
                 f"student after epoch {int(state['epoch']) + 1}; heatmaps: scores normalised to [0, 1]")
    return fig
