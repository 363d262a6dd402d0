"""Batch scoring: check a JSON-lines sessions file, drop it into the bucket, find its output.

A new object under `sessions/incoming/` starts the batch state machine (EventBridge), whose
transform job writes one output line per input line to `sessions/scored/<name>.out`.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from inference.contracts import BadLine, parse_json_line
from infra.layout import FILTERS_SUFFIX, INCOMING_SESSIONS_PREFIX, SCORED_SESSIONS_PREFIX
from infra.ops.errors import OpsError

SUFFIX = ".jsonl"
MAX_LINE_BYTES = 6 * 1024 * 1024  # one record must fit one transform request (MaxPayloadInMB 6)


@dataclass(frozen=True)
class Submission:
    """Where a sessions file went and where its scores will appear."""

    bucket: str
    input_key: str
    output_key: str
    sessions: int

    @property
    def input_uri(self) -> str:
        return f"s3://{self.bucket}/{self.input_key}"

    @property
    def output_uri(self) -> str:
        return f"s3://{self.bucket}/{self.output_key}"


EVENT_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet")
"""Names of event files (gzip or not), which `score-events` takes, not `score`."""


def object_name(path: Path, name: str | None = None) -> str:
    """The file name the sessions get in the bucket; it must end in `.jsonl`. An event file is pointed at the
    two ways to score events."""
    chosen = name or path.name
    if path.name.lower().removesuffix(".gz").endswith(EVENT_SUFFIXES):
        raise OpsError(
            f"{path} holds click events, not sessions: group them into sessions first with "
            f"`python -m model_code.data.sessions {path} --out {path.name.split('.')[0]}.jsonl` and score that file, "
            f"or let the stage group them: `python -m infra.ops score-events {path}`"
        )
    if "/" in chosen or not chosen.endswith(SUFFIX) or chosen == SUFFIX:
        raise OpsError(
            f"{chosen!r} is not a usable name: only `<name>.jsonl` files start batch scoring; "
            "rename the file or pass --name <name>.jsonl"
        )
    return chosen


def validate_sessions_file(path: Path) -> int:
    """Check every line of a JSON-lines sessions file as the container will; return the number of sessions.

    Raises OpsError naming the file and the first bad line. A blank line is refused too: the
    container skips it, so the scored file would have fewer lines than this one.
    """
    if not path.is_file():
        raise OpsError(f"{path}: no such file")
    count = 0
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            where = f"{path} line {number}"
            if len(raw) > MAX_LINE_BYTES:
                raise OpsError(f"{where}: longer than {MAX_LINE_BYTES} bytes")
            if not raw.strip():
                raise OpsError(f"{where}: empty line (the container skips blank lines, so the scored file "
                               "would not match this one line by line): remove it")
            record = parse_json_line(number, raw.rstrip(b"\r\n"))
            if isinstance(record, BadLine):
                raise OpsError(f"{where}: {record.error}")
            count += 1
    if count == 0:
        raise OpsError(f"{path}: the file holds no sessions")
    return count


def validate_filters_file(path: Path) -> None:
    """Check a job-level filter list file as the container will read it; OpsError names the problem."""
    if not path.is_file():
        raise OpsError(f"{path}: no such file")
    from inference.job_filters import FiltersFileError, parse_filters  # NumPy: loaded by `score`, not by --help

    try:
        parse_filters(path.read_bytes(), str(path))
    except FiltersFileError as err:
        raise OpsError(str(err)) from None


def filters_key(input_key: str) -> str:
    """`sessions/incoming/<name>.jsonl` -> `sessions/incoming/<name>.filters.json`, where the batch run looks."""
    return input_key.removesuffix(SUFFIX) + FILTERS_SUFFIX


def submit_sessions(s3, bucket: str, path: Path, name: str | None = None, filters: Path | None = None) -> Submission:
    """Validate the file (and the filter list), then upload them to `sessions/incoming/`: the list first, as
    `<name>.filters.json`, since the sessions file `<name>.jsonl` starts the run."""
    key_name = object_name(path, name)
    sessions = validate_sessions_file(path)
    input_key = INCOMING_SESSIONS_PREFIX + key_name
    if filters is not None:
        validate_filters_file(filters)
        s3.upload_file(str(filters), bucket, filters_key(input_key), ExtraArgs={"ContentType": "application/json"})
    s3.upload_file(str(path), bucket, input_key, ExtraArgs={"ContentType": "application/jsonlines"})
    return Submission(bucket, input_key, f"{SCORED_SESSIONS_PREFIX}{key_name}.out", sessions)


def wait_for_output(
    s3,
    submission: Submission,
    timeout_seconds: float,
    poll_seconds: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Poll until the scored file exists; return its head_object answer.

    Raises OpsError when it has not appeared within `timeout_seconds`.
    """
    waited = 0.0
    while True:
        try:
            return s3.head_object(Bucket=submission.bucket, Key=submission.output_key)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
                raise
        if waited >= timeout_seconds:
            raise OpsError(
                f"{submission.output_uri} did not appear within {timeout_seconds:.0f} s; "
                "see `python -m infra.ops status` for the batch executions"
            )
        sleep(poll_seconds)
        waited += poll_seconds
