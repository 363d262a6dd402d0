"""Which model earns the clicks: the attribution query (``infra/sql/attribute_answers.sql``) and its figures.

The query joins the endpoint's captured answers to the same sessions' later events and counts, per day,
production variant and ``model_version``; :func:`figures` turns one row of counts into the rates a shop
reads: hit rate (the next item was among the recommendations), mean rank and reciprocal rank of those
hits, clicks on recommended items per answer, catalogue coverage and the share of requested items the
model did not know.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from infra.session_query import quote_string, read_sql, rows_sql
from model_code.data.event_rules import ReadOptions

COUNT_COLUMNS = ("answers", "attributable", "followed", "hits", "rank_sum", "reciprocal_rank_sum", "clicks", "sessions",
                 "requested_items", "unknown_items", "recommended_items", "catalogue_items")
"""The query's counts, after its key columns ``day``, ``variant`` and ``model_version``."""
MAX_WINDOW_MINUTES = 24 * 60
"""The longest attribution window: an answer's later events count for at most a day."""
MAX_DAYS = 90
DEFAULT_OPTIONS = ReadOptions()


@dataclass(frozen=True)
class Period:
    """Whole UTC days: ``days`` days from ``first`` on."""

    first: dt.date
    days: int

    def __post_init__(self):
        if not 1 <= self.days <= MAX_DAYS:
            raise ValueError(f"days: from 1 to {MAX_DAYS}, got {self.days}")

    @classmethod
    def ending(cls, last: dt.date, days: int) -> Period:
        """The ``days`` days up to and including ``last``."""
        return cls(last - dt.timedelta(days=days - 1), days)

    @property
    def last(self) -> dt.date:
        return self.first + dt.timedelta(days=self.days - 1)

    def seconds(self) -> tuple[float, float]:
        """The period as Unix seconds, start included, end not."""
        start = dt.datetime.combine(self.first, dt.time(), tzinfo=dt.UTC).timestamp()
        return start, start + self.days * 86400.0


def check_window(minutes: int) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_WINDOW_MINUTES:
        raise ValueError(f"attribution_minutes: a whole number of minutes from 1 to {MAX_WINDOW_MINUTES}, "
                         f"got {minutes!r}")
    return minutes


def attribution_sql(captures: str, events: str, runs: list[str], period: Period, window_minutes: int,
                    options: ReadOptions = DEFAULT_OPTIONS) -> str:
    """The attribution SELECT over the ``captures`` table and the ``runs`` of the ``events`` table."""
    if not runs:
        raise ValueError("runs: name at least one run of events to attribute the answers to")
    start, end = period.seconds()
    return attribution_template(captures, events, ", ".join(quote_string(run) for run in runs),
                                quote_string(period.first.strftime("%Y/%m/%d")),
                                quote_string(period.last.strftime("%Y/%m/%d")),
                                f"CAST({start!r} AS DOUBLE)", f"CAST({end!r} AS DOUBLE)", window_minutes, options)


def attribution_template(captures: str, events: str, runs: str, first_day: str, last_day: str, start: str, end: str,
                         window_minutes: int, options: ReadOptions = DEFAULT_OPTIONS) -> str:
    """The attribution SELECT with its runs (string literals, comma-separated), days ('yyyy/MM/dd' literals) and
    bounds (DOUBLE expressions in Unix seconds) given as SQL text, for a caller that fills them in later."""
    return read_sql("attribute_answers.sql").format(
        rows=rows_sql(events, runs, options), captures=captures, first_day=first_day, last_day=last_day,
        start=start, end=end, window=f"CAST({float(check_window(window_minutes) * 60)!r} AS DOUBLE)")


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def figures(counts: dict) -> dict:
    """The rates of one row of counts (None where nothing was there to count)."""
    hits, followed = counts["hits"], counts["followed"]
    return {
        "hit_rate": _ratio(hits, followed),
        "mean_rank": _ratio(counts["rank_sum"], hits),
        "mrr": _ratio(counts["reciprocal_rank_sum"], followed),
        "clicks_per_answer": _ratio(counts["clicks"], followed),
        "followed_share": _ratio(followed, counts["attributable"]),
        "coverage": _ratio(counts["recommended_items"], counts["catalogue_items"]),
        "unknown_share": _ratio(counts["unknown_items"], counts["requested_items"]),
    }


def read_rows(header: list[str], rows: list[list[str | None]]) -> list[dict]:
    """The query's rows as Athena's GetQueryResults gives them (every value a string or absent) as dicts
    of numbers, keys kept as text (``day`` None on the period's rows)."""
    out = []
    for row in rows:
        record = dict(zip(header, row))
        out.append({"day": record.get("day") or None, "variant": record.get("variant"),
                    "model_version": record.get("model_version"),
                    **{column: _number(record.get(column)) for column in COUNT_COLUMNS}})
    return out


def _number(text: str | None) -> float | int:
    if text in (None, ""):
        return 0
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
