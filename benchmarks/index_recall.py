"""The search index's recall of the exact top 20, and its latency, on a model's own sessions.

    .venv/bin/python benchmarks/index_recall.py --model-dir DIR --sessions ../shared/data/diginetica/test.tsv.gz

Builds the model directory's index where it has none (``inference/search_index.py``), then for each
``--probes`` depth scores ``--count`` sessions of the file (each cut at a random point, as a visitor
is mid-session) one at a time, with the index and exactly, and prints the share of the exact top 20
the index found, and the p50/p99 of one session each way. Nothing here asserts anything.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pcsv

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serving import percentiles_ms  # noqa: E402
from inference import search_index  # noqa: E402
from inference.engine import Recommender  # noqa: E402
from model_code import artifacts  # noqa: E402

K = 20


def read_sessions(path: Path, count: int, rng: np.random.Generator) -> list[list[str]]:
    """``count`` sessions of a GRU4Rec-layout TSV (SessionId, ItemId, Time), each cut at a random length."""
    table = pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter="\t"),
                          convert_options=pcsv.ConvertOptions(column_types={"ItemId": "string", "SessionId": "string"}))
    sessions: dict[str, list[str]] = {}
    for session, item in zip(table["SessionId"].to_pylist(), table["ItemId"].to_pylist()):
        sessions.setdefault(session, []).append(item)
    chosen = list(sessions.values())[:count]
    return [items[:rng.integers(1, len(items) + 1)] for items in chosen]


def timed(engine: Recommender, sessions: list[list[str]], exact: bool) -> tuple[list[set[str]], list[float]]:
    tops, seconds = [], []
    for session in sessions:
        start = time.perf_counter()
        result = engine.recommend([session], k=K, exact=exact)[0]
        seconds.append(time.perf_counter() - start)
        tops.append({item for item, _ in result.recommendations})
    return tops, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--sessions", type=Path, required=True, help="events in the GRU4Rec layout (TSV, gzip or not)")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--probes", type=int, nargs="+", help="clusters scanned per search (default: the served depth)")
    args = parser.parse_args(argv)
    if not (args.model_dir / search_index.INDEX_FILE).is_file():
        table, bias = artifacts.read_output_layer(args.model_dir)
        start = time.perf_counter()
        search_index.write(args.model_dir, table, bias)
        print(f"built {search_index.INDEX_FILE} in {time.perf_counter() - start:.1f} s")
    engine = Recommender.load(args.model_dir, top_k_search="index")
    engine.warm_up()
    sessions = read_sessions(args.sessions, args.count, np.random.default_rng(0))
    exact, exact_s = timed(engine, sessions, exact=True)
    print(f"{engine.n_items:,} items, {len(sessions)} sessions, {engine.search.index.nlist} clusters; "
          "exact p50/p99 {:.2f}/{:.2f} ms".format(*percentiles_ms(exact_s)))
    for probes in args.probes or [engine.search.nprobe]:
        engine.search.nprobe = probes
        found, found_s = timed(engine, sessions, exact=False)
        recall = sum(len(a & b) for a, b in zip(exact, found)) / sum(len(a) for a in exact)
        print(
            "nprobe {:>5}: recall@{} {:.4f}, p50/p99 {:.2f}/{:.2f} ms".format(
                probes, K, recall, *percentiles_ms(found_s)
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
