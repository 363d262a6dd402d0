"""A tuning study on a real data set against the preset, both scored on the test set.

The issue's measurement (yoochoose100k, ``--valid-days 1``, at most 60 trials or 45 minutes)::

    python benchmarks/tune_real.py --set yoochoose100k --trials 60 --time-budget 45m

1. ``python -m model_code.commands.tune`` on the set's train.tsv.gz (validation: its last ``--valid-days`` days;
   the test set is not read during the search), timed;
2. the best settings and the set's preset (yoochoose100k: rsc15, diginetica: diginetica), each trained on
   the whole train.tsv.gz (train+valid) with ``--seeds`` (default 1 2 3) and scored once on test.tsv.gz.

Printed: the study's minutes, finished and pruned trials, and Recall@20 / MRR@20 of both (mean, min..max
over the seeds), with the load average before and after. ``--start-from PRESET`` queues a preset as the
first trial (the diginetica measurement starts from rsc15); ``--prune-after 0`` runs without pruning (the
pruner's saving: the same number of trials with and without). ``--epochs`` applies to trials and to the
final trainings alike. Each command runs in its own process (the training commands set their environment
themselves: Keras on JAX, huge pages).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
PRESET_OF = {"yoochoose100k": "rsc15", "diginetica": "diginetica"}
SPACE_OF = {"yoochoose100k": "xe", "diginetica": "bpr-max"}
METRIC_LINE = re.compile(r"^(recall@20|mrr@20)=([0-9.]+);$")


def command(argv: list[str]) -> tuple[str, float]:
    """Run ``python -m ...argv`` from the repository root; (stdout, seconds). Fails loudly."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", *argv], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:1])} failed with exit code {result.returncode}")
    return result.stdout, time.perf_counter() - started


def test_figures(stdout: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in map(METRIC_LINE.match, stdout.splitlines()) if m}


def train_seeds(data: Path, start: list[str], epochs: list[str], seeds: list[int], out: Path) -> list[dict]:
    """Train on the whole train.tsv.gz with each seed; the test figures of each."""
    figures = []
    for seed in seeds:
        stdout, seconds = command(["model_code.commands.train", "--train", str(data / "train.tsv.gz"), "--test",
                                   str(data / "test.tsv.gz"), *start, *epochs, "--seed", str(seed), "--no-export",
                                   "--no-progress", "--model-dir", str(out / f"model-{seed}")])
        figures.append({**test_figures(stdout), "seconds": seconds})
    return figures


def summary(figures: list[dict], metric: str) -> str:
    values = [f[metric] for f in figures]
    return f"{mean(values):.4f} ({min(values):.4f}..{max(values):.4f})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="yoochoose100k", choices=sorted(PRESET_OF))
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--trials", default="60")
    parser.add_argument("--time-budget", default="45m")
    parser.add_argument("--epochs", help="epochs per trial and per final training (default: the presets')")
    parser.add_argument("--valid-days", default="1")
    parser.add_argument("--prune-after", default="5")
    parser.add_argument("--start-from", action="append", default=[])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--out", type=Path, help="study and models (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    data = args.data_root / args.set
    out = args.out or Path(tempfile.mkdtemp(prefix="tune_real-"))
    epochs = ["--epochs", args.epochs] if args.epochs else []
    load_before = os.getloadavg()[0]
    study_dir = out / "study"
    _, study_seconds = command([
        "model_code.commands.tune", "--train", str(data / "train.tsv.gz"), "--valid-days", args.valid_days,
        "--space", SPACE_OF[args.set], "--trials", args.trials, "--time-budget", args.time_budget,
        "--prune-after", args.prune_after, "--study-dir", str(study_dir), *epochs,
        *[flag for start in args.start_from for flag in ("--start-from", start)]])
    with open(study_dir / "trials.csv") as table:
        states = [row["state"] for row in csv.DictReader(table)]
    tuned = train_seeds(data, ["--params", str(study_dir / "best_params.json")], epochs, args.seeds, out / "tuned")
    preset = train_seeds(data, ["--preset", PRESET_OF[args.set]], epochs, args.seeds, out / "preset")
    results = {
        "set": args.set, "study_minutes": round(study_seconds / 60, 2), "trials": len(states),
        "pruned": states.count("PRUNED"), "complete": states.count("COMPLETE"), "epochs": args.epochs or "preset",
        "tuned": tuned, "preset": preset, "load_before": load_before, "load_after": os.getloadavg()[0],
    }
    print(f"{args.set}: study {results['study_minutes']:.1f} min, {len(states)} trials "
          f"({results['complete']} complete, {results['pruned']} pruned), epochs {results['epochs']}, "
          f"load {load_before:.2f} -> {results['load_after']:.2f}; test figures, mean (min..max) over seeds "
          f"{' '.join(map(str, args.seeds))}:")
    for name, figures in (("tuned", tuned), (f"preset {PRESET_OF[args.set]}", preset)):
        print(f"  {name:<18} recall@20 {summary(figures, 'recall@20')}  mrr@20 {summary(figures, 'mrr@20')}")
    print(f"study, best_params.json, trials.csv, search.png: {study_dir}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
