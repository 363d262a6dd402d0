"""Event files rewritten for the stage's events table: its columns, picked from each file by header name.

The Glue table over ``events/incoming/<run>/`` reads delimited text by position (session, item, time
and, where the stage names one, the event kind) with the separator it was deployed with. A shop's
export seldom has exactly those columns in that order, so ``score-events`` reads each local file
(CSV, TSV or Parquet, gzip or not; the separator of text files found as the local reader finds it),
takes the table's columns by name (case-insensitively, as Athena names them in lower case) and uploads
them as gzip-compressed text in the table's order and separator, header line first. A value that
holds the separator or a line break could not be read back by position: it is refused, naming the
file, line and column.
"""
from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from infra.layout import EVENTS_TABLE, events_database
from infra.ops.errors import OpsError


@dataclass(frozen=True)
class TableLayout:
    """What the events table reads: its columns in order, and its field separator."""

    columns: tuple[str, ...]
    separator: str


def table_layout(glue, stage: str) -> TableLayout | None:
    """The stage's events table as Glue describes it, or None where the stage has no such table."""
    try:
        table = glue.get_table(DatabaseName=events_database(stage), Name=EVENTS_TABLE)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None
    descriptor = table["StorageDescriptor"]
    columns = tuple(column["Name"] for column in descriptor["Columns"])
    return TableLayout(columns, descriptor["SerdeInfo"]["Parameters"]["field.delim"])


def rewritten_name(path: Path) -> str:
    """The uploaded name of a rewritten file: its name without compression or format suffix, ``.txt.gz``."""
    name = path.name
    for suffix in (".gz", ".parquet", ".pq", ".tsv", ".csv", ".txt"):
        name = name.removesuffix(suffix) if name.lower().endswith(suffix) else name
    return f"{name}.txt.gz"


def rewrite(path: Path, layout: TableLayout) -> bytes:
    """The table's columns of ``path``, by header name, as gzip-compressed text the table reads."""
    header, rows = _columns(path, layout)
    text = io.StringIO()
    text.write(layout.separator.join(header) + "\n")
    for line, values in enumerate(zip(*rows), start=2):
        for name, value in zip(layout.columns, values):
            if layout.separator in value or "\n" in value or "\r" in value:
                raise OpsError(f"{path} line {line}, column {name!r}: the value {value!r} holds the table's "
                               f"separator or a line break, which the table cannot read by position")
        text.write(layout.separator.join(values) + "\n")
    return gzip.compress(text.getvalue().encode("utf-8"), mtime=0)


def _columns(path: Path, layout: TableLayout) -> tuple[list[str], list[list[str]]]:
    """(the file's names of the table's columns, each column's values as text; empty for missing)."""
    import pyarrow as pa

    table = _read_parquet(path) if _is_parquet(path) else _read_text(path)
    by_lower = {name.lower(): name for name in table.column_names}
    missing = [column for column in layout.columns if column.lower() not in by_lower]
    if missing:
        raise OpsError(f"{path}: no column {missing[0]!r} (the events table reads {', '.join(layout.columns)}, in "
                       f"any case); found {table.column_names}")
    names = [by_lower[column.lower()] for column in layout.columns]
    values = [["" if value is None else str(value) for value in table[name].cast(pa.string()).to_pylist()]
              for name in names]
    return list(layout.columns), values


def _is_parquet(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith((".parquet", ".pq"))


def _read_parquet(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise OpsError(f"{path}: cannot be read as Parquet: {err}") from None


def _read_text(path: Path):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from model_code.data.events import detect_separator

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
        header_line = handle.readline().rstrip("\r\n")
    extension = "," if path.name.lower().removesuffix(".gz").endswith(".csv") else "\t"
    separator = detect_separator(header_line, extension)
    header = next(csv.reader([header_line], delimiter=separator))
    try:
        return pcsv.read_csv(path, pcsv.ReadOptions(column_names=header, skip_rows=1),
                             pcsv.ParseOptions(delimiter=separator),
                             pcsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                                 strings_can_be_null=False))
    except pa.ArrowInvalid as err:
        raise OpsError(f"{path}: cannot be read as text split at {separator!r}: {err}") from None
