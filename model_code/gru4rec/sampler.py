"""Negative sampling: extra negatives drawn in proportion to popularity ** alpha.

GRU4Rec scores each mini-batch step against the batch's own targets plus
``n_sample`` extra items shared by the whole batch. Drawing them one step at a
time would put the host on the hot path, so :class:`PopularitySampler` draws a
whole block of steps at once (inverse-CDF sampling: ``searchsorted`` of uniform
draws on the cumulative distribution).

Draws are reproducible and resumable: block ``k`` is drawn from a generator
seeded with ``(seed, k)``, so the sampler's whole state is the block counter.
"""
from __future__ import annotations

import numpy as np


class PopularitySampler:
    """Draws item indices with probability ``count ** alpha / sum(count ** alpha)``."""

    def __init__(self, item_counts: np.ndarray, alpha: float, seed: int = 0):
        counts = np.asarray(item_counts, dtype=np.float64)
        if counts.ndim != 1 or len(counts) == 0:
            raise ValueError("item_counts must be a non-empty 1-d array")
        if np.any(counts < 0) or not np.all(np.isfinite(counts)):
            raise ValueError("item_counts must be finite and >= 0")
        if counts.sum() <= 0:
            raise ValueError("item_counts must not all be zero")
        weights = np.where(counts > 0, counts ** alpha, 0.0)
        self.probabilities = weights / weights.sum()
        self._cdf = np.cumsum(self.probabilities)
        self._cdf[-1] = 1.0
        self.seed = int(seed)
        self.counter = 0

    @property
    def n_items(self) -> int:
        return len(self.probabilities)

    def draw(self, n_steps: int, n_sample: int) -> np.ndarray:
        """int32 [n_steps, n_sample]: the extra negatives of the next ``n_steps`` steps."""
        rng = np.random.default_rng([self.seed, self.counter])
        self.counter += 1
        uniform = rng.random((n_steps, n_sample))
        drawn = np.searchsorted(self._cdf, uniform, side="right")
        return np.minimum(drawn, self.n_items - 1).astype(np.int32)

    def get_state(self) -> dict[str, np.ndarray]:
        return {
            "sampler_seed": np.array(self.seed, dtype=np.int64),
            "sampler_counter": np.array(self.counter, dtype=np.int64),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.seed = int(state["sampler_seed"])
        self.counter = int(state["sampler_counter"])


def log_item_counts(item_counts: np.ndarray) -> np.ndarray:
    """float32 log of each item's count; an item never seen gets the log of the smallest positive count.

    The logQ correction's input (:func:`model_code.gru4rec.losses.logq_correction`).
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    floor = counts[counts > 0].min()
    return np.log(np.maximum(counts, floor)).astype(np.float32)
