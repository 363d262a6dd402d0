"""How event files are read: the options, the accepted time forms and the bad-row policy.

This module is the one definition of these rules. It imports only the standard library, so the
operator CLI can check the same options before it starts anything, and any other reader of the
same files (an Athena query over raw events, for one) implements exactly this list.

Options (command line ``--name``, training-job hyperparameter ``name`` with underscores)::

    --session-column / --item-column / --time-column   column names (default SessionId, ItemId, Time)
    --separator       auto | tab | comma | semicolon | pipe | one character          (default auto)
    --time-format     auto | epoch_s | epoch_ms | datetime | a %-pattern             (default auto)
    --max-bad-rows    a count (integer >= 0) or a share of the rows read (0.01, 1%)   (default 1%)
    --session-gap     off, or a duration (30m, 1800s, 2h, 1d; a bare number is seconds)  (default off)
    --event-column    the column of the event kind (view, cart, ...), or none          (default none)
    --event-types     the kinds kept, comma-separated, or all                          (default all)
    --encoding        the text files' encoding: utf-8, latin-1, cp1252, ... (Python's names) (default utf-8)

Separator ``auto``: of tab, comma, semicolon and pipe, the one that splits the header line into
the most fields; when none of them occurs there, the file's extension decides (``.csv`` comma,
``.tsv`` and ``.txt`` tab). Parquet files have no separator.

Time forms, ``--time-format auto``; each value is read by the first form it matches, spaces
around it ignored, anything else is a bad time:

1. an epoch number: a decimal number, optionally signed, optionally with a fraction
   (``1709421011``, ``1709421011.25``). Its magnitude gives its unit: below :data:`EPOCH_MS_FROM`
   (1e11, the year 5138 in seconds) seconds, kept as it is, so any small number that orders events
   works; from 1e11 milliseconds (``1709421011250``: 1973 onwards) and from :data:`EPOCH_US_FROM`
   (1e14) microseconds, both divided down to seconds;
2. a date-time: ``YYYY-MM-DD``, optionally followed by ``T`` or one space and ``HH:MM``,
   ``HH:MM:SS`` or ``HH:MM:SS.f`` (1-9 fraction digits), optionally followed, after an optional
   space, by a zone: ``Z``, ``UTC``, or an offset ``+hh:mm``, ``+hhmm`` or ``+hh`` (or ``-``).
   Without a zone the time is UTC. This covers ISO 8601 (``2024-03-02T23:08:31Z``,
   ``2024-03-02T23:08:31.250+01:00``) and the export form ``2024-03-02 23:08:31 UTC``.

The other ``--time-format`` values read one form only: ``epoch_s`` (form 1, every number kept as
seconds), ``epoch_ms`` (a number of milliseconds, divided by 1000), ``datetime`` (form 2), or a pattern made of the
directives ``%Y %m %d %H %M %S %f %z %%`` and literal characters, such as ``%d/%m/%Y %H:%M``
(without ``%z`` the time is UTC). Date-times become Unix seconds.

Bad rows: a row whose session id is empty, whose item id is empty, or whose time is empty or not
of the accepted forms is skipped (one reason per row, checked in that order); so is, for the local
reader, a row of a text file with a field that is not text of ``--encoding`` (:data:`ENCODING_REASON`:
one stray byte fails no read). The skipped rows
are reported as log lines: the count per reason and the first :data:`REPORTED_EXAMPLES` with
file, line (row, for Parquet) and column. When more rows are skipped than ``--max-bad-rows``
allows, counted over all files of the source, reading fails with the same report. A file in
which every row has a bad time fails on its own, naming ``--time-format``: its times are of another form.

Event kinds: with ``--event-column``, only the rows whose kind is one of ``--event-types`` are
read (all kinds when ``all``); the others are neither events nor bad rows, only counted. The kinds
make repeats (a product viewed, then put in the cart), so with an event column the consecutive
repeats of one item in a session are collapsed into the first, as the reference protocol's
preprocessing does, and counted.

Sessions by inactivity: with ``--session-gap``, the session column names a visitor (or any key
whose events may span many visits). A visitor's events, ordered by time, are split where the time
from one event to the next exceeds the gap; the sessions are named ``<visitor>#<n>``, n counting
from 1 in time order. Event kinds are filtered before the split, repeats collapsed after it.
"""
from __future__ import annotations

import argparse
import codecs
import re
from dataclasses import dataclass

SESSION, ITEM, TIME = "SessionId", "ItemId", "Time"
SESSION_ITEMS_KEPT = 200
"""Items kept per session when events are grouped into sessions to score (``model_code.data.sessions``, its Athena
twin infra/sql/group_sessions.sql): the latest ones, as the scorer reads at most this many."""
REPORTED_EXAMPLES = 5

SEPARATORS = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
"""The separators ``auto`` chooses among, by name."""
SEPARATOR_ALLOWED = "auto, tab, comma, semicolon, pipe, or one character"

TIME_FORMATS = ("auto", "epoch_s", "epoch_ms", "datetime")
PATTERN_DIRECTIVES = frozenset("YmdHMSfz%")
TIME_FORMAT_ALLOWED = (f"{', '.join(TIME_FORMATS)}, or a pattern of "
                       f"{' '.join('%' + d for d in sorted(PATTERN_DIRECTIVES))} and literal characters")

EPOCH_PATTERN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
"""Form 1 of the time forms: epoch seconds."""
DATETIME_PATTERN = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"
    r"(?:[T ](?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?)?"
    r"(?: ?(?P<zone>Z|UTC|[+-]\d{2}(?::?\d{2})?))?"
)
"""Form 2 of the time forms: a date-time (named groups: its fields)."""

EPOCH_MS_FROM = 1e11
"""Under ``--time-format auto``, an epoch number of at least this magnitude is in milliseconds."""
EPOCH_US_FROM = 1e14
"""Under ``--time-format auto``, an epoch number of at least this magnitude is in microseconds."""
SESSION_NUMBER_MARK = "#"
"""Between a visitor and the number of one of its sessions, with ``--session-gap``: ``visitor#2``."""
GAP_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SESSION_GAP_ALLOWED = "off, or a duration > 0: a number with s, m, h or d (30m, 1800s, 1.5h; a bare number is seconds)"
EVENT_TYPES_ALLOWED = "all, or event kinds separated by commas (view,cart)"

BAD_ROW_REASONS = ("missing session id", "missing item id", "bad time")
ENCODING_REASON = "not text of the encoding"
"""The local reader's fourth bad-row reason: a field whose bytes are not text of ``--encoding``."""
DEFAULT_MAX_BAD_ROWS = "1%"
MAX_BAD_ROWS_ALLOWED = "a count (an integer >= 0, e.g. 100) or a share of the rows read (e.g. 0.01 or 1%)"


class OptionError(ValueError):
    """A reading option's value that cannot be used: ``message`` says what is allowed."""

    def __init__(self, value: str, allowed: str):
        super().__init__(f"cannot use {value!r}; allowed: {allowed}")
        self.value = value
        self.allowed = allowed


@dataclass(frozen=True)
class BadRowBound:
    """How many bad rows a read may skip: a fixed count, or a share of the rows read."""

    count: int | None = None
    share: float | None = None

    def limit(self, rows: int) -> int:
        """Bad rows allowed among ``rows`` rows read."""
        return self.count if self.count is not None else int(self.share * rows)

    def describe(self) -> str:
        return f"{self.count} rows" if self.count is not None else f"{self.share:.4g} of the rows read"


def parse_separator(text: str) -> str | None:
    """``auto`` -> None (detect); a name or one character -> the character."""
    value = str(text)
    if value.strip().lower() == "auto":
        return None
    if value.strip().lower() in SEPARATORS:
        return SEPARATORS[value.strip().lower()]
    if value == "\\t":
        return "\t"
    if len(value) != 1 or value in "\"\r\n":
        raise OptionError(value, SEPARATOR_ALLOWED)
    return value


def parse_time_format(text: str) -> str:
    """One of :data:`TIME_FORMATS`, or a pattern whose directives are all in :data:`PATTERN_DIRECTIVES`."""
    value = str(text).strip()
    if value.lower() in TIME_FORMATS:
        return value.lower()
    directives = re.findall(r"%(.?)", value)
    if not directives or any(d not in PATTERN_DIRECTIVES for d in directives):
        raise OptionError(value, TIME_FORMAT_ALLOWED)
    if not {"Y", "m", "d"} <= set(directives):
        raise OptionError(value, TIME_FORMAT_ALLOWED + " (a pattern needs at least %Y, %m and %d)")
    return value


def parse_max_bad_rows(text: str) -> BadRowBound:
    """``100`` -> a count; ``0.01`` or ``1%`` -> a share (from 0 to 1)."""
    value = str(text).strip()
    try:
        if value.endswith("%"):
            share = float(value[:-1]) / 100
        elif re.fullmatch(r"\d+", value):
            return BadRowBound(count=int(value))
        else:
            share = float(value)
    except ValueError:
        raise OptionError(value, MAX_BAD_ROWS_ALLOWED) from None
    if not 0.0 <= share <= 1.0:
        raise OptionError(value, MAX_BAD_ROWS_ALLOWED)
    return BadRowBound(share=share)


def parse_column(text: str) -> str:
    value = str(text)
    if not value.strip():
        raise OptionError(value, "a column name (not empty)")
    return value


def parse_encoding(text: str) -> str:
    """A text encoding Python knows (``utf-8``, ``latin-1``, ``cp1252``, ...), by its canonical name."""
    try:
        return codecs.lookup(str(text).strip()).name
    except LookupError:
        raise OptionError(str(text), "a text encoding such as utf-8, latin-1 or cp1252") from None


def parse_optional_column(text: str) -> str | None:
    """``none`` or nothing -> None; else a column name."""
    value = str(text)
    return None if value.strip().lower() in ("", "none") else value


def parse_session_gap(text: str) -> float | None:
    """``off`` -> None (sessions as written); ``30m``, ``1800s``, ``1800`` -> seconds (> 0)."""
    value = str(text).strip().lower()
    if value == "off":
        return None
    match = re.fullmatch(r"(\d+\.?\d*|\.\d+) ?([smhd]?)", value)
    seconds = float(match[1]) * GAP_UNITS[match[2] or "s"] if match else 0.0
    if not 0.0 < seconds < float("inf"):
        raise OptionError(str(text), SESSION_GAP_ALLOWED)
    return seconds


def parse_event_types(text: str) -> frozenset[str] | None:
    """``all`` -> None (every kind); ``view,cart`` -> those kinds (spaces around each dropped)."""
    value = str(text).strip()
    if value.lower() == "all":
        return None
    kinds = [kind.strip() for kind in value.split(",")]
    if not value or any(not kind for kind in kinds):
        raise OptionError(str(text), EVENT_TYPES_ALLOWED)
    return frozenset(kinds)


@dataclass(frozen=True)
class ReadOption:
    """One reading option: its name (a hyperparameter; ``--name-with-dashes`` on the command line)."""

    name: str
    parse: object  # Callable[[str], Any]
    default: str
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


READ_OPTIONS = (
    ReadOption("session_column", parse_column, SESSION, "name of the session id column"),
    ReadOption("item_column", parse_column, ITEM, "name of the item id column"),
    ReadOption("time_column", parse_column, TIME, "name of the time column"),
    ReadOption("separator", parse_separator, "auto", f"field separator of text files: {SEPARATOR_ALLOWED}"),
    ReadOption("time_format", parse_time_format, "auto",
               "how times are written: auto (epoch seconds or date-times, see model_code/data/event_rules.py), "
               "epoch_s, epoch_ms, datetime, or a pattern such as '%%d/%%m/%%Y %%H:%%M'"),
    ReadOption("max_bad_rows", parse_max_bad_rows, DEFAULT_MAX_BAD_ROWS,
               "skip and report at most this many bad rows (empty id, bad time), then fail: "
               "a count (0: fail on the first) or a share of the rows read (0.01 or 1%%)"),
    ReadOption("session_gap", parse_session_gap, "off",
               "split each session (a visitor's events) where the time between two events exceeds this: "
               "30m, 1800s, 2h, 1d (a bare number is seconds), or off"),
    ReadOption("event_column", parse_optional_column, "none",
               "name of the event kind column (view, cart, ...), or none; with it, consecutive repeats of "
               "an item in a session are collapsed"),
    ReadOption("event_types", parse_event_types, "all",
               "the event kinds read, comma-separated (view,cart), or all; needs --event-column"),
    ReadOption("encoding", parse_encoding, "utf-8",
               "the encoding of text files (utf-8, latin-1, cp1252, ...); a field not of it is a bad row"),
)
READ_OPTION_NAMES = tuple(option.name for option in READ_OPTIONS)
FLAGS = {option.name: option.flag for option in READ_OPTIONS}


@dataclass(frozen=True)
class ReadOptions:
    """How to read event files; values as given on the command line, checked on creation."""

    session_column: str = SESSION
    item_column: str = ITEM
    time_column: str = TIME
    separator: str = "auto"
    time_format: str = "auto"
    max_bad_rows: str = DEFAULT_MAX_BAD_ROWS
    session_gap: str = "off"
    event_column: str = "none"
    event_types: str = "all"
    encoding: str = "utf-8"

    def __post_init__(self):
        for option in READ_OPTIONS:
            option.parse(getattr(self, option.name))
        if self.kinds is not None and self.kind_column is None:
            raise OptionError(self.event_types, "all, unless --event-column names the column of the kinds")

    def columns(self) -> list[str]:
        """The columns read: session, item, time, and the event kind's where one is named."""
        kind = [self.kind_column] if self.kind_column is not None else []
        return [self.session_column, self.item_column, self.time_column] + kind

    @property
    def gap_seconds(self) -> float | None:
        return parse_session_gap(self.session_gap)

    @property
    def kind_column(self) -> str | None:
        return parse_optional_column(self.event_column)

    @property
    def kinds(self) -> frozenset[str] | None:
        return parse_event_types(self.event_types)

    @property
    def separator_char(self) -> str | None:
        return parse_separator(self.separator)

    @property
    def time_form(self) -> str:
        return parse_time_format(self.time_format)

    @property
    def bad_row_bound(self) -> BadRowBound:
        return parse_max_bad_rows(self.max_bad_rows)


def add_read_options(parser: argparse.ArgumentParser) -> None:
    """The reading options as command-line flags (checked by :func:`read_options`)."""
    group = parser.add_argument_group("reading the event files (see model_code/data/event_rules.py)")
    for option in READ_OPTIONS:
        group.add_argument(option.flag, dest=option.name, default=option.default, type=_checked(option),
                           help=f"{option.help} (default: {option.default.replace('%', '%%')})")


def read_options(args: argparse.Namespace) -> ReadOptions:
    """The parsed flags of :func:`add_read_options` as :class:`ReadOptions`."""
    return ReadOptions(**{name: getattr(args, name) for name in READ_OPTION_NAMES})


TRAINED_READ_OPTIONS = "read_options"
"""The key of a model's metadata.json that records the reading options it was trained with."""


def add_trained_read_options(parser: argparse.ArgumentParser) -> None:
    """The reading flags of a command that reads events for a trained model: a flag not given takes the value
    the model was trained with (:func:`trained_read_options`), not the built-in default."""
    add_read_options(parser)
    parser.set_defaults(**{name: None for name in READ_OPTION_NAMES})


def trained_read_options(args: argparse.Namespace, metadata: dict) -> ReadOptions:
    """The flags of :func:`add_trained_read_options` given, the rest from the model's ``metadata`` (its
    :data:`TRAINED_READ_OPTIONS`), else the built-in defaults."""
    trained = metadata.get(TRAINED_READ_OPTIONS) or {}
    values = {option.name: getattr(args, option.name) for option in READ_OPTIONS}
    return ReadOptions(**{option.name: values[option.name] if values[option.name] is not None
                          else str(trained.get(option.name, option.default)) for option in READ_OPTIONS})


def _checked(option: ReadOption):
    def check(text: str) -> str:
        try:
            option.parse(text)
        except OptionError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text

    check.__name__ = option.name
    return check
