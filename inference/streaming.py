"""Score parsed requests with the engine, and write a JSON-lines answer a chunk at a time.

The server's ``/invocations`` and ``python -m model_code.commands.recommend`` both answer through these
functions, so a file scored on a laptop gets the lines the endpoint would send. Nothing here
imports Flask, TensorFlow or Keras.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from inference import contracts
from inference.contracts import SessionRequest
from inference.engine import ItemFilter, Recommender, SessionResult

STREAM_CHUNK_RECOMMENDATIONS = 50_000
"""Recommendations asked for (records x k) per chunk of a streamed JSON-lines answer (a few MB of it)."""


@dataclass
class Counts:
    """What a streamed answer scored, summed over its chunks: sessions, their items, the unknown ones."""

    sessions: int = 0
    items: int = 0
    unknown: int = 0


def stream_json_lines(engine: Recommender, records: list, known_filters: dict[tuple[int, int], ItemFilter],
                      model_version: str, counts: Counts | None = None) -> Iterator[bytes]:
    """The JSON-lines answer to ``records`` a chunk at a time, each chunk scored as it is written.

    ``records`` empties as it goes, so each chunk's parsed sessions are freed with its answer;
    ``counts``, where given, adds up what was scored.
    """
    counts = counts if counts is not None else Counts()
    records.reverse()  # popped from the end: the first record first
    while records:
        chunk = _next_chunk(records)
        scored = [record for record in chunk if isinstance(record, SessionRequest)]
        results = score(engine, scored, known_filters, exact=True)
        counts.sessions += len(scored)
        counts.items += sum(len(session.items) for session in scored)
        counts.unknown += sum(result.unknown_items for result in results)
        yield contracts.json_lines_answer(chunk, results, model_version)


def _next_chunk(reversed_records: list) -> list:
    """Records taken off the end of ``reversed_records`` until they ask for STREAM_CHUNK_RECOMMENDATIONS
    recommendations (one record at least)."""
    chunk, asked = [], 0
    while reversed_records and (not chunk or asked + _asked(reversed_records[-1]) <= STREAM_CHUNK_RECOMMENDATIONS):
        record = reversed_records.pop()
        asked += _asked(record)
        chunk.append(record)
    return chunk


def _asked(record) -> int:
    return record.k if isinstance(record, SessionRequest) else 0


def score(engine: Recommender, sessions: Sequence[SessionRequest],
          known_filters: dict[tuple[int, int], ItemFilter] | None = None, exact: bool = False) -> list[SessionResult]:
    """Engine results in the order of ``sessions``: one batched call per distinct (k, exclude_seen).

    ``exact``: score every item even where the model has a search index (JSON lines: batch jobs).

    Sessions that share their filter lists (the request's or the job's) share one engine filter;
    ``known_filters`` holds those already built, by the lists' identity.
    """
    filters = dict(known_filters or {})
    groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for position, session in enumerate(sessions):
        groups[(session.k, session.exclude_seen)].append(position)
    results: list = [None] * len(sessions)
    for (k, exclude_seen), positions in groups.items():
        chosen = [sessions[p] for p in positions]
        answers = engine.recommend([session.items for session in chosen], k=k, exclude_seen=exclude_seen,
                                   filters=[_filter(engine, session, filters) for session in chosen], exact=exact)
        for position, answer in zip(positions, answers):
            results[position] = answer
    return results


def _filter(engine: Recommender, session: SessionRequest, built: dict) -> ItemFilter | None:
    if not session.filtered:
        return None
    key = lists_key(session)
    if key not in built:
        built[key] = engine.item_filter(session.exclude_items, session.include_items)
    return built[key]


def lists_key(session: SessionRequest) -> tuple[int, int]:
    """The identity of a session's two filter lists: lists shared by many sessions are the same objects."""
    return id(session.exclude_items), id(session.include_items)


def job_filters(engine: Recommender, defaults: SessionRequest | None) -> dict[tuple[int, int], ItemFilter]:
    """The engine filter of a job's own lists (``filters.json``), by the lists' identity; empty without one."""
    if defaults is None:
        return {}
    return {lists_key(defaults): engine.item_filter(defaults.exclude_items, defaults.include_items)}
