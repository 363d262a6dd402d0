"""Read event files column by column into integer arrays: the reading path of large event logs.

:func:`read_event_codes` reads what :func:`read_events` reads (TSV, CSV or
Parquet, gzip or not; a file, a folder or an ``s3://`` URI) by the same rules
(:mod:`model_code.data.event_rules`), but never holds an id as a Python string per event. Files are
read with pyarrow in blocks; in each block the rows that break a rule are counted and dropped,
the times are parsed to float64 and the two id columns are dictionary-encoded. At the end the
blocks' dictionaries are unified, so every event is three numbers (session code, item code,
time) and each distinct id is stored once. Grouping by session and ordering by time are sorts of
those integer arrays, so the peak memory of a read is a small multiple of the final arrays.
The reading options that reshape sessions work on those arrays too: rows of event kinds not read
are dropped in the blocks, ``--session-gap`` renumbers the sessions (:func:`split_sessions`) and
an event column collapses consecutive repeats (:func:`collapse_repeats`).

A text row with more or fewer fields than the header makes the file unreadable: the error names
the file, the separator and the row as written (Arrow's parser gives no line number for it).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from model_code.data.event_rules import (
    ENCODING_REASON,
    EPOCH_PATTERN,
    ITEM,
    REPORTED_EXAMPLES,
    SESSION,
    SESSION_NUMBER_MARK,
    TIME,
    ReadOptions,
    parse_encoding,
)
from model_code.data.events import (
    CSV_SUFFIXES,
    FILE,
    PARQUET_SUFFIXES,
    BadRows,
    DataError,
    _check_columns,
    _format_suffix,
    _ids_as_strings,
    _list_sources,
    _log_to_stderr,
    _report_bad_rows,
    _Source,
    detect_separator,
    epoch_seconds,
    parse_times,
    separator_name,
)

BLOCK_BYTES = 32 << 20
"""Bytes of text pyarrow parses per block of a delimited file."""
PARQUET_BATCH_ROWS = 1 << 20
"""Rows per batch of a Parquet file."""
LISTED_FILES = 20
"""Files of a folder named in the log line that lists what a read takes."""
_EPOCH_ONLY = f"^(?:{EPOCH_PATTERN.pattern})$"


@dataclass
class EventCodes:
    """Good events as integer codes, grouped by session (first appearance) and time-ordered in each.

    ``session_ids[sessions[e]]``, ``item_ids[items[e]]`` and ``times[e]`` are event e's session id,
    item id and time; both id arrays hold each id once, in order of first appearance in the input.
    With ``with_files``, ``file_names[files[e]]`` is the file event e was read from.
    """

    sessions: np.ndarray  # int32 [E]
    items: np.ndarray  # int32 [E]
    times: np.ndarray  # float64 [E]
    session_ids: pa.Array  # string [S]
    item_ids: pa.Array  # string [I]
    files: np.ndarray | None = None  # int32 [E]
    file_names: list[str] = field(default_factory=list)
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.times)

    def take(self, rows: np.ndarray) -> EventCodes:
        """The events at ``rows`` (indices or a boolean mask), with the same id arrays."""
        files = None if self.files is None else self.files[rows]
        return EventCodes(self.sessions[rows], self.items[rows], self.times[rows], self.session_ids,
                          self.item_ids, files, self.file_names, dict(self.attrs))

    def to_frame(self) -> pd.DataFrame:
        """The canonical frame of :func:`read_events` (ids as strings)."""
        columns = {
            SESSION: self.session_ids.take(pa.array(self.sessions)).to_pandas(),
            ITEM: self.item_ids.take(pa.array(self.items)).to_pandas(),
            TIME: self.times,
        }
        if self.files is not None:
            columns[FILE] = pd.Categorical.from_codes(self.files, self.file_names).astype(str)
        frame = pd.DataFrame(columns)
        frame.attrs.update(self.attrs)
        return frame


def block_starts(codes: np.ndarray) -> np.ndarray:
    """Where each run of equal values of ``codes`` begins (int64; empty for no codes)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([[0], np.flatnonzero(codes[1:] != codes[:-1]) + 1])


@dataclass
class _Block:
    """One block's good events: ids dictionary-encoded (block-local dictionaries) and times."""

    sessions: pa.DictionaryArray
    items: pa.DictionaryArray
    times: np.ndarray
    file: int
    other_kinds: int = 0


def read_events(source: str | os.PathLike, options: ReadOptions = ReadOptions(),
                log: Callable[[str], None] = _log_to_stderr, with_files: bool = False) -> pd.DataFrame:
    """Read, validate and order the events of ``source`` (file, folder or ``s3://`` URI).

    Bad rows are skipped and reported through ``log`` (a function taking one line) up to
    ``options.max_bad_rows``; more raise :class:`DataError`. The frame's ``attrs`` record
    ``rows_read``, ``skipped_rows`` ({reason: count}) and ``sessions_reordered``. With
    ``with_files`` the frame has a fourth column, :data:`FILE`: the file each event was read from.
    The reading itself is :func:`read_event_codes`; this is its frame.
    """
    return read_event_codes(source, options, log, with_files).to_frame()


def read_event_codes(source, options: ReadOptions = ReadOptions(),
                     log: Callable[[str], None] = _log_to_stderr, with_files: bool = False) -> EventCodes:
    """Read, validate and order the events of ``source`` as :class:`EventCodes`.

    Bad rows are skipped and reported through ``log`` up to ``options.max_bad_rows``; more raise
    :class:`DataError`. ``attrs`` records ``rows_read``, ``skipped_rows``, ``sessions_reordered``,
    ``other_kinds`` (rows of event kinds not read), ``sessions_split`` (sessions added by
    ``--session-gap``) and ``repeats_collapsed``.
    """
    files = _list_sources(str(source))
    if len(files) > 1:
        log(f"{source}: {len(files)} files: {_file_list(str(source), files)}")
    blocks, rows, bad, other_kinds = [], 0, BadRows(), 0
    for number, file in enumerate(files):
        file_rows, file_bad, file_other = 0, BadRows(), 0
        for table, first_line, unit in _file_tables(file, options):
            block, block_bad = _block(table, number, file, options, first_line + file_rows, unit)
            file_rows += table.num_rows
            file_bad.add(block_bad)
            file_other += block.other_kinds
            if len(block.times):
                blocks.append(block)
        if file_rows > file_other and file_bad.counts["bad time"] == file_rows - file_other:
            file_bad.unreadable_times.append(file.name)
        other_kinds += file_other
        rows += file_rows
        bad.add(file_bad)
    _report_bad_rows(source, options, rows, bad, log)
    if not blocks:
        raise DataError(f"{source}: no events (no data rows with a session id, an item id and a time"
                        f"{' of the kinds read' if options.kinds is not None else ''})")
    collapse = options.kind_column is not None
    events = _join(blocks, [file.name for file in files] if with_files or collapse else [])  # empties blocks
    reordered = _order(events, source, log)
    split = 0 if options.gap_seconds is None else split_sessions(events, options.gap_seconds)
    collapsed = collapse_repeats(events) if collapse else 0
    if not with_files:
        events.files, events.file_names = None, []
    events.attrs.update(rows_read=rows, skipped_rows={k: v for k, v in bad.counts.items() if v},
                        sessions_reordered=reordered, other_kinds=other_kinds, sessions_split=split,
                        repeats_collapsed=collapsed)
    return events


def _file_list(source: str, files: list[_Source], shown: int = LISTED_FILES) -> str:
    """The files' names under ``source``, the first ``shown`` of them."""
    prefix = source.rstrip("/") + "/"
    names = [file.name.removeprefix(prefix) for file in files[:shown]]
    return ", ".join(names) + (f" and {len(files) - shown} more" if len(files) > shown else "")


def split_sessions(events: EventCodes, gap: float) -> int:
    """Split each session of ``events`` (grouped, time-ordered) where the time between two events exceeds
    ``gap``, in place: the sessions become ``<session>#<n>`` (:mod:`model_code.data.event_rules`). Returns the
    sessions added."""
    starts = np.ones(len(events), dtype=bool)
    starts[1:] = (events.sessions[1:] != events.sessions[:-1]) | (np.diff(events.times) > gap)
    first_rows = np.flatnonzero(starts)
    visitors = events.sessions[first_rows]
    visitor_first = np.ones(len(first_rows), dtype=bool)
    visitor_first[1:] = visitors[1:] != visitors[:-1]
    positions = np.arange(len(first_rows))
    numbers = positions - np.maximum.accumulate(np.where(visitor_first, positions, 0)) + 1
    events.session_ids = pc.binary_join_element_wise(
        events.session_ids.take(pa.array(visitors)), pa.array(numbers).cast(pa.string()), SESSION_NUMBER_MARK)
    events.sessions = (np.cumsum(starts) - 1).astype(np.int32)
    return len(first_rows) - int(visitor_first.sum())


def collapse_repeats(events: EventCodes) -> int:
    """Drop, in place, each event whose item is the previous event's in its session; returns how many.

    The events are first ordered as the sessions command orders them (time, then file, then item id)
    so that ties in time give the same result everywhere. Needs ``events.files``.
    """
    item_rank = np.empty(len(events.item_ids), dtype=np.int64)
    item_rank[pc.sort_indices(events.item_ids).to_numpy()] = np.arange(len(events.item_ids))
    order = np.lexsort((item_rank[events.items], events.files, events.times, events.sessions))
    del item_rank
    sessions, items = events.sessions[order], events.items[order]
    kept = np.ones(len(order), dtype=bool)
    kept[1:] = (sessions[1:] != sessions[:-1]) | (items[1:] != items[:-1])
    order = order[kept]
    events.sessions, events.items, events.times = sessions[kept], items[kept], events.times[order]
    events.files = events.files[order]
    return int(len(kept) - kept.sum())


def _file_tables(source: _Source, options: ReadOptions) -> Iterator[tuple[pa.Table, int, str]]:
    """The wanted columns of one file, block by block, named as in the file: (table, first line, unit)."""
    suffix = _format_suffix(source.base_name)
    if suffix in PARQUET_SUFFIXES:
        return ((table, 1, "row") for table in _parquet_tables(source, options))
    if suffix in CSV_SUFFIXES:
        return ((table, 2, "line") for table in _delimited_tables(source, options, CSV_SUFFIXES[suffix]))
    raise DataError(f"{source.name}: unknown file type (expected .tsv, .csv, .txt or .parquet, optionally .gz)")


def _open_stream(source: _Source) -> pa.NativeFile:
    """The file's bytes, decompressed when its name ends in .gz."""
    raw = pa.OSFile(str(source.path)) if source.path is not None else pa.PythonFile(source.open(), mode="r")
    return pa.CompressedInputStream(raw, "gzip") if source.base_name.lower().endswith(".gz") else raw


def _header(source: _Source, encoding: str) -> str:
    """The first line of a text file, without its line end and byte-order mark."""
    try:
        with _open_stream(source) as stream:
            first = b""
            while b"\n" not in first:
                chunk = stream.read(1 << 16)
                if not chunk:
                    break
                first += chunk
        return first.split(b"\n", 1)[0].decode("utf-8-sig" if encoding == "utf-8" else encoding).rstrip("\r\n")
    except (OSError, EOFError, UnicodeDecodeError, pa.ArrowException) as err:
        raise DataError(f"{source.name}: cannot be parsed as delimited text: {err}") from err


def _delimited_tables(source: _Source, options: ReadOptions, extension_sep: str) -> Iterator[pa.Table]:
    """Blocks of a text file's wanted columns as strings (empty fields as nulls), after its header checks."""
    header_line = _header(source, parse_encoding(options.encoding))
    if not header_line.strip():
        raise DataError(f"{source.name}: empty file (no header, no events)")
    wanted = options.columns()
    sep = options.separator_char or detect_separator(header_line, extension_sep)
    header = next(csv.reader([header_line], delimiter=sep))
    _check_columns(header, wanted, source, f"header (split at {separator_name(sep)})",
                   " and the separator with --separator (hyperparameter separator)")
    if len(set(header)) != len(header):
        duplicated = sorted({name for name in header if header.count(name) > 1})
        raise DataError(f"{source.name}: the header names column(s) {duplicated} more than once")
    reading = pcsv.ReadOptions(column_names=header, skip_rows=1, block_size=BLOCK_BYTES,
                               encoding=parse_encoding(options.encoding))
    parsing = pcsv.ParseOptions(delimiter=sep)
    # bytes, decoded block by block (_decoded): a field that is not text is one bad row, not a failed read
    converting = pcsv.ConvertOptions(column_types={name: pa.binary() for name in wanted}, include_columns=wanted,
                                     strings_can_be_null=True, quoted_strings_can_be_null=True, null_values=[""])
    try:
        with _open_stream(source) as stream, pcsv.open_csv(stream, reading, parsing, converting) as reader:
            for batch in reader:
                yield pa.Table.from_batches([batch])
    except (pa.ArrowException, OSError, EOFError) as err:
        raise DataError(f"{source.name}: cannot be parsed as text split at {separator_name(sep)}: {err}") from err


def _parquet_tables(source: _Source, options: ReadOptions) -> Iterator[pa.Table]:
    """Batches of a Parquet file's wanted columns; numeric ids become their integer spelling."""
    import pyarrow.parquet as pq

    wanted = options.columns()
    with source.open() as handle:
        try:
            parquet = pq.ParquetFile(handle)
            present = parquet.schema_arrow.names
        except Exception as err:  # pyarrow raises several types for a corrupt file
            raise DataError(f"{source.name}: cannot be read as Parquet: {err}") from err
        _check_columns(present, wanted, source, "schema", "")
        first_row = 1
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
                table = pa.Table.from_batches([batch])
                for name in (options.session_column, options.item_column, options.kind_column):
                    if name is None:
                        continue
                    ids = _string_ids(table[name], source, name, first_row)
                    table = table.set_column(table.column_names.index(name), name, ids)
                first_row += table.num_rows
                yield table
        except pa.ArrowException as err:
            raise DataError(f"{source.name}: cannot be read as Parquet: {err}") from err


def _string_ids(column: pa.ChunkedArray, source: _Source, name: str, first_row: int) -> pa.ChunkedArray:
    """String ids as they are; other types through the rule of :func:`model_code.data.events._ids_as_strings`."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.cast(pa.string())
    if pa.types.is_dictionary(column.type) and pa.types.is_string(column.type.value_type):
        return column.cast(pa.string())
    strings = _ids_as_strings(column.to_pandas(), source, name, first_row)
    return pa.chunked_array([pa.array(strings.astype(object), type=pa.string(), from_pandas=True)])


def _block(table: pa.Table, file: int, source: _Source, options: ReadOptions, first_line: int,
           unit: str) -> tuple[_Block, BadRows]:
    """One block's good events and its bad rows (line numbers from ``first_line``)."""
    session_name, item_name, time_name = options.columns()[:3]
    table, undecodable = _decoded(table)
    times = _times(table[time_name], options.time_form)
    other = _other_kinds(table, options)
    problems = [
        (ENCODING_REASON, column, rows) for column, rows in undecodable.items()
    ] + [
        ("missing session id", session_name, table[session_name].is_null().to_numpy(zero_copy_only=False)),
        ("missing item id", item_name, table[item_name].is_null().to_numpy(zero_copy_only=False)),
        ("bad time", time_name, ~np.isfinite(times)),
    ]
    bad, taken, examples = BadRows(), other.copy(), []
    for reason, column, rows in problems:
        rows = rows & ~taken
        taken |= rows
        bad.counts[reason] += int(rows.sum())
        for row in np.flatnonzero(rows)[:REPORTED_EXAMPLES]:
            detail = ""
            if reason == "bad time":
                value = table[time_name][int(row)].as_py()
                detail = " (empty)" if value is None else f" {value!r}"
            if reason == ENCODING_REASON:
                detail = f" ({options.encoding}; --encoding names another)"
            examples.append((row, f"{source.name} {unit} {row + first_line}, column {column!r}: {reason}{detail}"))
    bad.examples = [text for _, text in sorted(examples)[:REPORTED_EXAMPLES]]
    good = pa.array(~taken)
    return _Block(
        sessions=_encoded(table[session_name].filter(good)),
        items=_encoded(table[item_name].filter(good)),
        times=times[~taken],
        file=file,
        other_kinds=int(other.sum()),
    ), bad


def _decoded(table: pa.Table) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """The table's binary columns as UTF-8 strings, and per column the rows whose bytes are no UTF-8 (those
    fields become empty strings). A text file's columns arrive as bytes, already transcoded from ``--encoding``."""
    undecodable = {}
    for position, name in enumerate(table.column_names):
        column = table[name]
        if not pa.types.is_binary(column.type):
            continue
        try:
            strings = column.cast(pa.string())
        except pa.ArrowInvalid:
            values = column.to_pylist()
            rows = np.array([value is not None and not _is_utf8(value) for value in values], dtype=bool)
            undecodable[name] = rows
            strings = pa.array([None if value is None else value.decode("utf-8", "replace") if not bad else ""
                                for value, bad in zip(values, rows.tolist())], type=pa.string())
        table = table.set_column(position, name, strings)
    return table, undecodable


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _other_kinds(table: pa.Table, options: ReadOptions) -> np.ndarray:
    """The rows whose event kind is not read (all False without ``--event-types``)."""
    kinds = options.kinds
    if kinds is None:
        return np.zeros(table.num_rows, dtype=bool)
    read = pc.is_in(table[options.kind_column], value_set=pa.array(sorted(kinds), type=pa.string()))
    return ~pc.fill_null(read, False).to_numpy(zero_copy_only=False)


def _encoded(column: pa.ChunkedArray) -> pa.DictionaryArray:
    return pc.dictionary_encode(column.combine_chunks())


def _times(column: pa.ChunkedArray, form: str) -> np.ndarray:
    """Float64 seconds of a block's times by :func:`model_code.data.events.parse_times`; NaN where bad.

    Text in which every value is a plain epoch number (form 1 without spaces) is cast by Arrow,
    which gives the same numbers faster; anything else goes through the rules in full.
    """
    if pa.types.is_string(column.type) and form in ("auto", "epoch_s", "epoch_ms") and column.null_count == 0:
        plain = pc.all(pc.match_substring_regex(column, _EPOCH_ONLY)).as_py()
        if plain or len(column) == 0:
            numbers = pc.cast(column, pa.float64()).to_numpy()
            return numbers / 1000.0 if form == "epoch_ms" else epoch_seconds(numbers) if form == "auto" else numbers
    return parse_times(column.to_pandas(), form)


def _join(blocks: list[_Block], file_names: list[str]) -> EventCodes:
    """The blocks as one set of arrays, their dictionaries unified (ids in first-appearance order).

    ``blocks`` is emptied on the way, so that each block's arrays are freed as soon as they are joined.
    """
    files = None
    if file_names:
        files = np.concatenate([np.full(len(block.times), block.file, dtype=np.int32) for block in blocks])
    times = np.concatenate([block.times for block in blocks])
    sessions = pa.chunked_array([block.sessions for block in blocks])
    items = pa.chunked_array([block.items for block in blocks])
    blocks.clear()
    session_codes, session_ids = _codes(sessions)
    del sessions
    item_codes, item_ids = _codes(items)
    del items
    pa.default_memory_pool().release_unused()
    return EventCodes(sessions=session_codes, items=item_codes, times=times, session_ids=session_ids,
                      item_ids=item_ids, files=files, file_names=file_names)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """The codes (int32) of a column of dictionary blocks in one unified dictionary, and that dictionary."""
    unified = column.unify_dictionaries()
    dictionary = unified.chunk(0).dictionary
    codes = np.empty(len(unified), dtype=np.int32)
    start = 0
    for chunk in unified.chunks:
        codes[start:start + len(chunk)] = chunk.indices.to_numpy()
        start += len(chunk)
    return codes, dictionary


def _order(events: EventCodes, source, log: Callable[[str], None]) -> int:
    """Group ``events`` by session (first-appearance order), then time, in place; log the sessions out of order."""
    order = np.argsort(events.sessions, kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        order = None
    sessions = events.sessions if order is None else events.sessions[order]
    times = events.times if order is None else events.times[order]
    step_back = np.diff(times) < 0
    step_back &= sessions[1:] == sessions[:-1]
    reordered = 0
    if step_back.any():
        backward = sessions[1:][step_back]
        reordered = len(np.unique(backward))
        first = events.session_ids[int(backward[0])].as_py()
        log(f"{source}: {reordered} sessions have events out of time order (first: session {first!r}); "
            f"sorted them by time")
        del sessions, times
        order = np.lexsort((events.times, events.sessions))
        sessions, times = events.sessions[order], events.times[order]
    del step_back
    if order is not None:
        events.sessions, events.times, events.items = sessions, times, events.items[order]
        if events.files is not None:
            events.files = events.files[order]
    return reordered
