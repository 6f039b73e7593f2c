"""The paper's claims tested on this replication's per-sample errors: a paired bootstrap interval
for each comparison and a verdict that follows from it.

    geodistill tables --config params.yaml --results reports/results --eval data/eval --out reports/tables

    table = claims_table(params, Path("data/eval"))      # one row per comparison

Each row compares a run with a reference run of the same method and area: the relative change of
the 2-DoF mean error, 100 (mean run - mean reference) / mean reference, over the training seeds
(report.seeds) and the test samples both were scored on (the same seeded subset; checked). Its
interval is a paired bootstrap (report.bootstrap_samples draws, report.confidence): each draw
resamples the seeds (the same for both runs: a distillation seed starts from its baseline's) and
the test samples (the same for both). With one seed the interval holds test-sample noise only.
Verdicts: a claim that the run is better holds when the whole interval is below 0, does not
hold when it is above 0, else is inconclusive; the claim that FoV augmentation does not help
holds when the interval is above 0 (augmentation significantly worse), does not hold when it is
below 0 (it helps), else is inconclusive. The plateau check (a control, not a paper claim) asks
whether the `continue` control, the baseline fine-tuned for GeoDistill's budget with nothing
occluded, stays within report.plateau_tolerance_pct of its baseline: it holds when the whole
interval lies inside the band, does not hold when it lies wholly outside it, else is
inconclusive. Rows come from params as the other tables (runs.py).
A distillation run stands for its report.distilled_model (the EMA teacher by default, as the
paper evaluates it).

Power: `half_width_pct` is half the interval's width, and `detectable_change_pct` the smallest
change the comparison would find with probability report.power: (z of the confidence + z of the
power) x the bootstrap's standard error. An effect smaller than it can come out inconclusive
even when real.
"""
from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd

from geodistill.config import Params
from geodistill.reports.runs import (ReportError, ablation_groups, ablations, baseline_run, distilled_model,
                                     geodistill_or_reference, geodistill_variant, load_predictions, run_pairs)

MAIN_CLAIM = "GeoDistill beats its baseline"      # the paper's headline claim, one row per method and area
from geodistill.reports.tables import is_fov, nothing_occluded

COLUMNS = ["claim", "method", "area", "run", "reference", "mean_m", "reference_mean_m", "mean_change_pct",
           "ci_low_change_pct", "ci_high_change_pct", "half_width_pct", "detectable_change_pct", "samples", "seeds",
           "verdict"]


def load_seed_errors(eval_dir: Path, run: str, seeds: list[int], model: str | None = None) -> tuple[np.ndarray, pd.Series]:
    """(seeds, N) 2-DoF errors of one run (of its `model` for a distillation run) and the test
    panoramas they belong to (every seed's CSV must list the same panoramas in the same order)."""
    tables = load_predictions(eval_dir, run, seeds, ("pano_path", "error_m"), model)
    panos = tables[seeds[0]].pano_path
    for seed, table in tables.items():
        if not table.pano_path.equals(panos):
            raise ReportError(f"{Path(eval_dir) / run / f'seed{seed}.csv'}: not the test samples of seed {seeds[0]}'s file")
    return np.stack([t.error_m.to_numpy(float) for t in tables.values()]), panos


def paired_change(run: np.ndarray, reference: np.ndarray, draws: int, confidence: float,
                  rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Relative change (%) of the mean error of `run` against `reference`, both (seeds, N) paired
    by seed and sample, its percentile bootstrap interval at `confidence`, and the bootstrap's
    standard error of the change."""
    def change(a, b):
        return 100 * (a.mean(axis=(-2, -1)) - b.mean(axis=(-2, -1))) / b.mean(axis=(-2, -1))
    n_seeds, n = run.shape
    seeds = rng.integers(0, n_seeds, (draws, n_seeds))                 # (draws, seeds)
    samples = rng.integers(0, n, (draws, n))                           # (draws, N)
    pick = lambda e: e[seeds[:, :, None], samples[:, None, :]]          # (draws, seeds, N)
    boot = change(pick(run), pick(reference))                          # (draws,)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(boot, [tail, 100 - tail])
    return float(change(run, reference)), float(low), float(high), float(boot.std(ddof=1))


def detectable_change(standard_error: float, confidence: float, power: float) -> float:
    """The smallest true change (%) a two-sided test at `confidence` finds with probability `power`,
    for an estimate with this standard error (normal approximation)."""
    z = NormalDist().inv_cdf
    return (z(0.5 + confidence / 2) + z(power)) * standard_error


def verdict(low: float, high: float, expect_better: bool | float) -> str:
    """The verdict of an interval [low, high] (%) on a claim that the run is better (True), not
    better (False), or within +-tolerance of its reference (a float: the tolerance in %)."""
    if expect_better is True:
        return "holds" if high < 0 else "does not hold" if low > 0 else "inconclusive"
    if expect_better is False:
        return "holds" if low > 0 else "does not hold" if high < 0 else "inconclusive"
    band = float(expect_better)
    return "holds" if -band < low and high < band else "does not hold" if high < -band or low > band else "inconclusive"


def comparisons(params: Params) -> list[tuple[str, str, str, str, str, bool | float]]:
    """(claim, method, area, run, reference, expectation) for every comparison params configures;
    the expectation as `verdict` takes it."""
    rows = []
    for method, area in run_pairs(params):
        name, base = geodistill_variant(params, method, area), baseline_run(method, area)
        if name:
            rows.append((MAIN_CLAIM, method, area, name, base, True))
    for knob, best, keep in (("occlusion", "FoV occlusion", lambda v: not is_fov(v)),
                             ("target", "the sharpened target", lambda v: True)):
        for method, area, runs in ablation_groups(params, knob, keep):
            name = geodistill_variant(params, method, area)
            rows += [(f"{best} beats {getattr(v, knob).kind}", method, area, name, run, True)
                     for run, v in runs.items() if name and run != name]
    for method, area in run_pairs(params):
        default = geodistill_or_reference(params, method, area).occlusion
        name, base = geodistill_variant(params, method, area), baseline_run(method, area)
        for run, v in ablations(params, method, area, {"mode", "occlusion"}).items():
            if v.mode != "augment":
                continue
            if v.occlusion == default:
                rows.append(("FoV as augmentation does not help", method, area, run, base, False))
            if nothing_occluded(v):
                band = params.report.plateau_tolerance_pct
                rows.append((f"the baseline is at a plateau: its extra epochs unoccluded change it by less than "
                             f"{band:g}% (a control)", method, area, run, base, band))
            if name:
                claim = ("GeoDistill beats the same extra epochs unoccluded (a control, not a paper claim)"
                         if nothing_occluded(v) else "distillation beats FoV augmentation")
                rows.append((claim, method, area, name, run, True))
    for method, area, runs in ablation_groups(params, "occlusion", is_fov):
        name = geodistill_variant(params, method, area)
        if name:
            lo, hi = params.distill.variants[name].occlusion.fov_deg
            rows += [(f"FoV {lo}-{hi} beats {v.occlusion.fov_deg[0]}-{v.occlusion.fov_deg[1]} degrees", method, area,
                      name, run, True) for run, v in sorted(runs.items(), key=lambda item: item[1].occlusion.fov_deg)
                     if run != name]
    return rows


def claims_table(params: Params, eval_dir: Path) -> pd.DataFrame:
    """One row per comparison (COLUMNS), in the order of `comparisons`."""
    r, rows = params.report, []
    for claim, method, area, run, reference, expect_better in comparisons(params):
        a, panos = load_seed_errors(eval_dir, run, r.seeds, distilled_model(params, run))
        b, ref_panos = load_seed_errors(eval_dir, reference, r.seeds, distilled_model(params, reference))
        if not panos.equals(ref_panos):
            raise ReportError(f"{eval_dir}: runs {run!r} and {reference!r} were not scored on the same test samples "
                              f"(evaluate params changed between them?)")
        change, low, high, se = paired_change(a, b, r.bootstrap_samples, r.confidence,
                                              np.random.default_rng(r.bootstrap_seed))
        rows.append([claim, method, area, run, reference, a.mean(), b.mean(), change, low, high, (high - low) / 2,
                     detectable_change(se, r.confidence, r.power), a.shape[1], a.shape[0],
                     verdict(low, high, expect_better)])
    return pd.DataFrame(rows, columns=COLUMNS)
