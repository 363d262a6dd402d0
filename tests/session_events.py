"""Event files that both session groupers (model_code.sessions and infra/sql/group_sessions.sql) read.

Two tab-separated files of one run, the second gzip-compressed, with: a session split across the
files, duplicate timestamps inside a file and across files, unicode item ids, every accepted time
form, events written out of time order, a session longer than the 200 items kept, a one-event
session, and one bad row of each kind (missing session id, missing item id, bad times).
"""
from __future__ import annotations

import gzip
from pathlib import Path

BAD_ROWS = {"missing session id": 1, "missing item id": 1, "bad time": 3}
LONG_SESSION_EVENTS = 205

FIRST = [
    ("split", "x", "100"),
    ("split", "b", "105"),
    ("split", "a", "105"),            # same time as b, same file: item id decides
    ("split", "z", "110"),            # same time as the second file's "a": the file path decides
    ("unicode", "商品7", "2024-03-02T23:08:31Z"),
    ("unicode", "é", "2024-03-02 23:08:31 UTC"),   # the same instant as 商品7, written another way
    ("unicode", "e", "2024-03-03T00:08:31+01:00"),  # the same instant again
    ("unicode", "ü-ß", "2024-03-02T23:08:30.250"),
    ("late", "q", "50.5"),
    ("late", "p", "20"),              # written after q but earlier in time
    ("", "orphan", "10"),             # missing session id
    ("split", "", "10"),              # missing item id
    ("split", "y", "yesterday"),      # bad time
    ("split", "y", "2024-02-30T00:00:00Z"),  # no such date
    ("alone", "only", " 1709421011 "),  # spaces around a time are ignored
]
SECOND = [
    ("split", "a", "110"),
    ("split", "c", "+120."),
    ("split", "w", "2024-13-01"),     # bad time: no 13th month
    ("duplicates", "k", "7"),
    ("duplicates", "k", "7"),
] + [("long", f"item{n:03d}", str(1000 + n)) for n in range(LONG_SESSION_EVENTS)]


def _text(rows) -> str:
    return "SessionId\tItemId\tTime\n" + "".join("\t".join(row) + "\n" for row in rows)


def write_run(folder: Path) -> Path:
    """The run's two files in ``folder`` (created); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0001.tsv").write_text(_text(FIRST), encoding="utf-8")
    with gzip.open(folder / "part-0002.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.write(_text(SECOND))
    return folder


def write_two_runs(incoming: Path, other_run_text: str) -> Path:
    """The shared run's files as ``incoming/run-2``, beside ``incoming/run-1`` holding one file of
    ``other_run_text``: rows a query of run-2 must not read. Returns ``incoming``."""
    write_run(incoming / "run-2")
    other = incoming / "run-1"
    other.mkdir(parents=True)
    (other / "part-0001.tsv").write_text(other_run_text, encoding="utf-8")
    return incoming


EXPECTED = {
    "split": ["x", "a", "b", "z", "a", "c"],
    "unicode": ["ü-ß", "e", "é", "商品7"],
    "late": ["p", "q"],
    "alone": ["only"],
    "duplicates": ["k", "k"],
    "long": [f"item{n:03d}" for n in range(LONG_SESSION_EVENTS - 200, LONG_SESSION_EVENTS)],
}
"""Each session's items as both groupers must give them (written out by hand from the rows above)."""
