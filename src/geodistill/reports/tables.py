"""The paper's tables from the metrics files, with the published VIGOR numbers side by side.

    geodistill tables --config params.yaml --results reports/results --out reports/tables

    tables = build_tables(params, Path("reports/results"), load_published())
    write_tables(tables, Path("reports/tables"), "synthetic world (params.yaml)")

Every number is the 2-DoF error (known orientation) in metres on the area's test split, read
from the `2dof` block the evaluate stage writes: the mean over the training seeds
(report.seeds), each `X_std` column the seeds' standard deviation of X (NaN with one seed;
Markdown and LaTeX print `X ± std` in one cell); `paper_*` columns hold the published numbers
(published.yaml, docs/paper-reference.md#published-numbers), NaN where the paper gives none; `*_change_pct` is
100 (new - baseline) / baseline. Rows come from params (reports/runs.py). A table whose variants
params does not configure is written empty, with its columns.

A distillation run has two models, the EMA teacher (the paper evaluates it) and the student (the
authors' code evaluates it): the main and supervised tables give each its own row, the other
tables give the model the claims use (report.distilled_model, default teacher) in the usual
columns and the other model in `<other>_*` columns beside them (empty for baseline rows).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from geodistill.config import VIGOR_MPP, CCVPEParams, FovOcclusion, Params
from geodistill.io import atomic_file
from geodistill.reports.runs import (ReportError, ablation_groups, ablations, baseline_run, describe,
                                     geodistill_or_reference, geodistill_variant, load_metrics, run_methods, run_pairs)

PUBLISHED = Path(__file__).with_name("published.yaml")
NAN = float("nan")

STATS = ["mean_m", "mean_m_std", "median_m", "median_m_std"]
OTHER = {"teacher": "student", "student": "teacher"}    # a distillation run's model the claims do not use


def columns(name: str, other: str = "student") -> list[str]:
    """Table `name`'s columns. A distillation run's row gives the model the claims use
    (report.distilled_model) in STATS and the `other` model in <other>_STATS (a baseline's row: none)."""
    also = [f"{other}_{c}" for c in STATS]
    return {
        "main": ["method", "area", "model", "run", *STATS, "mean_change_pct", "median_change_pct",
                 "paper_mean_m", "paper_median_m", "paper_mean_change_pct", "paper_median_change_pct"],
        "supervised": ["supervision", "method", "model", "cross_run", "same_run",
                       *[f"{a}_{s}" for a in ("cross", "same") for s in STATS], "paper_cross_mean_m",
                       "paper_cross_median_m", "paper_same_mean_m", "paper_same_median_m"],
        "occlusion": ["method", "area", "occlusion", "settings", "run", *STATS, *also, "paper_mean_m", "paper_median_m"],
        "uncertainty": ["method", "area", "target", "settings", "run", *STATS, *also, "paper_mean_m", "paper_median_m"],
        "augment_vs_distill": ["method", "area", "training", "occlusion", "run", *STATS, *also, "paper_mean_m",
                               "paper_median_m"],
        "fov_sweep": ["method", "area", "fov_low_deg", "fov_high_deg", "run", *STATS, *also, "mean_change_pct",
                      "median_change_pct"],
        "orientation": ["area", "model", "run", "n", "mean_deg", "median_deg", "within_1_deg_pct",
                        "within_3_deg_pct", "within_5_deg_pct"],
    }[name]


TABLES = ("main", "supervised", "occlusion", "uncertainty", "augment_vs_distill", "fov_sweep", "orientation")

TITLES = {
    "main": "Each base method with and without GeoDistill: 2-DoF localization error (m, known orientation) "
            "on the test split; change columns: GeoDistill relative to its baseline (%)",
    "supervised": "Fully supervised (CCVPE, HC-Net) against weakly supervised methods, with and without "
                  "GeoDistill: 2-DoF error (m); a method the replication does not run has no own numbers",
    "occlusion": "Occlusion of the student's panorama (fov = GeoDistill) per backbone: 2-DoF error (m)",
    "uncertainty": "Teacher target (sharpened = GeoDistill) and the baseline without distillation: 2-DoF error (m)",
    "augment_vs_distill": "FoV occlusion as plain augmentation of the baseline's own loss against GeoDistill: "
                          "2-DoF error (m)",
    "fov_sweep": "Range of the kept field of view [low, high) degrees drawn per sample: 2-DoF error (m); change "
                 "columns relative to the baseline (%). The paper gives no per-range numbers, only that 180-240 "
                 "degrees is best",
    "orientation": "Yaw error (degrees, with wrap-around) on the test split: the orientation network, and "
                   "CCVPE's own yaw where its metrics hold one (3dof_own). The paper gives no such numbers",
    "claims": "The paper's claims on this replication: the 2-DoF mean error of run against reference (m), its "
              "relative change (%) with a paired bootstrap interval over the training seeds and test samples "
              "(report.confidence), and the verdict that interval gives: a claim that run is better holds when "
              "the whole interval is below 0, does not hold when above, else is inconclusive; 'augmentation "
              "does not help' holds when the interval is above 0; the plateau check holds when the whole "
              "interval lies within +-report.plateau_tolerance_pct. half_width_pct: half the interval; "
              "detectable_change_pct: the smallest change the comparison finds with probability report.power. "
              "With one seed the interval holds test-sample noise only, not training noise (reports/claims.py)",
}


def load_published(path: Path = PUBLISHED) -> dict:
    return yaml.safe_load(Path(path).read_text())


def describe_dataset(params: Params, config: Path) -> str:
    """'VIGOR' when the index protocols name only VIGOR's cities, else the synthetic world."""
    cities = set(params.index.same_area_cities) | set(params.index.cross_area_train) | set(params.index.cross_area_test)
    return "VIGOR" if cities <= set(VIGOR_MPP) else f"synthetic world ({Path(config).name})"


def scoring_note(params: Params) -> str:
    """The caption's note on the training seeds, on the test subset every run was scored on
    (params `report.seeds`, `evaluate`) and on which model of a distillation run a row gives."""
    n, seeds = params.evaluate.max_samples, params.report.seeds
    note = (f"; one training seed ({seeds[0]})" if len(seeds) == 1 else
            f"; mean ± standard deviation over {len(seeds)} training seeds ({', '.join(map(str, seeds))})")
    note += "" if n == 0 else f"; each area scored on the same seeded {n}-panorama subset of its test split"
    model, other = distilled_models(params)
    return note + (f"; a distillation run's numbers are its EMA {model}'s unless named {other}" if model == "teacher"
                   else f"; a distillation run's numbers are its {model}'s unless named {other}")


def change_pct(new: float, old: float) -> float:
    return 100 * (new - old) / old if math.isfinite(new) and math.isfinite(old) and old else NAN


def published_number(published: dict, keys: tuple | None, stat: str) -> float:
    """published[keys...][stat], NaN where any level is absent (or keys is None)."""
    if keys is None:
        return NAN
    node = published
    for key in (*keys, stat):
        if not isinstance(node, dict) or key not in node:
            return NAN
        node = node[key]
    return float(node)


def paper_pair(published: dict, keys: tuple | None) -> list[float]:
    return [published_number(published, keys, s) for s in ("mean_m", "median_m")]


def two_dof(metrics_dir: Path, run: str, method: str, area: str, model: str | None = None) -> dict[str, float]:
    """The run's 2-DoF mean and median over its seeds and their standard deviations (STATS); of
    its `model` (teacher or student) for a distillation run."""
    metrics = load_metrics(metrics_dir, run, method, area)
    if model is not None:
        if model not in metrics:
            raise ReportError(f"{Path(metrics_dir) / f'{run}.json'}: no {model!r} block (is it a distill run's "
                              f"metrics, evaluated with teacher.pt and student.pt?)")
        metrics = metrics[model]
    block, spread = metrics["2dof"], metrics.get("std", {}).get("2dof", {})
    return {s: float(block[s]) for s in ("mean_m", "median_m")} | {
        f"{s}_std": float(spread.get(s, NAN)) for s in ("mean_m", "median_m")}


def cells(scores: dict[str, float]) -> list[float]:
    return [scores[s] for s in STATS]


def changes(new: dict[str, float], old: dict[str, float]) -> list[float]:
    """Relative change of the mean and the median (%)."""
    return [change_pct(new[s], old[s]) for s in ("mean_m", "median_m")]


def supervision(params: Params, method: str) -> str:
    return "full" if isinstance(params.baselines[method], CCVPEParams) else "weak"


def distilled_models(params: Params) -> tuple[str, str]:
    """(the model of a distillation run the claims use, the other one): report.distilled_model first."""
    return params.report.distilled_model, OTHER[params.report.distilled_model]


def main_table(params: Params, metrics_dir: Path, published: dict) -> pd.DataFrame:
    """Per method and area: the baseline, then its GeoDistill run's two models (report.distilled_model
    first), each against the baseline; the paper's GeoDistill numbers beside both."""
    rows = []
    for method, area in run_pairs(params):
        base_run, name = baseline_run(method, area), geodistill_variant(params, method, area)
        paper = {m: paper_pair(published, ("methods", method, m, area)) for m in ("baseline", "geodistill")}
        base = two_dof(metrics_dir, base_run, method, area)
        rows.append([method, area, "baseline", base_run, *cells(base), NAN, NAN, *paper["baseline"], NAN, NAN])
        for model in distilled_models(params) if name else ():
            ours = two_dof(metrics_dir, name, method, area, model)
            rows.append([method, area, f"GeoDistill {model}", name, *cells(ours), *changes(ours, base),
                         *paper["geodistill"], *[change_pct(p, b) for p, b in zip(paper["geodistill"], paper["baseline"])]])
    return pd.DataFrame(rows, columns=columns("main"))


def run_cells(params: Params, metrics_dir: Path, run: str, method: str, area: str) -> list[float]:
    """STATS of `run` then those of its other model: a distillation run's two models, a baseline
    run's numbers and NaN (it has no other model)."""
    if run not in params.distill.variants:
        return cells(two_dof(metrics_dir, run, method, area)) + [NAN] * len(STATS)
    return [x for model in distilled_models(params) for x in cells(two_dof(metrics_dir, run, method, area, model))]


def supervised_table(params: Params, metrics_dir: Path, published: dict) -> pd.DataFrame:
    rows = []
    for method in run_methods(params):
        models = [("baseline", "baseline", None)] + [(f"GeoDistill {m}", "geodistill", m) for m in distilled_models(params)]
        for model, key, distilled in models:
            runs = {a: (baseline_run(method, a) if key == "baseline" else geodistill_variant(params, method, a))
                    if baseline_run(method, a) in params.runs else None for a in ("cross", "same")}
            if not any(runs.values()):
                continue
            ours = {a: cells(two_dof(metrics_dir, r, method, a, distilled)) if r else [NAN] * len(STATS)
                    for a, r in runs.items()}
            paper = [x for a in ("cross", "same") for x in paper_pair(published, ("methods", method, key, a))]
            rows.append([supervision(params, method), method, model, runs["cross"] or "", runs["same"] or "",
                         *ours["cross"], *ours["same"], *paper])
    for method, entry in published.get("methods", {}).items():
        if method not in run_methods(params):                    # published only: the paper's comparison
            paper = [x for a in ("cross", "same") for x in paper_pair(published, ("methods", method, "baseline", a))]
            rows.append([entry.get("supervision", ""), method, "baseline (not replicated)", "", "",
                         *[NAN] * (2 * len(STATS)), *paper])
    table = pd.DataFrame(rows, columns=columns("supervised"))
    order = table.supervision.map({"full": 0, "weak": 1}).fillna(2).to_numpy()
    return table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def _knob_rows(params: Params, metrics_dir: Path, published: dict, knob: str, keep, label) -> list[list]:
    """Rows `method, area, label, settings, run, mean, median, paper mean, paper median` of one
    knob's ablation; a baseline row `none (no distillation)` opens each group for the target."""
    rows = []
    for method, area, runs in ablation_groups(params, knob, keep):
        if knob == "target":
            run = baseline_run(method, area)
            rows.append([method, area, "none (no distillation)", "", run, *run_cells(params, metrics_dir, run, method, area),
                         *paper_pair(published, ("methods", method, "baseline", area))])
        name = geodistill_variant(params, method, area)
        for run, v in runs.items():
            keys = (("methods", method, "geodistill", area) if run == name else
                    ("ablations", area, knob, method, label(v)))
            rows.append([method, area, label(v), describe(getattr(v, knob)), run,
                         *run_cells(params, metrics_dir, run, method, area), *paper_pair(published, keys)])
    return rows


def occlusion_table(params: Params, metrics_dir: Path, published: dict) -> pd.DataFrame:
    rows = _knob_rows(params, metrics_dir, published, "occlusion", lambda v: v.occlusion.kind != "fov",
                      lambda v: v.occlusion.kind)
    return pd.DataFrame(rows, columns=columns("occlusion", distilled_models(params)[1]))


def uncertainty_table(params: Params, metrics_dir: Path, published: dict) -> pd.DataFrame:
    rows = _knob_rows(params, metrics_dir, published, "target", lambda v: True, lambda v: v.target.kind)
    return pd.DataFrame(rows, columns=columns("uncertainty", distilled_models(params)[1]))


def augment_table(params: Params, metrics_dir: Path, published: dict) -> pd.DataFrame:
    """Per method and area with an augment variant: baseline, augment variants, GeoDistill."""
    rows = []
    for method, area in run_pairs(params):
        augments = {n: v for n, v in ablations(params, method, area, {"mode", "occlusion"}).items()
                    if v.mode == "augment"}
        if not augments:
            continue
        default = geodistill_or_reference(params, method, area).occlusion
        base, name = baseline_run(method, area), geodistill_variant(params, method, area)
        entries = [("baseline", "", base, ("methods", method, "baseline", area))]
        entries += [("augment", f"{v.occlusion.kind}: {describe(v.occlusion)}{nothing_occluded(v)}", n,
                     ("ablations", area, "augment", method) if v.occlusion == default else None)
                    for n, v in augments.items()]
        if name:
            v = params.distill.variants[name]
            entries.append(("GeoDistill", f"{v.occlusion.kind}: {describe(v.occlusion)}", name,
                            ("methods", method, "geodistill", area)))
        for training, occlusion, run, keys in entries:
            rows.append([method, area, training, occlusion, run, *run_cells(params, metrics_dir, run, method, area),
                         *paper_pair(published, keys)])
    return pd.DataFrame(rows, columns=columns("augment_vs_distill", distilled_models(params)[1]))


def is_fov(v) -> bool:
    return isinstance(v.occlusion, FovOcclusion)


def nothing_occluded(v) -> str:
    return " (nothing occluded)" if is_fov(v) and v.occlusion.fov_deg[0] >= 360 else ""


def fov_sweep_table(params: Params, metrics_dir: Path) -> pd.DataFrame:
    """Per method and area with FoV ranges other than GeoDistill's: every range, narrowest first."""
    rows = []
    for method, area, runs in ablation_groups(params, "occlusion", is_fov):
        base = two_dof(metrics_dir, baseline_run(method, area), method, area)
        for run, v in sorted(runs.items(), key=lambda item: item[1].occlusion.fov_deg):
            ours = two_dof(metrics_dir, run, method, area, params.report.distilled_model)
            rows.append([method, area, *v.occlusion.fov_deg, run, *run_cells(params, metrics_dir, run, method, area),
                         *changes(ours, base)])
    return pd.DataFrame(rows, columns=columns("fov_sweep", distilled_models(params)[1]))


def orientation_table(params: Params, metrics_dir: Path) -> pd.DataFrame:
    network = load_metrics(metrics_dir, "orientation")
    rows = []
    for area in params.orientation.areas:
        if area not in network:
            raise FileNotFoundError(f"{Path(metrics_dir) / 'orientation.json'}: no {area!r} block "
                                    f"(params orientation.areas has it)")
        entries = [("orientation network", "orientation", network[area])]
        for method in run_methods(params):
            run = baseline_run(method, area)
            if isinstance(params.baselines[method], CCVPEParams) and run in params.runs:
                own = load_metrics(metrics_dir, run, method, area).get("3dof_own")
                if own is not None:
                    entries.append((f"{method} own yaw", run, own["orientation"]))
        for model, run, m in entries:
            rows.append([area, model, run, m["n"], m["mean_deg"], m["median_deg"],
                         *[100 * m[f"within_{t}_deg"] for t in (1, 3, 5)]])
    return pd.DataFrame(rows, columns=columns("orientation"))


def build_tables(params: Params, metrics_dir: Path, published: dict) -> dict[str, pd.DataFrame]:
    """Every table by name (TABLES); a missing metrics file raises FileNotFoundError."""
    metrics_dir = Path(metrics_dir)
    return {"main": main_table(params, metrics_dir, published),
            "supervised": supervised_table(params, metrics_dir, published),
            "occlusion": occlusion_table(params, metrics_dir, published),
            "uncertainty": uncertainty_table(params, metrics_dir, published),
            "augment_vs_distill": augment_table(params, metrics_dir, published),
            "fov_sweep": fov_sweep_table(params, metrics_dir),
            "orientation": orientation_table(params, metrics_dir)}


def summary_metrics(built: dict[str, pd.DataFrame]) -> dict:
    """The tables' headline for `dvc exp show`: the main table's mean error per row
    (`<run>` for a baseline, `<run>/<teacher|student>` for a distillation row) and each claim's
    change (%) and verdict, keyed `<run>_vs_<reference>`."""
    main = {}
    for row in built["main"].itertuples():
        key = row.run if row.model == "baseline" else f"{row.run}/{row.model.split()[-1]}"
        main[key] = round(float(row.mean_m), 4)
    claims = {f"{r.run}_vs_{r.reference}": {"change_pct": round(float(r.mean_change_pct), 2), "verdict": r.verdict}
              for r in built["claims"].itertuples()} if "claims" in built else {}
    return {"main_mean_m": main, "claims": claims}


def caption(name: str, table: pd.DataFrame, dataset: str) -> str:
    paper = (" Columns paper_*: the published numbers, on VIGOR (GeoDistill, ICCV 2025); a dash where the "
             "paper gives none." if any(c.startswith("paper_") for c in table.columns) else "")
    return f"{TITLES[name]}. Replication run on: {dataset}.{paper}"


def column_text(values: pd.Series, column: str, na: str) -> list[str]:
    """Cells as printed: integers whole, `*_change_pct` signed with one decimal, other `*_pct` one
    decimal, other floats two; NaN as `na`."""
    if pd.api.types.is_integer_dtype(values):
        return [na if pd.isna(v) else str(int(v)) for v in values]
    if not pd.api.types.is_float_dtype(values):
        return ["" if v is None else str(v) for v in values]
    spec = "+.1f" if column.endswith("_change_pct") else ".1f" if column.endswith("_pct") else ".2f"
    return [na if math.isnan(v) else format(v, spec) for v in values]


def as_text(table: pd.DataFrame, na: str) -> pd.DataFrame:
    """The cells as printed; a column X with an `X_std` column beside it reads `X ± std` where the
    std is a number (several seeds), and the `X_std` column itself is not printed."""
    shown = [c for c in table.columns if not (c.endswith("_std") and c.removesuffix("_std") in table)]
    text = {}
    for c in shown:
        cells = column_text(table[c], c, na)
        if f"{c}_std" in table:
            spread = column_text(table[f"{c}_std"], c, na)
            cells = [v if s == na or v == na else f"{v} ± {s}" for v, s in zip(cells, spread)]
        text[c] = cells
    return pd.DataFrame(text, columns=shown, dtype=object)


def is_numeric(table: pd.DataFrame, column: str) -> bool:
    return pd.api.types.is_numeric_dtype(table[column])


def markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table: a header, an alignment row (numbers right-aligned), one line per row."""
    text = as_text(table, "–")
    row = lambda cells: "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    align = ["---:" if is_numeric(table, c) else ":---" for c in text.columns]
    return "\n".join([row(text.columns), row(align), *(row(r) for r in text.itertuples(index=False))])


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex(table: pd.DataFrame, name: str, text: str) -> str:
    """A booktabs table environment (pandas Styler), cells escaped, with caption and label."""
    cells = as_text(table, "--")
    return (cells.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
            .to_latex(column_format="".join("r" if is_numeric(table, c) else "l" for c in cells.columns),
                      hrules=True, caption=latex_escape(text), label=f"tab:{name}", position_float="centering"))


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path, caption_dataset: str) -> list[Path]:
    """<out_dir>/<name>.md, .csv (full precision) and .tex for every table, each written atomically."""
    written = []
    for name, table in tables.items():
        text = caption(name, table, caption_dataset)
        body = markdown(table) if len(table) else markdown(table) + "\n\n(no such runs in params)"
        contents = {".md": f"**Table {name}.** {text}\n\n{body}\n", ".tex": latex(table, name, text)}
        for suffix, content in contents.items():
            path = Path(out_dir) / f"{name}{suffix}"
            with atomic_file(path) as tmp:
                tmp.write_text(content)
            written.append(path)
        path = Path(out_dir) / f"{name}.csv"
        with atomic_file(path) as tmp:
            table.to_csv(tmp, index=False)
        written.append(path)
    return written
