"""Wall time of ``python -m infra.ops --help``, beside a bare interpreter's start, over several runs.

    .venv/bin/python benchmarks/ops_help.py [--runs 10]

Prints the load average first: on a busy machine both figures grow together.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    print(f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())}, {args.runs} runs each")
    for label, argv in (("python -c pass", [sys.executable, "-c", "pass"]),
                        ("python -m infra.ops --help", [sys.executable, "-m", "infra.ops", "--help"])):
        times = [wall_seconds(argv) for _ in range(args.runs)]
        print(f"{label:28s} median {statistics.median(times):.3f} s  min {min(times):.3f} s  max {max(times):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
