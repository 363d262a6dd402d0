"""Group click events into sessions, one JSON line each, ready for Batch Transform.

    python -m model_code.data.sessions EVENTS --out sessions.jsonl [reading options]   # or sessions.jsonl.gz

EVENTS is what :func:`model_code.data.event_table.read_events` reads (a file, a folder of files or an
``s3://`` URI), with the same reading options and bad-row policy (see
:mod:`model_code.data.event_rules`). Each output line is ``{"session_id": ..., "items": [...]}``: the
session's events ordered by time, ties broken by the path of the file they were read from, then
by item id; only the latest :data:`MAX_ITEMS` are kept, and a session of one event is kept too.
Sessions come in the order of their first appearance in the input.

``infra/sql/group_sessions.sql`` is the same grouping for Athena; the tests compare the two.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from model_code.artifacts import file_mode
from model_code.data.event_rules import SESSION_ITEMS_KEPT as MAX_ITEMS
from model_code.data.event_rules import ReadOptions, add_read_options, read_options
from model_code.data.event_table import EventCodes, block_starts, read_event_codes
from model_code.data.events import DataError

SESSIONS_PER_CHUNK = 100_000
"""Sessions turned into Python objects at a time."""


def group_sessions(events: EventCodes, max_items: int = MAX_ITEMS) -> Iterator[dict]:
    """``{"session_id", "items"}`` per session of ``events`` (read with ``with_files=True``), in order.

    The events are sorted as integer arrays (session code, time, file, rank of the item id as a
    string); ids become Python strings only for one chunk of sessions at a time.
    """
    item_rank = np.empty(len(events.item_ids), dtype=np.int64)
    item_rank[pc.sort_indices(events.item_ids).to_numpy()] = np.arange(len(events.item_ids))
    order = np.lexsort((item_rank[events.items], events.files, events.times, events.sessions))
    items = events.items[order]
    sessions = events.sessions[order]
    del order, item_rank
    starts = block_starts(sessions)
    ends = np.append(starts[1:], len(sessions))
    kept = np.maximum(starts, ends - max_items)
    names = events.item_ids.to_pylist()
    for first in range(0, len(starts), SESSIONS_PER_CHUNK):
        last = min(first + SESSIONS_PER_CHUNK, len(starts))
        ids = events.session_ids.take(sessions[starts[first:last]]).to_pylist()
        for session_id, begin, end in zip(ids, kept[first:last].tolist(), ends[first:last].tolist()):
            yield {"session_id": session_id, "items": [names[code] for code in items[begin:end].tolist()]}


def write_sessions(path: str | os.PathLike, sessions) -> int:
    """One JSON object per line (UTF-8, non-ASCII kept as it is), written atomically; gzip where the name
    ends in ``.gz``; returns the count."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    opener = gzip.open if path.name.endswith(".gz") else open
    count = 0
    try:
        with opener(partial, "wt", encoding="utf-8", newline="\n") as handle:
            for session in sessions:
                handle.write(json.dumps(session, ensure_ascii=False) + "\n")
                count += 1
        os.chmod(partial, file_mode())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_code.data.sessions", description=__doc__.split("\n")[0])
    parser.add_argument("events", help="event file, folder of event files, or s3:// URI")
    parser.add_argument("--out", required=True, help="the JSON-lines file to write (gzip where it ends in .gz)")
    add_read_options(parser)
    args = parser.parse_args(argv)
    options: ReadOptions = read_options(args)
    try:
        events = read_event_codes(args.events, options, with_files=True)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    count = write_sessions(args.out, group_sessions(events))
    print(f"{args.out}: {count} sessions from {len(events)} events "
          f"({events.attrs['rows_read'] - len(events)} rows skipped)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
