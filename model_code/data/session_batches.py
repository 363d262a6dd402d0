"""Sessions as flat arrays, and the session-parallel mini-batch schedule of GRU4Rec.

:class:`SessionArrays` holds the events of many sessions as one item-index
array plus session offsets. :func:`session_parallel_steps` lays a whole epoch
out as ``[T, B]`` arrays: B slots run side by side; at each step slot b feeds
the current event of its session and its target is that session's next event.
When a slot's session has no next-but-one event, the next unread session (in
order of first event) takes the slot at the following step, flagged by
``resets``. Sessions with a single event yield no example and are skipped.
When no session is left a slot stays invalid until every slot is done.

The schedule is precomputed with NumPy, so training can feed whole blocks of
steps (:meth:`EpochSteps.blocks`) to a compiled loop.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from model_code.data.event_rules import ITEM, SESSION, TIME
from model_code.data.event_table import block_starts
from model_code.data.item_index import ItemIndex


@dataclass(frozen=True)
class SessionArrays:
    """Events grouped by session, sessions ordered by first event time.

    ``items[offsets[s]:offsets[s + 1]]`` are the item indices of session s in
    time order. ``dropped_unknown`` counts the events dropped by
    :meth:`from_events` because their item is not in the index.
    """

    items: np.ndarray  # int32 [E]
    offsets: np.ndarray  # int64 [S + 1]
    session_ids: np.ndarray | None = None  # object [S], the ids as read
    dropped_unknown: int = 0

    def __post_init__(self):
        if (
            self.offsets.ndim != 1
            or len(self.offsets) < 1
            or self.offsets[0] != 0
            or self.offsets[-1] != len(self.items)
        ):
            raise ValueError("offsets must start at 0 and end at len(items)")
        if np.any(np.diff(self.offsets) < 0):
            raise ValueError("offsets must not decrease")

    @classmethod
    def from_events(cls, events: pd.DataFrame, index: ItemIndex) -> SessionArrays:
        """Map ``events`` (columns SessionId, ItemId, Time) through ``index``; drop and count unknown items."""
        items, known = index.lookup(events[ITEM])
        sessions = events[SESSION].to_numpy(dtype=object)[known]
        times = events[TIME].to_numpy(dtype=np.float64)[known]
        items = items[known]
        codes, uniques = pd.factorize(sessions)
        first_time = np.full(len(uniques), np.inf)
        np.minimum.at(first_time, codes, times)
        session_rank = np.empty(len(uniques), dtype=np.int64)
        session_rank[np.lexsort((np.arange(len(uniques)), first_time))] = np.arange(len(uniques))
        ranks = session_rank[codes]
        order = np.lexsort((times, ranks))
        lengths = np.bincount(ranks, minlength=len(uniques))
        offsets = np.zeros(len(uniques) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        session_ids = np.empty(len(uniques), dtype=object)
        session_ids[session_rank] = np.asarray(uniques, dtype=object)
        return cls(
            items=items[order].astype(np.int32),
            offsets=offsets,
            session_ids=session_ids,
            dropped_unknown=int((~known).sum()),
        )

    @classmethod
    def from_codes(cls, events, index: ItemIndex) -> SessionArrays:
        """The same arrays as :meth:`from_events`, from :class:`~model_code.data.event_table.EventCodes`.

        The events are grouped by session and time-ordered already, so each session is one block of
        the arrays and only the blocks are reordered (by first event time, ties by first appearance);
        no per-event string is made. ``session_ids`` is left out: training does not use it.
        """
        rows, known_ids = index.lookup(np.asarray(events.item_ids.to_pylist(), dtype=object))
        rows = rows[events.items]
        known = known_ids[events.items]
        sessions, times = events.sessions[known], events.times[known]
        starts = block_starts(sessions)
        lengths = np.diff(np.append(starts, len(sessions)))
        order = np.argsort(times[starts], kind="stable")
        offsets = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(lengths[order], out=offsets[1:])
        gather = np.repeat(starts[order] - offsets[:-1], lengths[order]) + np.arange(len(sessions))
        return cls(items=rows[known][gather], offsets=offsets, dropped_unknown=int((~known).sum()))

    @classmethod
    def from_lists(cls, sessions: list[list[int]]) -> SessionArrays:
        """Sessions given as lists of item indices, in order (handy for tests and small inputs)."""
        lengths = np.array([len(s) for s in sessions], dtype=np.int64)
        offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.array([i for s in sessions for i in s], dtype=np.int32)
        return cls(items=items, offsets=offsets)

    @property
    def n_sessions(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_events(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_examples(self) -> int:
        """Events with a next event in their session: the (input, target) pairs of one epoch."""
        return int(np.maximum(self.lengths - 1, 0).sum())

    @property
    def n_single_event_sessions(self) -> int:
        """Sessions of one event: they give no (input, target) pair, so they train and test nothing."""
        return int((self.lengths == 1).sum())

    def sessions_summary(self) -> str:
        """``701 sessions (85 of one event, which count for nothing)``, for data summaries."""
        single = self.n_single_event_sessions
        return f"{self.n_sessions} sessions" + (f" ({single} of one event, which count for nothing)" if single else "")

    def session(self, s: int) -> np.ndarray:
        return self.items[self.offsets[s]:self.offsets[s + 1]]

    def item_counts(self, n_items: int) -> np.ndarray:
        """Events per item index (int64 [n_items])."""
        return np.bincount(self.items, minlength=n_items).astype(np.int64)

    def stats(self) -> dict:
        return {
            "events": self.n_events,
            "sessions": self.n_sessions,
            "examples": self.n_examples,
            "single_event_sessions": self.n_single_event_sessions,
            "dropped_unknown_items": self.dropped_unknown,
        }


@dataclass(frozen=True)
class EpochSteps:
    """One epoch of session-parallel steps, each array ``[T, B]``.

    ``resets[t, b]``: slot b starts a new session at step t (zero its hidden
    state first). ``valid[t, b]`` is False where slot b has no session left;
    there ``inputs`` and ``targets`` are 0.
    """

    inputs: np.ndarray  # int32 [T, B]
    targets: np.ndarray  # int32 [T, B]
    resets: np.ndarray  # bool [T, B]
    valid: np.ndarray  # bool [T, B]

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[0]

    @property
    def batch_size(self) -> int:
        return self.inputs.shape[1]

    @property
    def n_examples(self) -> int:
        return int(self.valid.sum())

    def blocks(self, block_steps: int) -> Iterator[EpochSteps]:
        """Consecutive slices of exactly ``block_steps`` steps; the last is padded with invalid steps."""
        if block_steps < 1:
            raise ValueError(f"block_steps must be >= 1, got {block_steps}")
        for start in range(0, self.n_steps, block_steps):
            block = EpochSteps(*(array[start:start + block_steps] for array in self._arrays()))
            missing = block_steps - block.n_steps
            if missing:
                block = EpochSteps(
                    *(np.concatenate([a, np.zeros((missing,) + a.shape[1:], a.dtype)]) for a in block._arrays())
                )
            yield block

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return self.inputs, self.targets, self.resets, self.valid


def session_parallel_steps(data: SessionArrays, batch_size: int) -> EpochSteps:
    """Lay out one epoch of ``data`` as session-parallel steps over ``batch_size`` slots."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = data.lengths
    used = np.flatnonzero(lengths >= 2)
    n_steps_of = lengths[used] - 1
    slots, starts = _assign_slots(n_steps_of, batch_size)
    total = int((starts + n_steps_of).max()) if len(used) else 0
    inputs = np.zeros((total, batch_size), dtype=np.int32)
    targets = np.zeros((total, batch_size), dtype=np.int32)
    resets = np.zeros((total, batch_size), dtype=bool)
    valid = np.zeros((total, batch_size), dtype=bool)
    # one row per example: which session, which position inside it
    example_session = np.repeat(np.arange(len(used)), n_steps_of)
    first_example = np.cumsum(n_steps_of) - n_steps_of
    position = np.arange(len(example_session)) - np.repeat(first_example, n_steps_of)
    event = data.offsets[used][example_session] + position
    rows = starts[example_session] + position
    cols = slots[example_session]
    inputs[rows, cols] = data.items[event]
    targets[rows, cols] = data.items[event + 1]
    valid[rows, cols] = True
    resets[starts, slots] = True
    return EpochSteps(inputs, targets, resets, valid)


def _assign_slots(n_steps_of: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot and start step of each session: the next session takes the slot that frees first.

    Slots that free at the same step are filled in slot order. A heap of
    (free step, slot) does this in O(S log B); S is the number of sessions.
    """
    n = len(n_steps_of)
    slots = np.empty(n, dtype=np.int64)
    starts = np.empty(n, dtype=np.int64)
    first = min(n, batch_size)
    slots[:first] = np.arange(first)
    starts[:first] = 0
    heap = [(int(d), b) for b, d in enumerate(n_steps_of[:first].tolist())]
    heapq.heapify(heap)
    durations = n_steps_of.tolist()
    for s in range(first, n):
        free_at, slot = heap[0]
        slots[s] = slot
        starts[s] = free_at
        heapq.heapreplace(heap, (free_at + durations[s], slot))
    return slots, starts
