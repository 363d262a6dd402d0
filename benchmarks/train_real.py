"""Full GRU4Rec trainings on the real data sets, with time, throughput, accuracy and peak memory.

Runs ``python -m model_code.commands.train`` once per data set and preset (by default
yoochoose100k with the rsc15 and the yoochoose presets, diginetica with the
diginetica preset; 10 epochs unless ``--epochs``), each in its own process so
its peak RSS is its own, and prints one table::

    python benchmarks/train_real.py [--sets SET[:PRESET] ...] [--epochs N] [--seeds S ...] [--param NAME=VALUE]
                                    [--reference cpu|h100] [--json OUT]

A set named without a preset runs with its own (yoochoose100k: rsc15,
diginetica: diginetica). The training command runs Keras on JAX and backs
large allocations with huge pages itself (:mod:`model_code.gru4rec.training_env`);
the backend and the ``GLIBC_TUNABLES`` each training process started with
(from its metadata) are shown in the table.

Data come from ../shared/data/<set>/{train,test}.tsv.gz (``--data-root``);
a missing set is skipped with a message. The test set is scored once, after
the last epoch. Peak RSS is the training process's own maximum resident set
(``wait4``'s ``ru_maxrss``, what ``/usr/bin/time -v`` reports). Figures are
noisy while other jobs share the CPU: the load average before each run and
its mean during the run are printed beside them, and the reference's figures
(10 epochs) on a 2-core CPU or, with ``--reference h100``, on one H100 GPU,
with how many times faster this run trained. Every row names the CPU it ran on
(vendor, family and model; under the table its name and its AVX2, FMA,
AVX-512 and AMX flags): figures from different CPUs are not comparable.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from model_code.gru4rec.params import PRESETS  # noqa: E402
from model_code.gru4rec.training_env import this_cpu  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
PRESET_OF = {"yoochoose100k": "rsc15", "diginetica": "diginetica"}
DEFAULT_RUNS = ("yoochoose100k:rsc15", "yoochoose100k:yoochoose", "diginetica:diginetica")
REFERENCES = {  # the reference implementation, 10 epochs: per machine, per (data set, preset)
    "cpu": {  # a 2-core CPU (ANCHORS.md; the yoochoose preset measured beside this project on one machine)
        ("yoochoose100k", "rsc15"): {"recall@20": 0.6824, "mrr@20": 0.3539, "seconds": 61.0},
        ("yoochoose100k", "yoochoose"): {"recall@20": 0.6264, "mrr@20": 0.3061, "seconds": 131.4},
        ("diginetica", "diginetica"): {"recall@20": 0.5427, "mrr@20": 0.1832, "seconds": 1354.0},
    },
    "h100": {  # one H100 GPU
        ("yoochoose100k", "rsc15"): {"recall@20": 0.6785, "mrr@20": 0.3549, "seconds": 61.0},
        ("diginetica", "diginetica"): {"recall@20": 0.5416, "mrr@20": 0.1826, "seconds": 242.0},
    },
}


class LoadSampler:
    """The 1-minute load average, sampled every ``interval`` seconds while a run lasts."""

    def __init__(self, interval: float = 5.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples)


def parse_run(text: str) -> tuple[str, str]:
    """``SET`` or ``SET:PRESET`` -> (data set, preset)."""
    name, _, preset = text.partition(":")
    if name not in PRESET_OF:
        raise argparse.ArgumentTypeError(f"unknown data set {name!r}; known: {', '.join(sorted(PRESET_OF))}")
    preset = preset or PRESET_OF[name]
    if preset not in PRESETS:
        raise argparse.ArgumentTypeError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return name, preset


def run_one(run: tuple[str, str], data_root: Path, out_root: Path, epochs: int | None, extra: list[str],
            seed: int | None = None) -> dict | None:
    name, preset = run
    folder = data_root / name
    if not (folder / "train.tsv.gz").exists():
        print(f"{name}: skipped, no data at {folder}", file=sys.stderr)
        return None
    model_dir = out_root / f"{name}-{preset}" if seed is None else out_root / f"{name}-{preset}-seed{seed}"
    command = [
        sys.executable, "-m", "model_code.commands.train", "--train", str(folder / "train.tsv.gz"),
        "--test", str(folder / "test.tsv.gz"), "--preset", preset, "--model-dir", str(model_dir), *extra,
    ]
    if epochs is not None:
        command += ["--epochs", str(epochs)]
    if seed is not None:
        command += ["--seed", str(seed)]
    load = os.getloadavg()[0]
    print(f"{name}: {' '.join(command[1:])}  (load average {load:.2f})", file=sys.stderr, flush=True)
    started = time.perf_counter()
    with LoadSampler() as load_during:
        process = subprocess.Popen(command, cwd=REPO_ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{name}: training failed with exit code {code}")
    meta = json.loads((model_dir / "metadata.json").read_text())
    return {
        "data": name, "preset": preset, "seed": meta["training"]["seed"], "backend": meta["training"]["backend"],
        "matmul_dtype": meta["training"]["matmul_dtype"],
        "glibc_tunables": meta["training"].get("glibc_tunables") or "", "epochs": meta["training"]["epochs"],
        "recall@20": meta["metrics"]["recall@20"], "mrr@20": meta["metrics"]["mrr@20"],
        "seconds": meta["training"]["seconds"], "events_per_second": meta["training"]["events_per_second"],
        "wall_seconds": round(wall, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "load_before": round(load, 2), "load_during": round(load_during.mean, 2), "cpu": this_cpu()._asdict(),
        "metrics": meta["metrics"],
        "history": meta["training"]["history"],
    }


def table(rows: list[dict], reference: str = "cpu") -> str:
    """The rows beside the reference's figures on ``reference`` (a key of REFERENCES)."""
    header = (
        "data set",
        "preset",
        "seed",
        "CPU family/model",
        "backend",
        "products",
        "GLIBC_TUNABLES",
        "epochs",
        "Recall@20",
        "MRR@20",
        "train s",
        "events/s",
        "wall s",
        "peak RSS MiB",
        "load before / during",
        f"{reference} ref Recall@20",
        f"{reference} ref MRR@20",
        f"{reference} ref s",
        "x faster (per epoch)",
    )
    lines = [header]
    for r in rows:
        ref = REFERENCES[reference].get((r["data"], r["preset"]), {})
        lines.append((
            r["data"], r["preset"], str(r["seed"]), cpu_label(r["cpu"]), r["backend"], r["matmul_dtype"],
            r["glibc_tunables"], str(r["epochs"]),
            f"{r['recall@20']:.4f}", f"{r['mrr@20']:.4f}",
            f"{r['seconds']:.1f}", f"{r['events_per_second']:,.0f}", f"{r['wall_seconds']:.1f}",
            f"{r['peak_rss_mib']:,.0f}", f"{r['load_before']:.2f} / {r['load_during']:.2f}",
            f"{ref.get('recall@20', float('nan')):.4f}",
            f"{ref.get('mrr@20', float('nan')):.4f}", f"{ref.get('seconds', float('nan')):.0f}",
            f"{ref.get('seconds', float('nan')) * r['epochs'] / 10 / r['seconds']:.1f}",
        ))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    cpus = {cpu_label(r["cpu"]): r["cpu"] for r in rows}
    out += [f"CPU {label}: {cpu['name']}, flags {' '.join(cpu['flags']) or 'none of AVX2/AVX-512/AMX'}"
            for label, cpu in cpus.items()]
    return "\n".join(out)


def cpu_label(cpu: dict) -> str:
    """``vendor family/model``, e.g. ``AuthenticAMD 25/17``: the table's short name of a row's CPU."""
    return f"{cpu['vendor']} {cpu['family']}/{cpu['model']}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", type=parse_run, default=[parse_run(run) for run in DEFAULT_RUNS],
                        metavar="SET[:PRESET]", help=f"data sets ({', '.join(sorted(PRESET_OF))}), each with a preset "
                        f"or its own (default: {' '.join(DEFAULT_RUNS)})")
    parser.add_argument("--epochs", type=int, help="override the presets' 10 epochs (quick checks)")
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out-dir", type=Path, help="keep the model directories here (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    parser.add_argument("--reference", choices=sorted(REFERENCES), default="cpu",
                        help="the reference's figures to compare with: a 2-core CPU (default) or one H100 GPU")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="passed to every training")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                        help="train each set once per seed (default: once, with the training command's default seed)")
    args = parser.parse_args(argv)
    extra = [item for p in args.param for item in ("--param", p)]
    with tempfile.TemporaryDirectory(prefix="train_real_") as scratch:
        out_root = args.out_dir or Path(scratch)
        rows = [row for run in args.sets for seed in args.seeds or [None]
                if (row := run_one(run, args.data_root, out_root, args.epochs, extra, seed))]
    print(table(rows, args.reference))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
