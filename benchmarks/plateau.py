"""Is a baseline at a plateau? Its `continue` control on validation, at N x the baseline's budget.

    .venv/bin/python benchmarks/plateau.py [--config params.yaml] [--variant continue-g2s_vgg-cross]
        [--factors 1 2 4] [--index data/index.csv] [--work DIR] [--out reports/plateau]

The `continue` control (params distill.variants) fine-tunes a trained baseline with its own loss,
nothing occluded, for as many samples as the baseline saw: if that still lowers the error, the
baseline was not converged, and "extra training" confounds every distillation variant
(reports/claims.py checks it on the test split against report.plateau_tolerance_pct). This script
measures, on validation only, what budget the baseline needs for the control to stop helping.

For each factor N: the variant's baseline is trained with N x its `epochs` (every other setting
as the params; the control's epochs follow, distill.defaults.epochs_factor x the baseline's),
then the control from it, once per seed of report.seeds. Each model is scored on the validation
panoramas that picked no checkpoint (train.max_val_samples draws the seeded subset that selects
best.pt, teacher.pt and student.pt; the rest of the split is an unbiased estimate). One row per
(N, seed) and one per N over all seeds: the baseline's mean error, the control's teacher's and
student's, their change (%) with the claims table's paired bootstrap interval (reports/claims.py,
report.* settings), and the plateau verdict of the model the claims use (report.distilled_model):
holds when its whole interval lies within +-report.plateau_tolerance_pct. Writes <out>.csv and
<out>.md. Needs the sample table (`dvc repro render-bev`); g2s_vgg takes ~3 x N min per factor
on 2 cores. With --work the runs are kept there, and a rerun resumes or reuses them
(training/checkpoint.py).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from geodistill.config import Params, parse_params
from geodistill.data.index import seeded_subset
from geodistill.distill.teacher_student import train_distill_seeds
from geodistill.io import atomic_file
from geodistill.reports.claims import paired_change, verdict
from geodistill.reports.tables import markdown
from geodistill.training.baseline import load_checkpoint, load_splits, predict, train_baseline_seeds
from geodistill.training.checkpoint import DISTILLED_MODELS, seed_dir
from geodistill.training.samples import LocalizationSamples

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))                                   # stages/ from a checkout
from calibration import override  # noqa: E402  (benchmarks/, this script's folder)
from stages.common import start_process  # noqa: E402


def scaled(raw: dict, method: str, factor: float, source: str) -> Params:
    """The params with baselines.<method>.epochs multiplied by `factor` (rounded, at least 1)."""
    epochs = max(1, round(raw["baselines"][method]["epochs"] * factor))
    return parse_params(override(raw, {f"baselines.{method}.epochs": epochs}),
                        f"{source} with baselines.{method}.epochs x {factor:g}")


def unselected_validation(index: Path, params: Params, method: str, area: str) -> LocalizationSamples:
    """The area's validation samples outside the seeded subset that picks checkpoints."""
    p = params.method_params(method, area)
    every = load_splits(index, area, p, f"{method}-{area}")["val"]
    chosen = seeded_subset(every.rows, params.train.max_val_samples, params.index.seed)
    rest = every.rows[~every.rows.pano_path.isin(chosen.pano_path)]
    if len(rest) == 0:
        raise SystemExit(f"train.max_val_samples {params.train.max_val_samples} uses the whole {area}-area "
                         "validation split: nothing is left to score the runs without selection bias")
    return LocalizationSamples(rest, p.pano_size, p.sat_size, desc=f"{method}-{area} unselected val")


def validation_errors(index: Path, params: Params, variant: str, work: Path) -> dict[str, np.ndarray]:
    """Train the variant's baseline and the control from it (or reuse them, in `work`); each
    model's (seeds, N) errors on the validation panoramas that picked no checkpoint."""
    v = params.distill.variants[variant]
    run = f"{v.method}-{v.area}"
    train_baseline_seeds(index, work / "baselines" / run, v.method, v.area, params)
    train_distill_seeds(index, work / "baselines", work / variant, variant, params)
    val = unselected_validation(index, params, v.method, v.area)
    seeds, batch = params.report.seeds, params.train.predict_batch_size
    files = {"baseline": [seed_dir(work / "baselines" / run, s) / "best.pt" for s in seeds],
             **{m: [seed_dir(work / variant, s) / f"{m}.pt" for s in seeds] for m in DISTILLED_MODELS}}
    score = lambda path: predict(load_checkpoint(path, v.method)[0], val, batch).error_m.to_numpy()   # (N,)
    return {name: np.stack([score(path) for path in paths]) for name, paths in files.items()}


def factor_rows(errors: dict[str, np.ndarray], factor: float, params: Params, method: str) -> list[dict]:
    """A row per seed and one over all seeds: each model's mean error and its change against the
    baseline (%) with the claims table's paired bootstrap interval (over seeds and panoramas), and
    the plateau verdict of report.distilled_model's change (within +-report.plateau_tolerance_pct)."""
    r, rng = params.report, np.random.default_rng(params.report.bootstrap_seed)
    groups = [(str(s), slice(i, i + 1)) for i, s in enumerate(r.seeds)] + [("all", slice(None))]
    rows = []
    for label, pick in groups:
        base = errors["baseline"][pick]
        row = {"budget": f"{factor:g}x", "baseline_epochs": params.baselines[method].epochs, "seeds": label,
               "val_samples": base.shape[1], "baseline_mean_m": base.mean()}
        for model in DISTILLED_MODELS:
            change, low, high, _ = paired_change(errors[model][pick], base, r.bootstrap_samples, r.confidence, rng)
            row |= {f"{model}_mean_m": errors[model][pick].mean(), f"{model}_change_pct": change,
                    f"{model}_ci_low_change_pct": low, f"{model}_ci_high_change_pct": high}
        low, high = row[f"{r.distilled_model}_ci_low_change_pct"], row[f"{r.distilled_model}_ci_high_change_pct"]
        rows.append(row | {"plateau": verdict(low, high, r.plateau_tolerance_pct)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--variant", default="continue-g2s_vgg-cross", help="a `continue` control of distill.variants")
    ap.add_argument("--factors", type=float, nargs="+", default=[1, 2, 4], help="multiples of the baseline's epochs")
    ap.add_argument("--index", type=Path, default=REPO / "data" / "index.csv")
    ap.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "plateau")
    args = ap.parse_args()
    start_process()                                    # as a stage: its log lines and memory policy
    raw = yaml.safe_load(args.config.read_text())
    base = parse_params(raw, str(args.config))
    if args.variant not in base.distill.variants:
        raise SystemExit(f"{args.config}: no distill.variants.{args.variant}")
    method = base.distill.variants[args.variant].method
    budgets = {f: scaled(raw, method, f, str(args.config)) for f in args.factors}   # all valid before any work
    if not args.index.is_file():
        raise SystemExit(f"{args.index}: no sample table (run `dvc repro render-bev` first)")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for factor, params in budgets.items():
            work = (args.work or Path(scratch)) / f"x{factor:g}"
            errors = validation_errors(args.index, params, args.variant, work)
            rows += factor_rows(errors, factor, params, method)
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    with atomic_file(args.out.with_suffix(".csv")) as tmp:
        table.to_csv(tmp, index=False)
    r = base.report
    with atomic_file(args.out.with_suffix(".md")) as tmp:
        tmp.write_text(f"Plateau check of {args.variant}'s baseline on validation ({args.config.name}; the "
                       f"{int(table.val_samples.iloc[0])} validation panoramas that picked no checkpoint; "
                       f"{r.confidence:.0%} paired bootstrap intervals; plateau: the {r.distilled_model}'s "
                       f"whole interval within +-{r.plateau_tolerance_pct:g} %)\n\n{markdown(table)}\n")
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
