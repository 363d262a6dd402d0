"""Event files that both session groupers (model_code.data.sessions and infra/sql/group_sessions.sql) read.

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


VISIT_OPTIONS = dict(session_column="visitor", item_column="product_id", time_column="event_time",
                     event_column="event_type", session_gap="30m", event_types="view,cart", max_bad_rows="5")
"""The reading options of the visitor log below (keyword arguments of ReadOptions)."""
VISIT_HEADER = ("visitor", "event_type", "product_id", "event_time")
VISITS_FIRST = [
    ("v1", "view", "a", "1700000000000"),     # epoch milliseconds
    ("v1", "cart", "a", "1700000060000"),     # the same product put in the cart: a repeat, collapsed
    ("v1", "view", "b", "1700000120000"),
    ("v1", "purchase", "b", "1700000130000"),  # a kind not read
    ("v1", "view", "c", "1700003000000"),     # 2880 s after b: a second session
    ("v2", "view", "x", "2024-03-02T10:00:00Z"),
    ("v2", "view", "y", "2024-03-02T10:29:59Z"),  # 1799 s later: the same session
    ("v2", "view", "y", "2024-03-02T11:00:00Z"),  # 1801 s later: a new session, so no repeat
    ("v3", "purchase", "z", "5"),              # a visitor with no event of the kinds read
    ("v4", "view", "p", "1700000000.5"),      # epoch seconds
    ("v4", "", "q", "1700000001"),             # no kind: not read
    ("v5", "view", "", "1700000001"),          # a bad row: missing item id
]
VISITS_SECOND = [
    ("v1", "view", "c", "1700003000000"),     # the same time as c in the first file: a repeat after it
    ("v1", "cart", "d", "1700003000000"),
    ("v1", "view", "b", "1700003001"),        # epoch seconds, one second later
    ("v2", "view", "z", "1709373600"),        # 2024-03-02T10:00:00Z in seconds: the file path orders it after x
]
VISIT_SESSIONS = {
    "v1#1": ["a", "b"],
    "v1#2": ["c", "d", "b"],
    "v2#1": ["x", "z", "y"],
    "v2#2": ["y"],
    "v4#1": ["p"],
}
"""The visitor log's sessions by those options (written out by hand from the rows above)."""
VISIT_COUNTS = {"rows_read": 16, "other_kinds": 3, "bad_rows": 1, "repeats_collapsed": 2, "sessions_split": 2}


def write_visits(folder: Path) -> Path:
    """The visitor log as two tab-separated files of one run in ``folder`` (created); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("part-0001.tsv", VISITS_FIRST), ("part-0002.tsv", VISITS_SECOND)):
        (folder / name).write_text("\n".join("\t".join(row) for row in [VISIT_HEADER, *rows]) + "\n", encoding="utf-8")
    return folder
