"""Group click events into sessions, one JSON line each, ready for Batch Transform.

    python -m model_code.sessions EVENTS --out sessions.jsonl [reading options]   # or sessions.jsonl.gz

EVENTS is what :func:`model_code.events.read_events` reads (a file, a folder of files or an
``s3://`` URI), with the same reading options and bad-row policy (see
:mod:`model_code.event_rules`). Each output line is ``{"session_id": ..., "items": [...]}``: the
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
from pathlib import Path

import pandas as pd

from model_code.artifacts import file_mode
from model_code.event_rules import SESSION_ITEMS_KEPT as MAX_ITEMS
from model_code.event_rules import ReadOptions, add_read_options, read_options
from model_code.events import FILE, ITEM, SESSION, TIME, DataError, read_events


def group_sessions(events: pd.DataFrame, max_items: int = MAX_ITEMS) -> list[dict]:
    """``{"session_id", "items"}`` per session of ``events`` (the frame of ``read_events(..., with_files=True)``)."""
    first_seen = {session: rank for rank, session in enumerate(pd.unique(events[SESSION]))}
    ordered = events.assign(_rank=events[SESSION].map(first_seen)).sort_values(
        ["_rank", TIME, FILE, ITEM], kind="stable")
    return [{"session_id": group[SESSION].iloc[0], "items": group[ITEM].tolist()[-max_items:]}
            for _, group in ordered.groupby("_rank", sort=True)]


def write_sessions(path: str | os.PathLike, sessions: list[dict]) -> None:
    """One JSON object per line (UTF-8, non-ASCII kept as it is), written atomically; gzip where the name
    ends in ``.gz``."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(partial, "wt", encoding="utf-8", newline="\n") as handle:
        for session in sessions:
            handle.write(json.dumps(session, ensure_ascii=False) + "\n")
    os.chmod(partial, file_mode())
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_code.sessions", description=__doc__.split("\n")[0])
    parser.add_argument("events", help="event file, folder of event files, or s3:// URI")
    parser.add_argument("--out", required=True, help="the JSON-lines file to write (gzip where it ends in .gz)")
    add_read_options(parser)
    args = parser.parse_args(argv)
    options: ReadOptions = read_options(args)
    try:
        events = read_events(args.events, options, with_files=True)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    sessions = group_sessions(events)
    write_sessions(args.out, sessions)
    print(f"{args.out}: {len(sessions)} sessions from {len(events)} events "
          f"({events.attrs['rows_read'] - len(events)} rows skipped)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
