"""The paper's figures as matplotlib PNGs (Figure objects rendered by Agg: no display, no pyplot).

    geodistill figures --config params.yaml --eval data/eval --runs data --out reports/figures

    write_figures(params, Path("data/eval"), Path("data"), Path("reports/figures"), "VIGOR",
                  index=Path("data/index.csv"))

- error_cdf.png: share of cross-area test samples within x metres (2-DoF), each method with and
  without GeoDistill, one curve per training seed (data/eval/<run>/seed<s>.csv, column error_m);
- fov_sweep.png: mean and median error against the kept FoV range (mean over the seeds, bars:
  their standard deviation), baseline as horizontal lines;
- training_curves.png: validation mean error per epoch of each baseline and its GeoDistill run
  (student and teacher), one line per seed, from <runs>/baselines/<run>/seed<s>/history.csv and
  <runs>/distill/<variant>/seed<s>/history.csv;
- orientation_error.png: histogram of the orientation network's yaw error true - predicted, wrapped
  to (-180, 180] (<runs>/orientation/<area>/test_predictions.csv);
- qualitative-<method>.png (with `index`): teacher and student heatmaps of the cross-area
  GeoDistill run (reports/qualitative.py).
With `plots`, the training curves also go there as one CSV per method (series, epoch, val_mean_m):
every baseline run and every distillation variant's student and teacher, per seed, at the epochs
after its baseline's, drawn overlaid by `dvc plots show` / `dvc plots diff` (template
.dvc/plots/curves.json). The qualitative examples use the first seed.
Rows come from params as for the tables (reports/runs.py); a missing input raises FileNotFoundError.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from geodistill.config import FovOcclusion, Params
from geodistill.geometry import wrap_degrees
from geodistill.io import atomic_file
from geodistill.reports.runs import (AREAS, ablation_groups, baseline_run, distilled_model, geodistill_variant, load_errors,
                                     load_history, require, run_methods, run_pairs)
from geodistill.training.checkpoint import seed_dir

DPI = 150


def round_up(value: float, step: float) -> float:
    return step * max(1, math.ceil(value / step))


def save(fig: Figure, path: Path) -> Path:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    return path


def error_cdf_figure(params: Params, eval_dir: Path, dataset: str) -> Figure:
    """Empirical CDF of the cross-area 2-DoF error, one curve per training seed; the x-axis ends
    at the largest 90th percentile of the curves, rounded up to 5 m (stated on the axis)."""
    seeds, curves = params.report.seeds, []
    for i, method in enumerate(m for m, a in run_pairs(params) if a == "cross"):
        base = load_errors(eval_dir, baseline_run(method, "cross"), seeds)
        curves.append((f"{method} baseline", base, f"C{i}", "--"))
        name = geodistill_variant(params, method, "cross")
        if name:
            model = distilled_model(params, name)
            curves.append((f"{method} + GeoDistill ({model})", load_errors(eval_dir, name, seeds, model), f"C{i}", "-"))
    limit = round_up(max(np.percentile(err, 90) for _, per_seed, _, _ in curves for err in per_seed.values()), 5)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    over = "" if len(seeds) == 1 else f", means of {len(seeds)} seeds"
    for label, per_seed, colour, style in curves:
        mean, median = (np.mean([fn(e) for e in per_seed.values()]) for fn in (np.mean, np.median))
        for k, err in enumerate(per_seed.values()):
            x = np.sort(err)
            ax.step(x, 100 * np.arange(1, len(x) + 1) / len(x), where="post", color=colour, linestyle=style,
                    alpha=1 if len(seeds) == 1 else 0.6,
                    label=None if k else f"{label} (mean {mean:.2f} m, median {median:.2f} m{over})")
    ax.set_xlim(0, limit)
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"2-DoF localization error (m); axis clipped at {limit:g} m")
    ax.set_ylabel("test samples with error ≤ x (%)")
    ax.set_title(f"Cross-area error CDF, known orientation{'' if len(seeds) == 1 else ', one curve per seed'}: "
                 f"{dataset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def fov_sweep_figure(params: Params, eval_dir: Path, dataset: str) -> Figure:
    """Per method and area with a FoV-range sweep: mean and median error at each range's midpoint,
    averaged over the seeds (error bars: their standard deviation, with two seeds or more)."""
    seeds = params.report.seeds
    groups = ablation_groups(params, "occlusion", lambda v: isinstance(v.occlusion, FovOcclusion))
    fig = Figure(figsize=(6 * max(1, len(groups)), 4.2), layout="tight")
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)
    if not groups:
        axes[0, 0].text(0.5, 0.5, "no FoV-range variants in params", ha="center", va="center")
        axes[0, 0].set_axis_off()
    for ax, (method, area, runs) in zip(axes[0], groups):
        ranges = sorted((v.occlusion.fov_deg, run) for run, v in runs.items())
        mid = [(lo + hi) / 2 for (lo, hi), _ in ranges]
        errors = [list(load_errors(eval_dir, run, seeds, distilled_model(params, run)).values()) for _, run in ranges]
        base = list(load_errors(eval_dir, baseline_run(method, area), seeds).values())
        for stat, fn, colour, marker, dx in (("mean", np.mean, "C0", "o", -1.5), ("median", np.median, "C1", "s", 1.5)):
            per_range = np.array([[fn(e) for e in per_seed] for per_seed in errors])      # (ranges, seeds)
            spread = per_range.std(axis=1, ddof=1) if len(seeds) > 1 else None
            x = np.add(mid, dx if spread is not None else 0)                # the two bars side by side
            ax.errorbar(x, per_range.mean(axis=1), yerr=spread, color=colour, marker=marker, capsize=3,
                        label=f"GeoDistill {params.report.distilled_model} {stat}")
            level = np.mean([fn(e) for e in base])
            ax.axhline(level, color=colour, linestyle="--", label=f"baseline {stat} ({level:.2f} m)")
        ax.set_xticks(mid, [f"{lo}–{hi}" for (lo, hi), _ in ranges])
        ax.set_xlabel("kept field of view drawn in [low, high) (degrees)")
        over = "" if len(seeds) == 1 else f", mean ± std of {len(seeds)} seeds"
        ax.set_ylabel(f"2-DoF localization error (m){over}")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{method}, {area}-area test: {dataset}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def training_curves_figure(params: Params, runs_dir: Path, dataset: str) -> Figure:
    """One panel per area and method: the baseline's validation mean error per epoch, then its
    GeoDistill run's student and teacher, whose epochs follow the baseline's (the student starts
    from the baseline's best epoch, marked); one set of lines per training seed."""
    methods, seeds = run_methods(params), params.report.seeds
    fig = Figure(figsize=(4.6 * len(methods), 3.6 * len(AREAS)), layout="tight")
    axes = fig.subplots(len(AREAS), len(methods), squeeze=False)
    for row, area in enumerate(AREAS):
        for col, method in enumerate(methods):
            ax = axes[row, col]
            run = baseline_run(method, area)
            if run not in params.runs:
                ax.set_axis_off()
                continue
            name, last = geodistill_variant(params, method, area), 1
            for k, seed in enumerate(seeds):
                label = (lambda text: None) if k else (lambda text: text)
                base = load_history(seed_dir(Path(runs_dir) / "baselines" / run, seed) / "history.csv", ("val_mean_m",))
                ax.plot(base.epoch, base.val_mean_m, "k-o", markersize=3, label=label("baseline"))
                best = base.loc[base.val_mean_m.idxmin()]
                ax.plot(best.epoch, best.val_mean_m, "k*", markersize=11, label=label("best baseline epoch"))
                last = max(last, base.epoch.max())
                if name:
                    hist = load_history(seed_dir(Path(runs_dir) / "distill" / name, seed) / "history.csv",
                                        ("val_student_mean_m", "val_teacher_mean_m"))
                    x = base.epoch.max() + hist.epoch
                    ax.plot([best.epoch, x.iloc[0]], [best.val_mean_m, hist.val_student_mean_m.iloc[0]], "C0:")
                    ax.plot(x, hist.val_student_mean_m, "C0-o", markersize=3, label=label("GeoDistill student"))
                    ax.plot(x, hist.val_teacher_mean_m, "C1--s", markersize=3, label=label("GeoDistill teacher"))
                    last = max(last, x.max())
            ax.set_title(run if len(seeds) == 1 else f"{run} ({len(seeds)} seeds)", fontsize=10)
            ax.set_xlabel("epoch (GeoDistill's after the baseline's)" if name else "epoch")
            ax.set_xlim(0.5, last + 0.5)                      # whole epochs, even for a one-epoch run
            ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
            ax.set_ylabel("validation mean error (m)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"Validation 2-DoF mean error during training: {dataset}")
    return fig


def orientation_figure(params: Params, runs_dir: Path, dataset: str) -> Figure:
    """Histogram (1-degree bins) of true - predicted yaw per area; the axis covers the 99th
    percentile of |error| rounded up to 5 degrees, the samples beyond it are counted in the title."""
    areas = params.orientation.areas
    fig = Figure(figsize=(5.5 * len(areas), 3.8), layout="tight")
    axes = fig.subplots(1, len(areas), squeeze=False)
    for ax, area in zip(axes[0], areas):
        pred = pd.read_csv(require(Path(runs_dir) / "orientation" / area / "test_predictions.csv",
                                   f"{area}-area orientation predictions"))
        err = wrap_degrees(pred.true_yaw_deg.to_numpy(float) - pred.pred_yaw_deg.to_numpy(float))
        limit = round_up(np.percentile(np.abs(err), 99), 5)
        ax.hist(err, bins=np.arange(-limit, limit + 1, 1.0), color="C2", edgecolor="white", linewidth=0.3)
        beyond = int((np.abs(err) > limit).sum())
        ax.set_xlim(-limit, limit)
        ax.set_xlabel("yaw error, true − predicted (degrees, wrapped to (−180, 180])")
        ax.set_ylabel("test panoramas per 1° bin")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))             # counts
        ax.set_title(f"{area}-area: mean |error| {np.abs(err).mean():.2f}°, median {np.median(np.abs(err)):.2f}°\n"
                     f"n = {len(err)}, {beyond} beyond ±{limit:g}°; {dataset}", fontsize=9)
        ax.grid(alpha=0.3)
    return fig


def training_curves(params: Params, runs_dir: Path) -> dict[str, pd.DataFrame]:
    """Method -> its validation curves in one long table (series, epoch, val_mean_m): each
    baseline run per training seed (`<run> seed<s>`), then each distillation variant's student and
    teacher (`<variant> <model> seed<s>`), numbered after its baseline's epochs."""
    runs_dir = Path(runs_dir)
    rows: dict[str, list[pd.DataFrame]] = {}
    last_epoch = {}

    def add(method: str, series: str, epoch, val_mean_m) -> None:
        rows.setdefault(method, []).append(pd.DataFrame({"series": series, "epoch": epoch, "val_mean_m": val_mean_m}))

    for seed in params.report.seeds:
        for run, r in params.runs.items():
            base = load_history(seed_dir(runs_dir / "baselines" / run, seed) / "history.csv", ("val_mean_m",))
            add(r.method, f"{run} seed{seed}", base.epoch.to_numpy(), base.val_mean_m.to_numpy())
            last_epoch[run] = int(base.epoch.max())
        for name, v in params.distill.variants.items():
            hist = load_history(seed_dir(runs_dir / "distill" / name, seed) / "history.csv",
                                ("val_student_mean_m", "val_teacher_mean_m"))
            for model in ("student", "teacher"):
                add(v.method, f"{name} {model} seed{seed}",
                    last_epoch.get(baseline_run(v.method, v.area), 0) + hist.epoch.to_numpy(),
                    hist[f"val_{model}_mean_m"].to_numpy())
    return {method: pd.concat(tables, ignore_index=True) for method, tables in rows.items()}


def write_curves(curves: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """One CSV per method into out_dir (replacing what was there), written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.csv"):
        if stale.stem not in curves:
            stale.unlink()
    written = []
    for name, table in curves.items():
        with atomic_file(out_dir / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
        written.append(out_dir / f"{name}.csv")
    return written


def write_figures(params: Params, eval_dir: Path, runs_dir: Path, out_dir: Path, dataset: str,
                  index: Path | None = None, plots: Path | None = None) -> list[Path]:
    """Every figure into out_dir (PNG, written atomically); the qualitative ones only with `index`;
    the training curves as CSVs into `plots` when given."""
    out_dir = Path(out_dir)
    if plots is not None:
        write_curves(training_curves(params, runs_dir), plots)
    written = [save(error_cdf_figure(params, eval_dir, dataset), out_dir / "error_cdf.png"),
               save(fov_sweep_figure(params, eval_dir, dataset), out_dir / "fov_sweep.png"),
               save(training_curves_figure(params, runs_dir, dataset), out_dir / "training_curves.png"),
               save(orientation_figure(params, runs_dir, dataset), out_dir / "orientation_error.png")]
    if index is not None:
        from geodistill.reports.qualitative import qualitative_figure
        samples = pd.read_csv(require(Path(index), "sample table"))
        for method in (m for m, a in run_pairs(params) if a == "cross"):
            name = geodistill_variant(params, method, "cross")
            if name:
                seed = params.report.seeds[0]
                fig = qualitative_figure(seed_dir(Path(runs_dir) / "distill" / name, seed) / "last.pt", samples,
                                         "cross", params.distill.variants[name].occlusion, seed, dataset)
                written.append(save(fig, out_dir / f"qualitative-{method}.png"))
    return written
