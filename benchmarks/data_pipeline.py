"""Time the data layer and evaluation on a real data set and print the figures.

    .venv/bin/python benchmarks/data_pipeline.py [DATA_DIR]   (default: ../shared/data/diginetica)

Reads train/test, builds the item index and session arrays, lays out one
training epoch of session-parallel steps, ranks every test case against all
items (random scores), and fits and evaluates both baselines. Figures are
wall-clock seconds on whatever else the machine is doing (see the load shown).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_code.data.event_table import read_events  # noqa: E402
from model_code.data.item_index import ItemIndex  # noqa: E402
from model_code.data.session_batches import SessionArrays, session_parallel_steps  # noqa: E402
from model_code.ranking.baselines import ItemKNNScorer, PopularityScorer  # noqa: E402
from model_code.ranking.metrics import RankingMetrics, evaluate, target_ranks  # noqa: E402


class Timer:
    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        print(f"{self.label:<58} {self.seconds:8.2f} s")


def main() -> int:
    folder = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).resolve().parents[2] / "shared" / "data" / "diginetica"
    )
    if not (folder / "train.tsv.gz").exists():
        print(f"no data at {folder}: pass a folder with train.tsv.gz and test.tsv.gz")
        return 1
    print(f"data: {folder}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with Timer("read_events(train)"):
        train_events = read_events(folder / "train.tsv.gz")
    with Timer("read_events(test)"):
        test_events = read_events(folder / "test.tsv.gz")
    with Timer("ItemIndex + SessionArrays (train and test)"):
        index = ItemIndex.from_events(train_events)
        train = SessionArrays.from_events(train_events, index)
        test = SessionArrays.from_events(test_events, index)
    print(f"  {train.n_events} train events, {len(index)} items, {test.n_examples} test cases")
    for batch in (32, 128, 512):
        with Timer(f"session_parallel_steps(train, {batch})"):
            steps = session_parallel_steps(train, batch)
        print(f"  {steps.n_steps} steps, {steps.n_examples / steps.valid.size:.1%} of slots valid")
    rng = np.random.default_rng(0)
    test_steps = session_parallel_steps(test, 512)
    for ties in ("conservative", "median"):
        metrics = RankingMetrics()
        with Timer(f"target_ranks, all test cases, random scores, {ties}"):
            scores = rng.random((512, len(index)), dtype=np.float32)
            for t in range(test_steps.n_steps):
                valid = test_steps.valid[t]
                metrics.add(target_ranks(scores[valid], test_steps.targets[t][valid], ties))
    for name, make in (("pop", PopularityScorer), ("item-knn", ItemKNNScorer)):
        with Timer(f"{name}: fit"):
            scorer = make(train, len(index))
        with Timer(f"{name}: evaluate (all test cases x all items)"):
            result = evaluate(scorer, test, progress=False)
        print(f"  recall@20 {result['recall@20']:.4f}  mrr@20 {result['mrr@20']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
