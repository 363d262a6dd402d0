"""Baselines GRU4Rec must clear: most-popular and item-kNN.

Both implement :class:`model_code.ranking.metrics.NextItemScorer` and are evaluated
exactly like the model (every next event of every test session, ranked
against all training items).

- ``pop``: every session gets the same scores, the items' training event counts.
- ``item-knn``: the item-to-item baseline of the GRU4Rec paper. Two items are
  similar when they occur in the same training sessions: cosine similarity of
  their session-occurrence vectors, ``c(i, j) / sqrt((n_i + lambda) * (n_j + lambda))``
  with c the number of sessions holding both, n the number holding each and
  ``lambda`` a regularisation against coincidental matches of rare items. By
  default an item is not its own neighbour (``include_self`` makes it one,
  which predicts that the current item repeats). A session is scored by its
  current (last) item's similarity row.

Command line::

    python -m model_code.ranking.baselines --train TRAIN --test TEST [--out results.json]
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import scipy.sparse as sp

from model_code import artifacts
from model_code.commands.report import metrics_table
from model_code.data.event_rules import ReadOptions, add_read_options, read_options
from model_code.data.event_table import read_events
from model_code.data.events import DataError
from model_code.data.item_index import ItemIndex
from model_code.data.session_batches import SessionArrays
from model_code.ranking.metrics import CUTOFFS, TIE_MODES, evaluate

KNN_REGULARISATION = 20.0


class PopularityScorer:
    """Scores every item by its number of training events, whatever the session."""

    def __init__(self, train: SessionArrays, n_items: int):
        self.n_items = n_items
        self.counts = train.item_counts(n_items).astype(np.float32)

    def score(self, inputs: np.ndarray, resets: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(inputs), self.n_items))


class ItemKNNScorer:
    """Scores items by their session co-occurrence cosine similarity to the current item."""

    def __init__(
        self, train: SessionArrays, n_items: int, regularisation: float = KNN_REGULARISATION, include_self: bool = False
    ):
        self.n_items = n_items
        self.similarity = item_similarity(train, n_items, regularisation, include_self)

    def score(self, inputs: np.ndarray, resets: np.ndarray) -> np.ndarray:
        return self.similarity[inputs].toarray()


def item_similarity(
    train: SessionArrays, n_items: int, regularisation: float = KNN_REGULARISATION, include_self: bool = False
) -> sp.csr_matrix:
    """Sparse float32 [n_items, n_items] regularised cosine similarity of the items' session sets."""
    session_of_event = np.repeat(np.arange(train.n_sessions), train.lengths)
    occurs = sp.csr_matrix(
        (np.ones(train.n_events, dtype=np.float32), (session_of_event, train.items)),
        shape=(train.n_sessions, n_items),
    )
    occurs.sum_duplicates()
    occurs.data[:] = 1.0  # a session counts once per item, however often it repeats the item
    together = (occurs.T @ occurs).tocsr()
    if not include_self:
        together.setdiag(0)
        together.eliminate_zeros()
    support = np.asarray(occurs.sum(axis=0)).ravel() + regularisation
    scale = np.divide(1.0, np.sqrt(support), out=np.zeros(n_items), where=support > 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ together @ sp.diags(scale), dtype=np.float32)


def run_baselines(
    train_path, test_path, read=ReadOptions(), ties="conservative", batch_size=512, progress=True, log=print,
    knn_regularisation=KNN_REGULARISATION, knn_include_self=False,
):
    """Read the data, fit every baseline, evaluate it; returns {baseline: metrics}."""
    started = time.perf_counter()
    train_events = read_events(train_path, read, log)
    test_events = read_events(test_path, read, log)
    index = ItemIndex.from_events(train_events)
    train = SessionArrays.from_events(train_events, index)
    test = SessionArrays.from_events(test_events, index)
    log(
        f"train: {train.n_events} events, {train.sessions_summary()}, {len(index)} items; "
        f"test: {test.n_events} events, {test.sessions_summary()}, {test.n_examples} next-item cases "
        f"({test.dropped_unknown} test events with items unknown to training dropped); "
        f"read in {time.perf_counter() - started:.1f} s"
    )
    if test.n_examples == 0:
        raise DataError(f"{test_path}: no test session has two or more events with items known to training")
    baselines = {
        "pop": lambda: PopularityScorer(train, len(index)),
        "item-knn": lambda: ItemKNNScorer(train, len(index), knn_regularisation, knn_include_self),
    }
    results = {}
    for name, make in baselines.items():
        started = time.perf_counter()
        scorer = make()
        results[name] = evaluate(scorer, test, batch_size=batch_size, ties=ties, progress=progress)
        log(f"{name}: fitted and evaluated in {time.perf_counter() - started:.1f} s")
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.ranking.baselines",
        description=(
            "Evaluate the most-popular and item-kNN baselines: fit on --train, rank every next item of every "
            "--test session against all training items, print Recall@k and MRR@k "
            f"(k = {', '.join(map(str, CUTOFFS))}). The files are used as given (no filtering); test events "
            "whose item is unknown to training are dropped and counted."
        ),
    )
    parser.add_argument(
        "--train", required=True, help="training events: TSV/CSV/Parquet file (gzip or not), folder or s3:// URI"
    )
    parser.add_argument("--test", required=True, help="test events, same formats as --train")
    parser.add_argument("--out", help="also write the results as JSON to this file: {baseline: {metric: value}}")
    parser.add_argument(
        "--ties",
        choices=TIE_MODES,
        default="conservative",
        help="how ties with the target's score count (default: conservative)",
    )
    parser.add_argument("--batch-size", type=int, default=512, help="test sessions scored side by side (default: 512)")
    parser.add_argument(
        "--knn-regularisation",
        type=float,
        default=KNN_REGULARISATION,
        help="item-kNN: lambda added to each item's session count in the cosine denominator (default: "
             f"{KNN_REGULARISATION:g})",
    )
    parser.add_argument(
        "--knn-include-self",
        action="store_true",
        help="item-kNN: let an item be its own nearest neighbour, i.e. predict repeats of the current item (default: "
             "off)",
    )
    add_read_options(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or timings, only the table")
    args = parser.parse_args(argv)
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=sys.stderr))
    try:
        results = run_baselines(
            args.train, args.test, read_options(args), args.ties, args.batch_size, not args.quiet, log,
            args.knn_regularisation, args.knn_include_self,
        )
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(metrics_table(results))
    if args.out:
        artifacts.write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
