"""Next-item evaluation: Recall@k and MRR@k against all items.

Every next event of every test session is one test case: the model has seen
the session up to the current event (hidden state zero at the session start)
and ranks all items; the target's rank decides the metrics. Recall@k is the
share of cases whose target ranks within k; MRR@k the mean of 1/rank within
k (0 beyond). Ties between the target's score and other scores count as:

- ``standard``:     rank = 1 + #(score > target)
- ``conservative``: rank = #(score >= target) (every tie ranks ahead of the target)
- ``median``:       rank = 1 + #(score > target) + (#(score == target) - 1) / 2
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from model_code.data.session_batches import SessionArrays, session_parallel_steps

CUTOFFS = (1, 5, 10, 20)
TIE_MODES = ("standard", "conservative", "median")


def target_ranks(scores: np.ndarray, targets: np.ndarray, ties: str = "conservative") -> np.ndarray:
    """1-based rank (float64 [N]) of ``targets[i]`` among ``scores[i]`` (scores [N, M])."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(f"scores must be [N, M] and targets [N]; got {scores.shape} and {targets.shape}")
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    if np.isnan(target_scores).any():
        raise ValueError("a target's score is NaN: the model produced invalid scores")
    if ties == "conservative":
        return np.count_nonzero(scores >= target_scores, axis=1).astype(np.float64)
    greater = np.count_nonzero(scores > target_scores, axis=1).astype(np.float64)
    if ties == "standard":
        return 1.0 + greater
    equal = np.count_nonzero(scores == target_scores, axis=1)
    return 1.0 + greater + (equal - 1) / 2.0


class RankingMetrics:
    """Accumulates Recall@k and MRR@k over batches of ranks."""

    def __init__(self, cutoffs: Sequence[int] = CUTOFFS):
        if not cutoffs or any(int(k) < 1 for k in cutoffs):
            raise ValueError(f"cutoffs must be positive integers, got {cutoffs!r}")
        self.cutoffs = tuple(int(k) for k in cutoffs)
        self._hits = np.zeros(len(self.cutoffs), dtype=np.int64)
        self._reciprocal = np.zeros(len(self.cutoffs), dtype=np.float64)
        self.n_events = 0

    def add(self, ranks: np.ndarray) -> None:
        ranks = np.asarray(ranks, dtype=np.float64)
        for j, k in enumerate(self.cutoffs):
            within = ranks <= k
            self._hits[j] += int(within.sum())
            self._reciprocal[j] += float((1.0 / ranks[within]).sum())
        self.n_events += len(ranks)

    def result(self) -> dict[str, float]:
        """{"recall@k": .., ...,  "mrr@k": ..} for every cutoff; all 0.0 before any event."""
        n = max(self.n_events, 1)
        out = {f"recall@{k}": float(self._hits[j] / n) for j, k in enumerate(self.cutoffs)}
        out.update({f"mrr@{k}": float(self._reciprocal[j] / n) for j, k in enumerate(self.cutoffs)})
        return out


@runtime_checkable
class NextItemScorer(Protocol):
    """A model that scores every item as the next one, step by step over B session slots.

    ``score`` is called once per step with the current item of each slot and
    the slots' reset flags (a new session starts in that slot: forget its
    state first); it returns float32 ``[B, n_items]``. The scorer keeps its own
    per-slot state between calls.
    """

    n_items: int

    def score(self, inputs: np.ndarray, resets: np.ndarray) -> np.ndarray: ...


def evaluate(
    scorer: NextItemScorer,
    test: SessionArrays,
    batch_size: int = 512,
    cutoffs: Sequence[int] = CUTOFFS,
    ties: str = "conservative",
    progress: bool = True,
) -> dict[str, float]:
    """Recall@k and MRR@k of ``scorer`` over every next event of ``test``, ranked against all items."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
    steps = session_parallel_steps(test, batch_size)
    metrics = RankingMetrics(cutoffs)
    bar = tqdm(total=steps.n_examples, desc="evaluating", unit="event", disable=not progress, mininterval=0.5)
    with bar:
        for t in range(steps.n_steps):
            scores = scorer.score(steps.inputs[t], steps.resets[t])
            valid = steps.valid[t]
            if scores.shape != (batch_size, scorer.n_items):
                raise ValueError(
                    f"scorer returned scores of shape {scores.shape}, expected {(batch_size, scorer.n_items)}"
                )
            if valid.all():
                ranks = target_ranks(scores, steps.targets[t], ties)
            else:
                ranks = target_ranks(scores[valid], steps.targets[t][valid], ties)
            metrics.add(ranks)
            bar.update(len(ranks))
    return metrics.result()
