"""Training throughput of every training stage against the number of data-parallel processes.

    .venv/bin/python benchmarks/ddp_speed.py [--config configs/smoke.yaml] [--panoramas 96] [--devices 1 2]
        [--out reports/ddp_speed.csv]

Builds the config's world (with --panoramas per city) in a scratch folder, then runs each
training stage (train-orientation, train-baseline for each method, distill) as DVC would, once
per process count, with the machine's cores split evenly between the processes (`train.threads`,
`orientation.threads`). Throughput is the training samples of an epoch over its wall time
(history.csv, validation included), from the last of 2 epochs so image decoding is excluded.
On a GPU machine run it with a GPU config: each process then takes one device.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
SEED = 2023                                   # one training seed: each stage's <out>/seed2023/


def run(args: list[str], cwd: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    res = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-3000:]}")


def configure(raw: dict, devices: int, cores: int) -> dict:
    raw = yaml.safe_load(yaml.safe_dump(raw))
    threads = max(1, cores // devices)
    raw["train"] |= {"devices": devices, "threads": threads}
    raw["orientation"] |= {"epochs": 2, "threads": threads, "max_train_samples": 0}
    for p in raw["baselines"].values():
        p |= {"epochs": 2, "max_train_samples": 0}
    return raw


def stages(raw: dict) -> dict[str, tuple[list[str], str]]:
    """Stage name -> (command after `geodistill`, folder of its history.csv)."""
    out = {"orientation": (["train-orientation", "--index", "index.csv", "--bev", "bev", "--out", "orientation",
                            "--metrics", "orientation.json"], "orientation/cross")}
    for method in raw["baselines"]:
        out[method] = (["train-baseline", "--method", method, "--area", "cross", "--index", "index.csv",
                        "--out", f"baselines/{method}-cross"], f"baselines/{method}-cross/seed{SEED}")
    out["distill g2s_vgg"] = (["distill", "--variant", "bench", "--index", "index.csv", "--baselines", "baselines",
                               "--out", "distill"], f"distill/seed{SEED}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "smoke.yaml")
    ap.add_argument("--panoramas", type=int, default=96, help="panoramas per city of the scratch world")
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=None, help="CSV of the results")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    raw = yaml.safe_load(args.config.read_text())
    raw["synth"]["panoramas_per_city"] = args.panoramas
    raw["distill"]["variants"] = {"bench": {"method": "g2s_vgg", "area": "cross", "epochs_factor": 1.0}}
    raw["report"]["seeds"] = [SEED]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "params.yaml").write_text(yaml.safe_dump(configure(raw, 1, cores)))
        run(["geodistill", "synth", "--config", "params.yaml", "--out", "world"], root)
        run(["geodistill", "index", "--config", "params.yaml", "--root", "world", "--out", "index.csv"], root)
        run(["geodistill", "render-bev", "--config", "params.yaml", "--index", "index.csv", "--out", "bev"], root)
        index = pd.read_csv(root / "index.csv")
        n_train = int(((index.area == "cross") & (index.split == "train")).sum())
        for devices in args.devices:
            (root / "params.yaml").write_text(yaml.safe_dump(configure(raw, devices, cores)))
            for name, (command, folder) in stages(raw).items():
                run(["geodistill", command[0], "--config", "params.yaml", *command[1:]], root)
                seconds = pd.read_csv(root / folder / "history.csv").seconds.iloc[-1]
                rows.append({"stage": name, "processes": devices, "threads_each": max(1, cores // devices),
                             "samples_per_s": round(float(n_train / seconds), 1)})
                print(rows[-1], flush=True)
            for folder in ("orientation", "baselines", "distill"):       # or the next count would resume
                shutil.rmtree(root / folder)
    table = pd.DataFrame(rows).pivot(index="stage", columns="processes", values="samples_per_s")
    print(f"\nsamples/s ({cores} cores, cross-area train split of {n_train} samples):\n{table.to_string()}")
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
