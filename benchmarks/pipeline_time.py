"""Wall time of `dvc repro`, stage by stage, and of `dvc status` on the result.

    .venv/bin/python benchmarks/pipeline_time.py [--out reports/pipeline_time.csv] [-- DVC REPRO ARGS]

Runs `dvc repro` (with any extra arguments, e.g. `--force` for a cold run of every stage) in the
current checkout, echoes its output, and times each stage from its "Running stage" line to the
next stage's (or the end). Stages DVC skips or restores from its cache take the time they took.
Writes one row per stage (stage, seconds, how: ran | skipped | cached, and the machine: CPU
model, cores, float32 matmul GFLOPS measured first, since two "2-core" machines can differ 2-3x),
prints the totals, then times `dvc status` on the now up-to-date pipeline (best of 3: the
latency a user waits for).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

STAGE = re.compile(r"^(?:Running stage '(?P<ran>[^']+)'|Stage '(?P<other>[^']+)' (?P<why>didn't change|is cached))")


def venv_env() -> dict:
    """The environment with this interpreter's bin folder first (dvc.yaml's `geodistill` commands)."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


def timed_repro(extra: list[str]) -> pd.DataFrame:
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=venv_env())
    rows, current, start = [], None, time.perf_counter()
    for line in proc.stdout:
        sys.stdout.write(line)
        found = STAGE.match(line)
        if not found:
            continue
        now = time.perf_counter()
        if current:
            rows.append({**current, "seconds": round(now - start, 1)})
        how = "ran" if found["ran"] else "skipped" if found["why"] == "didn't change" else "cached"
        current, start = {"stage": found["ran"] or found["other"], "how": how}, now
    if current:
        rows.append({**current, "seconds": round(time.perf_counter() - start, 1)})
    if proc.wait():
        raise SystemExit(f"dvc repro failed (exit {proc.returncode}); times so far: {rows}")
    return pd.DataFrame(rows, columns=["stage", "how", "seconds"])


def status_seconds(runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dvc", "status", "-q"], env=venv_env(), check=False,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    return min(times)


def machine() -> dict:
    """CPU model, core count and torch's float32 matmul rate (GFLOPS, 1024^2, best of 5 x 10)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown") if Path("/proc/cpuinfo").is_file() else "unknown"
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, time.perf_counter() - t0)
    return {"cpu": model, "cores": os.cpu_count(), "gflops": round(10 * 2 * 1024 ** 3 / best / 1e9, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("reports/pipeline_time.csv"))
    args, extra = ap.parse_known_args()
    host = machine()
    print(f"machine: {host['cpu']}, {host['cores']} cores, {host['gflops']} GFLOPS (float32 matmul)")
    table = timed_repro([a for a in extra if a != "--"]).assign(**host)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    group = table.stage.str.split("@").str[0]
    print(table.groupby(group, sort=False).seconds.agg(["count", "sum"]).assign(
        minutes=lambda t: (t["sum"] / 60).round(1)).to_string())
    print(f"total: {table.seconds.sum() / 60:.1f} min ({len(table)} stages) -> {args.out}")
    print(f"dvc status afterwards: {status_seconds():.2f} s (best of 3)")


if __name__ == "__main__":
    main()
