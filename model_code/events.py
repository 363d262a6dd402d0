"""Read click-event logs into one validated DataFrame.

An event log has one row per click: a session id, an item id and a time.
:func:`read_events` reads TSV, CSV or Parquet files (gzip-compressed or not)
from a local file, a local folder of such files, or an ``s3://`` URI (one
object or every event file under a prefix), and returns the canonical frame::

    SessionId  str      session id, as written in the file
    ItemId     str      item id, as written in the file (never a float)
    Time       float64  event time (Unix seconds, or any ordinal that orders events)

Events are grouped by session (sessions in order of first appearance in the
input) and ordered by time inside each session. Problems that would make the
data mean something else raise :class:`DataError` naming the file, the column
and the first bad line; problems that can be repaired without loss of meaning
(rows without an id, sessions written out of time order) are repaired with a
:class:`DataWarning` that says how many rows it touched.
"""
from __future__ import annotations

import gzip
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SESSION, ITEM, TIME = "SessionId", "ItemId", "Time"
CSV_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".csv": ","}
PARQUET_SUFFIXES = {".parquet", ".pq"}


class DataError(ValueError):
    """The event data cannot be used as it is; the message says where and why."""


class DataWarning(UserWarning):
    """The event data was repaired (rows dropped or reordered); the message says how."""


@dataclass(frozen=True)
class EventColumns:
    """Names of the session, item and time columns in the input files."""

    session: str = SESSION
    item: str = ITEM
    time: str = TIME

    def names(self) -> list[str]:
        return [self.session, self.item, self.time]


@dataclass(frozen=True)
class _Source:
    """One file to read: a display name for messages and a way to open it."""

    name: str
    path: Path | None = None
    s3_bucket: str | None = None
    s3_key: str | None = None

    def open(self):
        if self.path is not None:
            return open(self.path, "rb")
        return io.BytesIO(_s3_client().get_object(Bucket=self.s3_bucket, Key=self.s3_key)["Body"].read())

    @property
    def base_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]


def read_events(source: str | os.PathLike, columns: EventColumns = EventColumns()) -> pd.DataFrame:
    """Read, validate and order the events of ``source`` (file, folder or ``s3://`` URI).

    The frame's ``attrs`` record the repairs: ``dropped_missing_ids`` (rows
    without a session or item id) and ``sessions_reordered``.
    """
    parts = [_read_one(file, columns) for file in _list_sources(str(source))]
    events = pd.concat([frame for frame, _ in parts], ignore_index=True)
    dropped = sum(count for _, count in parts)
    if dropped:
        warnings.warn(
            f"{source}: dropped {dropped} of {dropped + len(events)} rows without a session or item id",
            DataWarning,
            stacklevel=2,
        )
    if events.empty:
        raise DataError(f"{source}: no events (no data rows with a session and item id)")
    events, reordered = _order(events, source)
    events.attrs.update(dropped_missing_ids=dropped, sessions_reordered=reordered)
    return events


def write_events(path: str | os.PathLike, events: pd.DataFrame) -> None:
    """Write ``events`` as a tab-separated file (gzip when the name ends in .gz), atomically.

    The gzip header carries no time stamp, so the same frame gives the same bytes.
    Times that are whole numbers are written without a decimal point.
    """
    path = Path(path)
    if TIME in events and pd.api.types.is_float_dtype(events[TIME]) and (np.mod(events[TIME].to_numpy(), 1) == 0).all():
        events = events.assign(**{TIME: events[TIME].astype(np.int64)})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped, io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text:
                    events.to_csv(text, sep="\t", index=False, lineterminator="\n")
            else:
                with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                    events.to_csv(text, sep="\t", index=False, lineterminator="\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_event_file(name: str) -> bool:
    """True for a file name whose extension read_events understands."""
    suffix = _format_suffix(name)
    return suffix in CSV_SUFFIXES or suffix in PARQUET_SUFFIXES


def _format_suffix(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".gz"):
        lower = lower[:-3]
    return os.path.splitext(lower)[1]


def _list_sources(source: str) -> list[_Source]:
    if source.startswith("s3://"):
        return _list_s3(source)
    path = Path(source)
    if path.is_file():
        return [_Source(name=str(path), path=path)]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".") and is_event_file(p.name))
        if not files:
            raise DataError(f"{source}: folder holds no event files (.tsv, .csv, .txt, .parquet, optionally .gz)")
        return [_Source(name=str(p), path=p) for p in files]
    raise DataError(f"{source}: no such file or folder")


def _s3_client():
    import boto3  # only the s3:// path needs AWS

    return boto3.client("s3")


def _list_s3(uri: str) -> list[_Source]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise DataError(f"{uri}: not an s3://bucket/key URI")
    client = _s3_client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    if key in keys and not key.endswith("/"):
        keys = [key]
    else:
        prefix = key if key.endswith("/") or not key else key + "/"
        keys = sorted(k for k in keys if k.startswith(prefix) and is_event_file(k) and not k.rsplit("/", 1)[-1].startswith("."))
    if not keys:
        raise DataError(f"{uri}: no event objects (.tsv, .csv, .txt, .parquet, optionally .gz) at this URI")
    return [_Source(name=f"s3://{bucket}/{k}", s3_bucket=bucket, s3_key=k) for k in keys]


def _read_one(source: _Source, columns: EventColumns) -> tuple[pd.DataFrame, int]:
    """One file's events with canonical columns, and how many rows lacked an id."""
    suffix = _format_suffix(source.base_name)
    if suffix in PARQUET_SUFFIXES:
        frame, first_line = _read_parquet(source, columns), 0
    elif suffix in CSV_SUFFIXES:
        frame, first_line = _read_delimited(source, columns, CSV_SUFFIXES[suffix]), 2
    else:
        raise DataError(f"{source.name}: unknown file type (expected .tsv, .csv, .txt or .parquet, optionally .gz)")
    frame = frame.rename(columns={columns.session: SESSION, columns.item: ITEM, columns.time: TIME})
    has_ids = (frame[SESSION].notna() & frame[ITEM].notna()).to_numpy()
    if not has_ids.all():
        frame = frame.loc[has_ids]
    lines = np.flatnonzero(has_ids) + first_line
    frame[TIME] = _parse_time(frame[TIME], source, columns.time, lines, first_line > 0)
    return frame.reset_index(drop=True), int((~has_ids).sum())


def _read_delimited(source: _Source, columns: EventColumns, sep: str) -> pd.DataFrame:
    compression = "gzip" if source.base_name.lower().endswith(".gz") else None
    wanted = columns.names()
    with source.open() as handle:
        try:
            frame = pd.read_csv(
                handle,
                sep=sep,
                compression=compression,
                dtype={columns.session: str, columns.item: str, columns.time: str},
                usecols=lambda name: name in wanted,
                keep_default_na=False,
                na_values=[""],
                skip_blank_lines=False,
            )
        except pd.errors.EmptyDataError as err:
            raise DataError(f"{source.name}: empty file (no header, no events)") from err
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as err:
            raise DataError(f"{source.name}: cannot be parsed as {'tab' if sep == chr(9) else 'comma'}-separated text: {err}") from err
    _check_columns(frame.columns, wanted, source, "header")
    return frame[wanted]


def _read_parquet(source: _Source, columns: EventColumns) -> pd.DataFrame:
    import pyarrow.parquet as pq

    wanted = columns.names()
    with source.open() as handle:
        try:
            table = pq.read_table(handle)
        except Exception as err:  # pyarrow raises several types for a corrupt file
            raise DataError(f"{source.name}: cannot be read as Parquet: {err}") from err
    _check_columns(table.column_names, wanted, source, "schema")
    frame = table.select(wanted).to_pandas()
    for name in (columns.session, columns.item):
        frame[name] = _ids_as_strings(frame[name], source, name)
    return frame


def _check_columns(present, wanted: list[str], source: _Source, where: str) -> None:
    missing = [name for name in wanted if name not in set(present)]
    if missing:
        raise DataError(
            f"{source.name}: column {missing[0]!r} missing from the {where} "
            f"(found {list(present)}; column names are configurable)"
        )


def _ids_as_strings(values: pd.Series, source: _Source, column: str) -> pd.Series:
    """Parquet ids typed as numbers become their integer spelling, never '123.0'."""
    missing = values.isna()
    if pd.api.types.is_float_dtype(values):
        fractional = ~missing.to_numpy() & (np.mod(values.fillna(0).to_numpy(), 1) != 0)
        if fractional.any():
            row = int(np.flatnonzero(fractional)[0])
            raise DataError(f"{source.name}: column {column!r} holds a fractional id {values.iloc[row]!r} at row {row}")
        values = values.astype("Int64")
    return values.astype(str).where(~missing)


def _parse_time(values: pd.Series, source: _Source, column: str, lines: np.ndarray, text: bool) -> pd.Series:
    """Numbers as they are; ISO 8601 date-times as Unix seconds; anything else is an error."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return _datetime_seconds(values)
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
    else:
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.isna().all() and values.notna().any():
            as_dates = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
            if as_dates.notna().any():  # a column of date-times; the error below names the first that is not
                numbers = _datetime_seconds(as_dates)
    numbers = numbers.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        where = f"line {lines[row]}" if text else f"row {lines[row]}"
        raise DataError(
            f"{source.name}: column {column!r} has an unparsable time {values.iloc[row]!r} at {where} "
            f"({int(bad.sum())} such rows; expected a number or an ISO 8601 date-time)"
        )
    return pd.Series(numbers, index=values.index)


def _datetime_seconds(values: pd.Series) -> pd.Series:
    values = pd.to_datetime(values, utc=True)
    return (values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)


def _order(events: pd.DataFrame, source) -> tuple[pd.DataFrame, int]:
    """Group by session (first-appearance order), then time; warn about sessions written out of order."""
    codes, _ = pd.factorize(events[SESSION])
    times = events[TIME].to_numpy()
    order = np.argsort(codes, kind="stable")
    step_back = (np.diff(codes[order]) == 0) & (np.diff(times[order]) < 0)
    reordered = 0
    if step_back.any():
        reordered = len(np.unique(codes[order][1:][step_back]))
        first = events[SESSION].iloc[int(order[1:][step_back][0])]
        warnings.warn(
            f"{source}: {reordered} sessions have events out of time order (first: session {first!r}); "
            f"sorted them by time",
            DataWarning,
            stacklevel=3,
        )
        order = np.lexsort((times, codes))
    if not np.array_equal(order, np.arange(len(order))):
        events = events.iloc[order].reset_index(drop=True)
    return events[[SESSION, ITEM, TIME]], reordered
