"""Click-event logs: their sources, columns, times and bad rows, and the canonical frame they are read into.

An event log has one row per click: a session id, an item id and a time.
:func:`model_code.data.event_table.read_events` reads TSV, CSV or Parquet files (gzip-compressed or not)
from a local file, a local folder of such files, or an ``s3://`` URI (one
object or every event file under a prefix), and returns the canonical frame::

    SessionId  str      session id, as written in the file
    ItemId     str      item id, as written in the file (never a float)
    Time       float64  event time (Unix seconds, or any number that orders events)

Column names, separator, time forms and the bad-row policy are set by
:class:`model_code.data.event_rules.ReadOptions`; the rules themselves are listed in
:mod:`model_code.data.event_rules`. Events are grouped by session (sessions in order
of first appearance in the input) and ordered by time inside each session.
Problems that make a whole file unusable (no such file, a column missing from
the header, a file that cannot be parsed) raise :class:`DataError` naming the
file and the column; bad rows are skipped and reported as log lines up to the
``max_bad_rows`` bound, beyond which :class:`DataError` carries the same report.
Sessions written out of time order are sorted, with a log line.

The files are read column by column by :func:`model_code.data.event_table.read_event_codes`
(ids as integer codes); this module holds what that read shares with the frame: the
sources, the header checks, the time parsing and the bad-row report. Training and the
sessions command take the codes; the commands that work on frames (preprocess, evaluation, the
baselines) take the frame.
"""
from __future__ import annotations

import csv
import gzip
import io
import os
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from model_code.artifacts import file_mode
from model_code.data.event_rules import (
    BAD_ROW_REASONS,
    DATETIME_PATTERN,
    ENCODING_REASON,
    EPOCH_MS_FROM,
    EPOCH_PATTERN,
    EPOCH_US_FROM,
    FLAGS,
    REPORTED_EXAMPLES,
    SEPARATORS,
    TIME,
    ReadOptions,
)

CSV_SUFFIXES = {".tsv": "\t", ".txt": "\t", ".csv": ","}
PARQUET_SUFFIXES = {".parquet", ".pq"}
HIVE_PARTITION = re.compile(r"[^=/]+=[^=/]+")
"""A Hive-style partition folder (``dt=2026-11-30``): a folder source reads its files too."""
FILE = "File"
"""The column :func:`read_events` adds with ``with_files``: the file (path or ``s3://`` URI) of each event."""
COLUMN_FLAGS = (
    "--session-column, --item-column and --time-column (hyperparameters session_column, item_column, time_column)"
)


class DataError(ValueError):
    """The event data cannot be used as it is; the message says where and why."""


def _log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


@dataclass
class BadRows:
    """The rows a read skipped: how many per reason, and the first few as ``file line N, column 'c': reason``."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BAD_ROW_REASONS + (ENCODING_REASON,), 0))
    examples: list[str] = field(default_factory=list)
    unreadable_times: list[str] = field(default_factory=list)
    """The files none of whose rows has a time of the form read (each with its first bad time)."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, other: BadRows) -> None:
        for reason, count in other.counts.items():
            self.counts[reason] += count
        self.examples = (self.examples + other.examples)[:REPORTED_EXAMPLES]
        self.unreadable_times += other.unreadable_times

    def summary(self) -> str:
        return ", ".join(f"{count} {reason}" for reason, count in self.counts.items() if count)


def _report_bad_rows(source, options: ReadOptions, rows: int, bad: BadRows, log: Callable[[str], None]) -> None:
    """Log the skipped rows, or raise DataError when there are more than the bound allows."""
    if not bad.total:
        return
    limit = options.bad_row_bound.limit(rows)
    bound = f"{FLAGS['max_bad_rows']} {options.max_bad_rows} allows {limit}"
    if bad.total > limit and bad.unreadable_times:
        raise DataError(
            f"{source}: {bad.total} of {rows} rows are bad ({bad.summary()}); in {bad.unreadable_times[0]} no row "
            f"has a time that {FLAGS['time_format']} {options.time_format} reads (first: {bad.examples[0]}). "
            f"Name the form of the times with {FLAGS['time_format']} (hyperparameter time_format): epoch_s, "
            f"epoch_ms, datetime or a pattern such as '%d/%m/%Y %H:%M' (see model_code/data/event_rules.py)"
        )
    if bad.total > limit:
        raise DataError(
            f"{source}: {bad.total} of {rows} rows are bad ({bad.summary()}), more than {bound}; "
            f"first: {'; '.join(bad.examples)}. Fix the data, or raise --max-bad-rows (hyperparameter "
            f"max_bad_rows) to skip them"
        )
    log(f"{source}: skipped {bad.total} of {rows} rows ({bad.summary()}; {bound}); first:")
    for example in bad.examples:
        log(f"  {example}")


def write_events(path: str | os.PathLike, events: pd.DataFrame) -> None:
    """Write ``events`` as a tab-separated file (gzip when the name ends in .gz), atomically.

    The gzip header carries no time stamp, so the same frame gives the same bytes. The file gets
    the mode the umask gives new files.
    Times that are whole numbers are written without a decimal point.
    """
    path = Path(path)
    if TIME in events and pd.api.types.is_float_dtype(events[TIME]) and (np.mod(events[TIME].to_numpy(), 1) == 0).all():
        events = events.assign(**{TIME: events[TIME].astype(np.int64)})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as raw:
            if path.name.endswith(".gz"):
                with (
                    gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped,
                    io.TextIOWrapper(zipped, encoding="utf-8", newline="") as text,
                ):
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
        return _refuse_twins(_list_s3(source))
    path = Path(source)
    if path.is_file():
        return [_Source(name=str(path), path=path)]
    if path.is_dir():
        files = sorted(_folder_files(path), key=str)
        if not files:
            raise DataError(f"{source}: folder holds no event files (.tsv, .csv, .txt, .parquet, optionally .gz)")
        return _refuse_twins([_Source(name=str(p), path=p) for p in files])
    raise DataError(f"{source}: no such file or folder")


def _folder_files(folder: Path) -> list[Path]:
    """A folder's event files, and those of its Hive-style partition folders (``dt=2026-11-30/``), at any depth."""
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and HIVE_PARTITION.fullmatch(entry.name) and not entry.name.startswith("_"):
            found += _folder_files(entry)
        elif entry.is_file() and is_event_file(entry.name):
            found.append(entry)
    return found


def _refuse_twins(sources: list[_Source]) -> list[_Source]:
    """Refuse one file present twice, compressed and not (``day.csv`` and ``day.csv.gz``): it would be read twice."""
    names = {source.name for source in sources}
    for source in sources:
        if source.name.lower().endswith(".gz") and source.name[:-3] in names:
            raise DataError(f"{source.name[:-3]} and {source.name}: the same file twice, plain and gzip-compressed; "
                            f"keep one of them, or its events are read twice")
    return sources


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
        keys = sorted(
            k for k in keys if k.startswith(prefix) and is_event_file(k) and not k.rsplit("/", 1)[-1].startswith(".")
        )
    if not keys:
        raise DataError(f"{uri}: no event objects (.tsv, .csv, .txt, .parquet, optionally .gz) at this URI")
    return [_Source(name=f"s3://{bucket}/{k}", s3_bucket=bucket, s3_key=k) for k in keys]


def detect_separator(header_line: str, extension_sep: str) -> str:
    """Of the separators in :data:`~model_code.data.event_rules.SEPARATORS`, the one that splits the header into
    the most fields (the extension's on a tie); the extension's when none occurs."""
    fields = {sep: len(next(csv.reader([header_line], delimiter=sep))) for sep in SEPARATORS.values()}
    most = max(fields.values())
    if most == 1 or fields[extension_sep] == most:
        return extension_sep
    return next(sep for sep, count in fields.items() if count == most)


def separator_name(sep: str) -> str:
    names = {char: name for name, char in SEPARATORS.items()}
    return names.get(sep, repr(sep))


def _check_columns(present: list[str], wanted: list[str], source: _Source, where: str, hint: str) -> None:
    missing = [name for name in wanted if name not in set(present)]
    if missing:
        raise DataError(
            f"{source.name}: column {missing[0]!r} missing from the {where}: found {list(present)}; "
            f"name the columns with {COLUMN_FLAGS}{hint}"
        )


def _ids_as_strings(values: pd.Series, source: _Source, column: str, first_row: int = 1) -> pd.Series:
    """Parquet ids typed as numbers become their integer spelling, never '123.0' (rows counted from ``first_row``)."""
    missing = values.isna()
    if pd.api.types.is_float_dtype(values):
        fractional = ~missing.to_numpy() & (np.mod(values.fillna(0).to_numpy(), 1) != 0)
        if fractional.any():
            row = int(np.flatnonzero(fractional)[0])
            raise DataError(f"{source.name}: column {column!r} holds a fractional id {float(values.iloc[row])!r} "
                            f"at row {row + first_row}")
        values = values.astype("Int64")
    return values.astype(str).where(~missing)


def parse_times(values: pd.Series, form: str = "auto") -> np.ndarray:
    """Times as float64 seconds by the rules of :mod:`model_code.data.event_rules`; NaN where a value is bad.

    ``form`` is a checked ``time_format`` value. Typed columns (Parquet) keep their meaning: date-times
    become Unix seconds, numbers are read as ``epoch_s`` or ``epoch_ms``.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return _datetime_seconds(values).to_numpy(dtype="float64", na_value=np.nan)
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        if form == "epoch_ms":
            return numbers / 1000.0
        if form == "auto":
            return epoch_seconds(numbers)
        return numbers if form == "epoch_s" else np.full(len(values), np.nan)
    text = values.astype(str).str.strip().where(values.notna())
    if form in ("auto", "epoch_s", "epoch_ms"):
        numbers = _epoch_numbers(text)
        numbers = numbers / 1000.0 if form == "epoch_ms" else epoch_seconds(numbers) if form == "auto" else numbers
        if form != "auto" or not np.isnan(numbers).any():
            return numbers
        rest = np.isnan(numbers)
        numbers[rest] = _datetime_text_seconds(text[rest])
        return numbers
    if form == "datetime":
        return _datetime_text_seconds(text)
    parsed = pd.to_datetime(text, format=form, errors="coerce", utc=True)
    return _datetime_seconds(parsed).to_numpy(dtype="float64", na_value=np.nan)


def epoch_seconds(numbers: np.ndarray) -> np.ndarray:
    """Epoch numbers read under ``--time-format auto`` as seconds: from 1e11 milliseconds, from 1e14 microseconds."""
    size = np.abs(numbers)
    return np.where(size >= EPOCH_US_FROM, numbers / 1e6, np.where(size >= EPOCH_MS_FROM, numbers / 1e3, numbers))


def _epoch_numbers(text: pd.Series) -> np.ndarray:
    """Form 1 (epoch seconds) of each value, NaN where it is not that form."""
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
    candidates = ~np.isnan(numbers)
    if candidates.any():  # to_numeric also takes '1e5', 'inf', ' 1_000': the form does not
        strict = text[candidates].str.fullmatch(EPOCH_PATTERN.pattern).to_numpy(dtype=bool)
        numbers[np.flatnonzero(candidates)[~strict]] = np.nan
    return numbers


def _datetime_text_seconds(text: pd.Series) -> np.ndarray:
    """Form 2 (date-times) of each value as Unix seconds, NaN where it is not that form or no real date."""
    parts = text.str.extract(f"^(?:{DATETIME_PATTERN.pattern})$")
    number = {name: pd.to_numeric(parts[name]) for name in ("year", "month", "day", "hour", "minute", "second")}
    clock = {name: number[name].fillna(0) for name in ("hour", "minute", "second")}
    valid = (clock["hour"] <= 23) & (clock["minute"] <= 59) & (clock["second"] <= 59)
    days = pd.to_datetime(pd.DataFrame({k: number[k] for k in ("year", "month", "day")}), errors="coerce")
    seconds = (_datetime_seconds(days) + clock["hour"] * 3600 + clock["minute"] * 60 + clock["second"]
               + pd.to_numeric("0." + parts["fraction"].fillna("0")) - _zone_offsets(parts["zone"]))
    return seconds.where(valid).to_numpy(dtype="float64", na_value=np.nan)


def _zone_offsets(zones: pd.Series) -> pd.Series:
    """Seconds east of UTC of ``Z``, ``UTC``, ``+hh:mm``, ``+hhmm``, ``+hh``; none is UTC; NaN when out of range."""
    parts = zones.str.extract(r"^(?P<sign>[+-])(?P<hours>\d{2}):?(?P<minutes>\d{2})?$")
    hours, minutes = pd.to_numeric(parts["hours"]), pd.to_numeric(parts["minutes"]).fillna(0)
    offsets = ((hours * 3600 + minutes * 60) * parts["sign"].map({"+": 1, "-": -1})).fillna(0.0)
    return offsets.where((hours.isna() | (hours <= 23)) & (minutes <= 59))


def _datetime_seconds(values: pd.Series) -> pd.Series:
    values = pd.to_datetime(values, utc=True)
    return (values - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
