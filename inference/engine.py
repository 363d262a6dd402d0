"""Score sessions with the exported GRU4Rec: ONNX Runtime runs the GRU, NumPy scores every item.

One call scores a whole list of sessions: their known items are padded into one ``[N, T]`` batch,
``scorer.onnx`` returns the final hidden states ``[N, H]``, one matrix product gives the scores of
every item ``[N, n_items]``, and ``np.argpartition`` picks each row's top k without sorting the
whole catalogue. Items the model has never seen are skipped and counted; a session without any known
item gets the most popular items of the training data (``fallback``, with no model score).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from model_code import artifacts

MAX_SESSION_LENGTH = 200
"""Only the last 200 items of a longer session are fed to the GRU (its state forgets older ones anyway)."""
BLOCK = 128
"""Score columns per block in :func:`top_k`; the item table is padded to a multiple of it."""
CHUNK = 1024
"""Sessions scored together: bounds the score matrix of a 6 MB Batch Transform payload to CHUNK x items."""


@dataclass(frozen=True)
class SessionResult:
    """Recommendations for one session, best first, as (item id, score); score is None for the fallback."""

    recommendations: list[tuple[str, float | None]]
    unknown_items: int
    fallback: bool = False


class Recommender:
    """The model directory's scorer, output layer, item ids and popular items, loaded once."""

    def __init__(self, scorer: ort.InferenceSession, items: list[str], table: np.ndarray, bias: np.ndarray,
                 popular: list[str]):
        if table.shape[0] != len(items):
            raise artifacts.ModelDirError(
                f"{artifacts.EMBEDDINGS_FILE} has {table.shape[0]} rows but {artifacts.ITEMS_FILE} lists {len(items)} items"
            )
        self.scorer = scorer
        self.items = items
        self.index = {item: i for i, item in enumerate(items)}
        # padded to whole blocks: zero columns with a -inf bias are never recommended
        padded = -(-len(items) // BLOCK) * BLOCK
        self.table_t = np.zeros((table.shape[1], padded), dtype=np.float32)
        self.table_t[:, :len(items)] = table.T
        self.bias = np.full(padded, -np.inf, dtype=np.float32)
        self.bias[:len(items)] = bias
        self.popular = [item for item in popular if item in self.index]
        self.padding_index = len(items)

    @classmethod
    def load(cls, model_dir: str | os.PathLike, threads: int = 1) -> "Recommender":
        """Read ``model_dir``; ``threads`` is ONNX Runtime's intra-op thread count (one per worker by default)."""
        model_dir = Path(model_dir)
        scorer_path = model_dir / artifacts.SCORER_FILE
        if not scorer_path.is_file():
            raise artifacts.ModelDirError(f"model directory file missing: {scorer_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            scorer = ort.InferenceSession(str(scorer_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime's own error types share no base class below Exception
            raise artifacts.ModelDirError(f"{scorer_path} is not a model ONNX Runtime can load: {err}") from err
        table, bias = artifacts.read_output_layer(model_dir)
        metadata = artifacts.read_metadata(model_dir)
        return cls(scorer, artifacts.read_items(model_dir), table, bias, list(metadata.get("popular_items", [])))

    @property
    def n_items(self) -> int:
        return len(self.items)

    def warm_up(self) -> None:
        """Run one session through every stage, so the first request pays no start-up cost."""
        self.recommend([[self.items[0]]], k=1)

    def recommend(self, sessions: list[list[str]], k: int = 20, exclude_seen: bool = False) -> list[SessionResult]:
        """The top ``k`` items for each session (item ids in time order), in the order given."""
        known = [[self.index[item] for item in session if item in self.index] for session in sessions]
        results: list[SessionResult | None] = [None] * len(sessions)
        scored_rows = [row for row, indices in enumerate(known) if indices]
        for start in range(0, len(scored_rows), CHUNK):
            rows = scored_rows[start:start + CHUNK]
            for row, recommendations in zip(rows, self._top_items([known[row] for row in rows], k, exclude_seen)):
                results[row] = SessionResult(recommendations, len(sessions[row]) - len(known[row]))
        for row, indices in enumerate(known):
            if not indices:
                results[row] = SessionResult([(item, None) for item in self.popular[:k]], len(sessions[row]), True)
        return results

    def _top_items(self, sessions: list[list[int]], k: int, exclude_seen: bool) -> list[list[tuple[str, float]]]:
        """Each session's top ``k`` (item id, score): one GRU pass, one matrix product, one partial sort."""
        scores = self._hidden(sessions) @ self.table_t
        scores += self.bias
        if exclude_seen:
            for row, indices in enumerate(sessions):
                scores[row, indices] = -np.inf
        top, top_scores = top_k(scores, k)
        items, finite = self.items, np.isfinite(top_scores).all()
        return [
            [(items[i], s) for i, s in zip(row_items, row_scores) if finite or s != -np.inf]
            for row_items, row_scores in zip(top.tolist(), top_scores.tolist())
        ]

    def _hidden(self, sessions: list[list[int]]) -> np.ndarray:
        lengths = np.array([min(len(s), MAX_SESSION_LENGTH) for s in sessions], dtype=np.int32)
        batch = np.full((len(sessions), int(lengths.max())), self.padding_index, dtype=np.int32)
        for row, (session, length) in enumerate(zip(sessions, lengths)):
            batch[row, :length] = session[-length:]
        inputs = dict(zip(artifacts.SCORER_INPUTS, (batch, lengths)))
        return self.scorer.run([artifacts.SCORER_OUTPUT], inputs)[0]


def top_k(scores: np.ndarray, k: int, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the column indices and values of the ``k`` largest scores, best first: ``[N, min(k, columns)]``.

    Where the columns split into more than ``k`` blocks of ``block``, only the ``k`` blocks with the
    highest maxima can hold a row's top k (a block with any top-k score has fewer than ``k`` blocks
    above it), so one pass of block maxima narrows the partial sort to ``k * block`` candidates.
    """
    rows, columns = scores.shape
    k = min(k, columns)
    if columns % block or columns // block < 4 * k:
        candidates = np.argpartition(scores, columns - k, axis=1)[:, -k:] if k < columns else \
            np.broadcast_to(np.arange(columns), scores.shape)
    else:
        maxima = scores.reshape(rows, columns // block, block).max(axis=2)
        blocks = np.argpartition(maxima, maxima.shape[1] - k, axis=1)[:, -k:]
        columns_in_blocks = (blocks[:, :, None] * block + np.arange(block)).reshape(rows, -1)
        in_blocks = np.take_along_axis(scores, columns_in_blocks, axis=1)
        best = np.argpartition(in_blocks, in_blocks.shape[1] - k, axis=1)[:, -k:]
        candidates = np.take_along_axis(columns_in_blocks, best, axis=1)
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-candidate_scores, axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(candidate_scores, order, axis=1)
