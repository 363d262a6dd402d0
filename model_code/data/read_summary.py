"""What a read of an event log looks like, in words for the data summary: the time span read, what
the reading options changed, and a hint where the "sessions" look like visitors.

A log keyed by visitor and read without ``--session-gap`` trains on whole visitor histories: when
the sessions last longer than :data:`LONG_SESSION_SECONDS` on average, the summary says so and names
the option. Times that fall between :data:`CALENDAR_RANGE` are shown as UTC dates; other numbers
(an order of events, not a clock) are shown as they are.
"""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from model_code.data.event_rules import FLAGS
from model_code.data.event_table import EventCodes, block_starts

DAY_SECONDS = 86_400.0
LONG_SESSION_SECONDS = DAY_SECONDS
CALENDAR_RANGE = (datetime(1990, 1, 1, tzinfo=UTC).timestamp(), datetime(2100, 1, 1, tzinfo=UTC).timestamp())
SUGGESTED_GAP = "30m"


def time_span(times: np.ndarray) -> str:
    """``times 2024-03-01 00:00 to 2024-03-14 23:59 UTC (14.0 days)``, or the numbers where they are no dates."""
    if not len(times):
        return "no times"
    first, last = float(times.min()), float(times.max())
    if CALENDAR_RANGE[0] <= first and last < CALENDAR_RANGE[1]:
        return f"times {_date(first)} to {_date(last)} UTC ({(last - first) / DAY_SECONDS:.1f} days)"
    return f"times {first:g} to {last:g} (numbers that are no dates from 1990 to 2100; see --time-format)"


def mean_session_seconds(events: EventCodes) -> float:
    """The mean time from the first to the last event of a session (events grouped, time-ordered)."""
    if not len(events):
        return 0.0
    starts = block_starts(events.sessions)
    ends = np.append(starts[1:], len(events)) - 1
    return float(np.mean(events.times[ends] - events.times[starts]))


def read_notes(events: EventCodes) -> list[str]:
    """The reading's counts that changed the events, and the hint on long sessions, as phrases."""
    attrs, notes = events.attrs, []
    if attrs.get("other_kinds"):
        notes.append(f"{attrs['other_kinds']} rows of other event kinds left out")
    if attrs.get("sessions_split"):
        notes.append(f"{attrs['sessions_split']} sessions added by the session gap")
    if attrs.get("repeats_collapsed"):
        notes.append(f"{attrs['repeats_collapsed']} consecutive repeats of an item collapsed")
    mean = mean_session_seconds(events)
    if mean > LONG_SESSION_SECONDS:
        notes.append(f"sessions span {mean / DAY_SECONDS:.1f} days on average: if the session column names "
                     f"visitors, split their visits with {FLAGS['session_gap']} {SUGGESTED_GAP} "
                     f"(hyperparameter session_gap)")
    return notes


def _date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d %H:%M")
