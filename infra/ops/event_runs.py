"""Scoring raw events: put a run's event files under `events/incoming/<run>/`, then its `_SUCCESS` marker.

The marker's "Object Created" event starts the events state machine (EventBridge), which groups the
run on Athena into `sessions/grouped/<run>/`, scores it into `sessions/scored/<run>/` and writes
`sessions/scored/<run>/summary.json`. A run's folder must be new: the grouped folder is written by
Athena's UNLOAD, which refuses a destination that holds objects.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from infra.layout import GROUPED_SESSIONS_PREFIX, INCOMING_EVENTS_PREFIX, RUN_MARKER, SCORED_SESSIONS_PREFIX
from infra.ops.errors import OpsError
from infra.session_query import check_run

TEXT_SUFFIXES = (".tsv", ".csv", ".txt", ".tsv.gz", ".csv.gz", ".txt.gz")
"""What the Athena table reads: delimited text, gzip or not (Parquet is the local reader's only)."""


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
    return "events-" + (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")


def local_files(path: Path) -> list[Path]:
    """The event files of a file or folder (hidden files skipped); OpsError names what cannot be used."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    else:
        raise OpsError(f"{path}: no such file or folder")
    unusable = [p.name for p in files if not p.name.lower().endswith(TEXT_SUFFIXES)]
    if unusable or not files:
        raise OpsError(f"{path}: {unusable or 'no files'}: the events table reads {', '.join(TEXT_SUFFIXES)} files")
    return files


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def _check_new_run(s3, bucket: str, run: str) -> None:
    for prefix in (INCOMING_EVENTS_PREFIX, GROUPED_SESSIONS_PREFIX):
        if _keys(s3, bucket, f"{prefix}{run}/"):
            raise OpsError(f"run {run!r}: s3://{bucket}/{prefix}{run}/ already holds objects; pick a new --run")


def submit_events(s3, bucket: str, source: str, run: str | None = None) -> EventRun:
    """Copy the event files of ``source`` (a local file or folder, or an ``s3://`` URI) into a new run, marker last."""
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
        for path in local_files(Path(source)):
            s3.upload_file(str(path), bucket, target + path.name)
            names.append(path.name)
    s3.put_object(Bucket=bucket, Key=target + RUN_MARKER, Body=b"")
    return EventRun(bucket, run, tuple(names))
