"""Score sessions with the exported GRU4Rec: ONNX Runtime runs the GRU, NumPy scores every item.

One :meth:`Recommender.recommend` call scores a whole list of sessions:

- item ids map to indices through a dict; ids the model has never seen are skipped and counted;
- a session with no known item gets the most popular training items (``fallback``);
- the others run through ``scorer.onnx`` together. They are ordered by length first and cut where
  the length grows by more than :data:`LENGTH_SPREAD`, so a long session does not make every short
  one pay for its padding (the GRU runs every padded step); sessions longer than
  :data:`MAX_SESSION_LENGTH` keep only their latest items;
- the hidden states ``[N, H]`` meet the output layer in one matrix product per chunk of rows
  (``Recommender.chunk_rows``, sized by :data:`SCORES_PER_CHUNK`, bounds the score matrix's memory
  however many sessions a request holds), and :func:`top_k` picks each row's best ``k`` with
  ``np.argpartition`` without sorting the catalogue; ``exclude_seen`` and a session's
  :class:`ItemFilter` (business rules: items never to recommend, or the only ones allowed) set the
  scores of the items they rule out to -inf first, so the top ``k`` is taken among what remains;
- or, for large catalogues (a model directory with an :mod:`inference.search_index` index, used as
  ``top_k_search`` says), the index proposes each session's candidates from a few percent of the
  table, filters applied inside the search, and only those are scored exactly. Calls with ``exact``
  (batch jobs, where reading the table once per chunk of rows is cheap per session) always score
  every item.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import onnxruntime as ort

from inference import search_index, server_settings
from inference.search_index import SearchIndex
from model_code import artifacts

MAX_SESSION_LENGTH = 200
"""Only a session's last 200 known items go through the GRU (its state has long forgotten older ones);
every item still counts for ``exclude_seen``."""
LENGTH_SPREAD = 1.25
"""Sessions share one ONNX call while the longest is at most this many times the shortest."""
SCORES_PER_CHUNK = 1 << 24
"""Score matrix elements per chunk of rows (64 MB of float32): bounds memory for huge requests."""
MAX_CHUNK_ROWS = 4096
"""Sessions per chunk at most, whatever the catalogue size (bounds the GRU's working memory too)."""
FILTER_CACHE_SIZE = 4
"""Filters kept by their lists' contents, per process (each holds a mask of the catalogue)."""
FALLBACK_SCORE = 0.0
"""The score given to popularity-fallback recommendations, which have no model score."""
FEW_ALLOWED = 20_000
"""A filter allowing at most this many items has them scored exactly, even where the model has an index:
cheaper than a search, and an index finds few of them in the clusters it scans."""
TOP_K_SEARCHES = server_settings.TOP_K_SEARCHES
"""How single requests find their top k: ``auto`` uses the model directory's index where it has one and
the catalogue holds at least :data:`inference.search_index.INDEX_MIN_ITEMS` items; ``exact`` scores
every item; ``index`` requires the index."""


@dataclass(frozen=True, eq=False)
class ItemFilter:
    """Items a session may not be recommended: ``blocked``, a mask over the catalogue.

    Built by :meth:`Recommender.item_filter` from ``exclude_items`` / ``include_items`` id lists;
    ``unknown`` counts the listed ids the model does not know (ignored). Compared by identity, so the
    sessions of one request or job that share a list share one filter and one masking pass.
    """

    blocked: np.ndarray
    unknown: int

    @cached_property
    def allowed_bits(self) -> np.ndarray:
        """The items not blocked, as the search index's bitmap (built once per filter)."""
        return search_index.allowed_bitmap(self.blocked)

    @cached_property
    def allowed(self) -> np.ndarray:
        """The indices of the items not blocked, ascending (built once per filter)."""
        return np.flatnonzero(~self.blocked)


@dataclass(frozen=True)
class SessionResult:
    """One session's recommendations, best first, as (item id, score), and how many of its items were unknown.

    ``fallback`` is true where no item of the session was known and the most popular items answer;
    their score is :data:`FALLBACK_SCORE`.
    """

    recommendations: list[tuple[str, float]]
    unknown_items: int
    fallback: bool = False
    unknown_filter_items: int | None = None
    """Ids of the session's filter lists that the model does not know; None where it had no filter."""


class Recommender:
    """A model directory's scorer, output layer, item ids and popular items, loaded once per process."""

    def __init__(self, scorer: ort.InferenceSession, items: list[str], table: np.ndarray, bias: np.ndarray,
                 popular: Sequence[str], max_length: int = MAX_SESSION_LENGTH, search: SearchIndex | None = None):
        if not items:
            raise artifacts.ModelDirError(f"{artifacts.ITEMS_FILE} lists no items")
        if table.shape[0] != len(items) or bias.shape != (len(items),):
            raise artifacts.ModelDirError(
                f"the output layer ({artifacts.EMBEDDINGS_FILE} {table.shape}, {artifacts.BIAS_FILE} {bias.shape}) "
                f"does not match the {len(items)} items of {artifacts.ITEMS_FILE}"
            )
        self.scorer = scorer
        self.items = items
        self.item_ids = np.array(items, dtype=object)
        self.index = {item: i for i, item in enumerate(items)}
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.bias = np.ascontiguousarray(bias, dtype=np.float32)
        self.popular = [item for item in dict.fromkeys(popular) if item in self.index]
        self.padding_index = len(items)
        self.max_length = max_length
        self.chunk_rows = max(16, min(MAX_CHUNK_ROWS, SCORES_PER_CHUNK // len(items)))
        self.search = search
        self._filters: dict[tuple, ItemFilter] = {}

    @classmethod
    def load(cls, model_dir: str | os.PathLike, intra_op_threads: int = 1,
             max_length: int = MAX_SESSION_LENGTH, top_k_search: str = "auto") -> Recommender:
        """Read ``model_dir`` (:class:`model_code.artifacts.ModelDirError` names what is missing or wrong).

        ``intra_op_threads`` is ONNX Runtime's (and the index's) thread count for one call: 1 suits one
        worker process per core. ``top_k_search`` is one of :data:`TOP_K_SEARCHES`.
        """
        if top_k_search not in TOP_K_SEARCHES:
            raise ValueError(f"top_k_search must be one of {', '.join(TOP_K_SEARCHES)}, not {top_k_search!r}")
        model_dir = Path(model_dir)
        scorer_path = model_dir / artifacts.SCORER_FILE
        if not scorer_path.is_file():
            raise artifacts.ModelDirError(f"model directory file missing: {scorer_path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        try:
            scorer = ort.InferenceSession(str(scorer_path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ONNX Runtime raises its own exception types for unreadable graphs
            # ONNX Runtime's own message stays on the exception's cause (the server logs it, answers without it)
            raise artifacts.ModelDirError(f"{scorer_path} is not a usable ONNX model") from err
        table, bias = artifacts.read_output_layer(model_dir)
        popular = artifacts.read_metadata(model_dir).get("popular_items", [])
        search = None
        if top_k_search == "index" or (top_k_search == "auto" and len(table) >= search_index.INDEX_MIN_ITEMS):
            search = SearchIndex.load(model_dir, *table.shape)
            if search is None and top_k_search == "index":
                raise artifacts.ModelDirError(f"model directory file missing: {model_dir / search_index.INDEX_FILE}")
            search_index.faiss.omp_set_num_threads(intra_op_threads)
        return cls(scorer, artifacts.read_items(model_dir), table, bias, popular, max_length, search)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def warm_up(self) -> None:
        """Score one session and one fallback, so the first request pays no start-up cost; raises if scoring fails."""
        results = self.recommend([[self.items[0]], []], k=1)
        if len(results[0].recommendations) != 1 or not math.isfinite(results[0].recommendations[0][1]):
            raise artifacts.ModelDirError("the model's warm-up call gave no finite score")

    def item_filter(self, exclude: Sequence[str] | None = None, include: Sequence[str] | None = None) -> ItemFilter:
        """The filter ruling out ``exclude`` and, when ``include`` is given, every item not in it; unknown ids ignored.

        The last few filters are kept by their lists' contents: a shop sends the same in-stock list with
        request after request, and a cached filter costs a tuple comparison instead of a lookup per id.
        """
        key = (None if exclude is None else tuple(exclude), None if include is None else tuple(include))
        cached = self._filters.get(key)
        if cached is None:
            cached = self._build_filter(exclude, include)
            if len(self._filters) >= FILTER_CACHE_SIZE:
                self._filters.pop(next(iter(self._filters)))
            self._filters[key] = cached
        return cached

    def _build_filter(self, exclude: Sequence[str] | None, include: Sequence[str] | None) -> ItemFilter:
        index = self.index
        blocked = np.zeros(len(self.items), dtype=bool)
        unknown = 0
        if include is not None:
            kept = [index[item] for item in include if item in index]
            unknown += len(include) - len(kept)
            blocked[:] = True
            blocked[kept] = False
        if exclude is not None:
            ruled_out = [index[item] for item in exclude if item in index]
            unknown += len(exclude) - len(ruled_out)
            blocked[ruled_out] = True
        return ItemFilter(blocked, unknown)

    def recommend(self, sessions: Sequence[Sequence[str]], k: int = 20, exclude_seen: bool = False,
                  filters: Sequence[ItemFilter | None] | None = None, exact: bool = False) -> list[SessionResult]:
        """The top ``k`` items (at most all items) for each session of item ids in time order, in the order given.

        ``exclude_seen`` leaves out the items of the session itself; ``filters``, one per session (or
        None), leaves out the items each session's filter rules out. Fewer than ``k`` come back only
        where fewer than ``k`` items remain. ``exact`` scores every item even where the model has a
        search index (whose answers may miss a few of the true top ``k``).
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, not {k!r}")
        filters = list(filters) if filters is not None else [None] * len(sessions)
        if len(filters) != len(sessions):
            raise ValueError(f"{len(filters)} filters for {len(sessions)} sessions")
        index = self.index
        known = [[index[item] for item in session if item in index] for session in sessions]
        results: list[SessionResult | None] = [None] * len(known)
        scored = sorted((row for row, indices in enumerate(known) if indices),
                        key=lambda row: min(len(known[row]), self.max_length))
        for start in range(0, len(scored), self.chunk_rows):
            rows = scored[start:start + self.chunk_rows]
            chunk = [known[row] for row in rows]
            rank = self._rank if exact or self.search is None else self._search
            top, top_scores = rank(self._hidden(chunk), chunk if exclude_seen else None,
                                   [filters[row] for row in rows], k)
            ranked = zip(self.item_ids[top].tolist(), top_scores.tolist())
            for row, (ids, values) in zip(rows, ranked):
                recommendations = list(zip(ids, values))
                if values[-1] == -math.inf:  # fewer than k items left once the ruled-out ones are out
                    recommendations = [pair for pair in recommendations if pair[1] != -math.inf]
                results[row] = SessionResult(recommendations, len(sessions[row]) - len(known[row]),
                                             unknown_filter_items=_unknown(filters[row]))
        fallbacks: dict[int, list[tuple[str, float]]] = {}  # one list per distinct filter, shared by its rows
        for row, indices in enumerate(known):
            if not indices:
                # none of the session's items is known, so none of them is among the popular items either
                key = id(filters[row])
                if key not in fallbacks:
                    fallbacks[key] = self._fallback(k, filters[row])
                results[row] = SessionResult(list(fallbacks[key]), len(sessions[row]), fallback=True,
                                             unknown_filter_items=_unknown(filters[row]))
        return results

    def _fallback(self, k: int, item_filter: ItemFilter | None) -> list[tuple[str, float]]:
        """The most popular items that ``item_filter`` allows, at most ``k``."""
        popular = self.popular
        if item_filter is not None:
            popular = [item for item in popular if not item_filter.blocked[self.index[item]]]
        return [(item, FALLBACK_SCORE) for item in popular[:k]]

    def _hidden(self, sessions: list[list[int]]) -> np.ndarray:
        """Final GRU states ``[N, H]`` of sessions sorted by length, in that order."""
        lengths = [min(len(session), self.max_length) for session in sessions]
        parts = []
        for start, stop in _length_groups(lengths):
            width = lengths[stop - 1]
            batch = np.full((stop - start, width), self.padding_index, dtype=np.int32)
            for row, session in enumerate(sessions[start:stop]):
                tail = session[-width:]
                batch[row, :len(tail)] = tail
            inputs = dict(zip(artifacts.SCORER_INPUTS, (batch, np.array(lengths[start:stop], dtype=np.int32))))
            parts.append(self.scorer.run([artifacts.SCORER_OUTPUT], inputs)[0])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _rank(self, hidden: np.ndarray, seen: list[list[int]] | None, filters: list[ItemFilter | None],
              k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = hidden @ self.table.T
        scores += self.bias
        if seen is not None:
            rows = np.repeat(np.arange(len(seen)), [len(indices) for indices in seen])
            scores[rows, np.concatenate(seen)] = -np.inf
        _rule_out(scores, filters)
        return top_k(scores, k)

    def _search(self, hidden: np.ndarray, seen: list[list[int]] | None, filters: list[ItemFilter | None],
                k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_rank`'s answer from the index's candidates, scored exactly; a row that gets fewer than
        ``k`` (a filter allowing few items) is ranked exactly instead."""
        k = min(k, self.n_items)
        top = np.zeros((len(hidden), k), dtype=np.int64)
        values = np.full((len(hidden), k), -np.inf, dtype=np.float32)
        groups: dict[int, tuple[ItemFilter | None, list[int]]] = {}
        for row, item_filter in enumerate(filters):
            groups.setdefault(id(item_filter), (item_filter, []))[1].append(row)
        for item_filter, rows in groups.values():
            if item_filter is not None and len(item_filter.allowed) <= FEW_ALLOWED:
                top[rows], values[rows] = self._rank_allowed(hidden[rows], None if seen is None else
                                                             [seen[row] for row in rows], item_filter, k)
                continue
            extra = max(len(seen[row]) for row in rows) if seen is not None else 0
            allowed = None if item_filter is None else item_filter.allowed_bits
            found = self.search.search(hidden[rows], min(k + extra, self.n_items), allowed)
            for row, candidates in zip(rows, found):
                candidates = candidates[candidates >= 0]
                if seen is not None:
                    candidates = candidates[~np.isin(candidates, seen[row])]
                if len(candidates) < k:
                    one = self._rank(hidden[row:row + 1], None if seen is None else [seen[row]], [item_filter], k)
                    top[row], values[row] = one[0][0], one[1][0]
                    continue
                scores = self.table[candidates] @ hidden[row] + self.bias[candidates]
                best = np.lexsort((candidates, -scores))[:k]
                top[row], values[row] = candidates[best], scores[best]
        return top, values

    def _rank_allowed(self, hidden: np.ndarray, seen: list[list[int]] | None, item_filter: ItemFilter,
                      k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_rank` over the few items ``item_filter`` allows: only their rows are read and scored."""
        columns = item_filter.allowed
        top = np.zeros((len(hidden), k), dtype=np.int64)
        values = np.full((len(hidden), k), -np.inf, dtype=np.float32)
        if len(columns) == 0:
            return top, values
        scores = hidden @ self.table[columns].T
        scores += self.bias[columns]
        if seen is not None:
            for row, indices in enumerate(seen):
                scores[row, np.isin(columns, indices)] = -np.inf
        best, best_scores = top_k(scores, k)
        top[:, :best.shape[1]], values[:, :best.shape[1]] = columns[best], best_scores
        return top, values


def _rule_out(scores: np.ndarray, filters: list[ItemFilter | None]) -> None:
    """Set to -inf, row by row, the columns each row's filter blocks; rows sharing a filter in one step."""
    rows_of: dict[int, tuple[ItemFilter, list[int]]] = {}
    for row, item_filter in enumerate(filters):
        if item_filter is not None:
            rows_of.setdefault(id(item_filter), (item_filter, []))[1].append(row)
    for item_filter, rows in rows_of.values():
        if len(rows) == len(scores):
            np.copyto(scores, -np.inf, where=item_filter.blocked)
        else:
            part = scores[rows]
            np.copyto(part, -np.inf, where=item_filter.blocked)
            scores[rows] = part


def _unknown(item_filter: ItemFilter | None) -> int | None:
    return None if item_filter is None else item_filter.unknown


def _length_groups(lengths: list[int]) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` runs of ascending ``lengths`` whose longest is at most LENGTH_SPREAD x the shortest."""
    start = 0
    for position in range(1, len(lengths) + 1):
        if position == len(lengths) or lengths[position] > lengths[start] * LENGTH_SPREAD:
            yield start, position
            start = position


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns and values of the ``min(k, columns)`` largest scores, best first (ties: lower column first).

    Which of several equal scores at the k-th place is kept is not defined. Large catalogues take a
    shortcut (:func:`_candidates`) that reads each row once and partitions only a few columns.
    """
    rows, columns = scores.shape
    k = min(k, columns)
    row = np.arange(rows)[:, None]
    if k == columns:
        candidates = np.broadcast_to(np.arange(columns), scores.shape)
    elif columns >= 256 * k:
        candidates = _candidates(scores, k)
    else:
        candidates = np.argpartition(scores, columns - k, axis=1)[:, columns - k:]
    values = scores[row, candidates]
    if candidates.shape[1] > k:
        best = np.argpartition(values, values.shape[1] - k, axis=1)[:, -k:]
        candidates, values = candidates[row, best], values[row, best]
    order = np.lexsort((candidates, -values), axis=1)
    return candidates[row, order], values[row, order]


def _candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, a few columns that surely hold the top ``k``: the columns of the k strided groups with the
    highest maxima.

    The columns split into ``groups`` interleaved groups (column c in group c % groups). A column in
    the top k has fewer than k larger scores, so fewer than k groups have a larger maximum: its own
    group is among the k with the highest maxima. The group maxima cost one vectorised pass; with
    ``groups`` about sqrt(k x columns), the partitions run over about 2 sqrt(k x columns) values a row.
    """
    rows, columns = scores.shape
    groups = math.isqrt(k * columns)
    size = columns // groups
    covered = size * groups
    maxima = scores[:, :covered].reshape(rows, size, groups).max(axis=1)
    best_groups = np.argpartition(maxima, groups - k, axis=1)[:, groups - k:]
    candidates = (best_groups[:, :, None] + np.arange(0, covered, groups)).reshape(rows, -1)
    if covered < columns:  # the last few columns belong to no group: always candidates
        rest = np.broadcast_to(np.arange(covered, columns), (rows, columns - covered))
        candidates = np.concatenate([candidates, rest], axis=1)
    return candidates
