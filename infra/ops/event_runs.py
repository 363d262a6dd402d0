"""Scoring raw events: put a run's event files under `events/incoming/<run>/`, then its `_SUCCESS` marker.

The marker's "Object Created" event starts the events state machine (EventBridge), which groups the
run on Athena into `sessions/grouped/<run>/`, scores it into `sessions/scored/<run>/` and writes
`sessions/scored/<run>/summary.json`. A run's folder must be new: the grouped folder is written by
Athena's UNLOAD, which refuses a destination that holds objects.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from infra.layout import GROUPED_SESSIONS_PREFIX, INCOMING_EVENTS_PREFIX, RUN_MARKER, SCORED_SESSIONS_PREFIX
from infra.ops.errors import OpsError
from infra.ops.event_files import TableLayout, rewrite, rewritten_name
from infra.session_query import check_run

TEXT_SUFFIXES = (".tsv", ".csv", ".txt", ".tsv.gz", ".csv.gz", ".txt.gz")
"""What the Athena table reads: delimited text, gzip or not."""
LOCAL_SUFFIXES = TEXT_SUFFIXES + (".parquet", ".pq")
"""What a local source may hold: the table's text, or Parquet (rewritten as the table's text)."""


@dataclass(frozen=True)
class EventRun:
    """A run put in the bucket: its files, and where its sessions and summary will appear."""

    bucket: str
    run: str
    files: tuple[str, ...]

    @property
    def scored_uri(self) -> str:
        return f"s3://{self.bucket}/{SCORED_SESSIONS_PREFIX}{self.run}/"

    @property
    def summary_key(self) -> str:
        return f"{SCORED_SESSIONS_PREFIX}{self.run}/summary.json"


def default_run(now: datetime | None = None) -> str:
    return "events-" + (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def local_files(path: Path) -> list[Path]:
    """The event files of a file or folder (hidden files skipped); OpsError names what cannot be used."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    else:
        raise OpsError(f"{path}: no such file or folder")
    unusable = [p.name for p in files if not p.name.lower().endswith(LOCAL_SUFFIXES)]
    if unusable or not files:
        raise OpsError(f"{path}: {unusable or 'no files'}: score-events takes {', '.join(LOCAL_SUFFIXES)} files")
    return files


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _check_new_run(s3, bucket: str, run: str) -> None:
    for prefix in (INCOMING_EVENTS_PREFIX, GROUPED_SESSIONS_PREFIX):
        if _keys(s3, bucket, f"{prefix}{run}/"):
            raise OpsError(f"run {run!r}: s3://{bucket}/{prefix}{run}/ already holds objects; pick a new --run")


def submit_events(s3, bucket: str, source: str, run: str | None = None, layout: TableLayout | None = None) -> EventRun:
    """Copy the event files of ``source`` (a local file or folder, or an ``s3://`` URI) into a new run, marker last.

    With the stage's table ``layout``, local files are rewritten as the table reads them, their columns taken
    by header name (:mod:`infra.ops.event_files`); ``s3://`` objects are copied as they are.
    """
    run = run or default_run()
    try:
        check_run(run)
    except ValueError as err:
        raise OpsError(str(err)) from None
    _check_new_run(s3, bucket, run)
    target = f"{INCOMING_EVENTS_PREFIX}{run}/"
    names = []
    if source.startswith("s3://"):
        source_bucket, _, prefix = source[len("s3://"):].partition("/")
        keys = [k for k in _keys(s3, source_bucket, prefix) if k.lower().endswith(TEXT_SUFFIXES)
                and not os.path.basename(k).startswith((".", "_"))]
        if not keys:
            raise OpsError(f"{source}: no event objects ({', '.join(TEXT_SUFFIXES)}) at this URI")
        for key in keys:
            name = key[len(prefix):].lstrip("/").replace("/", "-") or os.path.basename(key)
            s3.copy({"Bucket": source_bucket, "Key": key}, bucket, target + name)
            names.append(name)
    else:
        files = local_files(Path(source))
        if layout is None and any(not p.name.lower().endswith(TEXT_SUFFIXES) for p in files):
            raise OpsError(f"{source}: Parquet is rewritten as the stage's events table reads text, and the stage "
                           f"has no events table")
        bodies = {rewritten_name(p): rewrite(p, layout) for p in files} if layout else None  # all checked first
        for path in files:
            if bodies is None:
                s3.upload_file(str(path), bucket, target + path.name)
                names.append(path.name)
            else:
                s3.put_object(Bucket=bucket, Key=target + rewritten_name(path), Body=bodies[rewritten_name(path)])
                names.append(rewritten_name(path))
    s3.put_object(Bucket=bucket, Key=target + RUN_MARKER, Body=b"")
    return EventRun(bucket, run, tuple(names))
