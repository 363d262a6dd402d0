"""infra/sql/attribute_answers.sql executed on DuckDB over captured answers and later events with known hits."""

from __future__ import annotations

import datetime as dt

import pytest

from infra.attribution import Period, attribution_sql, check_window
from model_code.data.event_rules import ReadOptions
from tests.support.captures import (
    DAY,
    EXPECTED,
    WINDOW_MINUTES,
    on_duckdb,
    run_attribution,
    write_captures,
    write_events,
)


@pytest.fixture
def connection(tmp_path):
    write_captures(tmp_path / "capture")
    write_events(tmp_path / "incoming")
    return on_duckdb(tmp_path / "capture", tmp_path / "incoming")


THE_DAY, READING = Period(DAY, 1), ReadOptions()


def _attribute(connection, runs=("r1",), period=THE_DAY, window=WINDOW_MINUTES, options=READING):
    return run_attribution(connection, attribution_sql("captures", "events", list(runs), period, window, options))


def _by_key(rows, day):
    return {
        (row["variant"], row["model_version"]): {
            k: v for k, v in row.items() if k not in ("day", "variant", "model_version")
        }
        for row in rows
        if row["day"] == day
    }


def test_the_counts_are_the_hand_worked_ones(connection):
    rows = _attribute(connection)
    for day in (None, DAY.isoformat()):  # the period's rows and the one day's
        got = _by_key(rows, day)
        assert got.keys() == EXPECTED.keys()
        for key, expected in EXPECTED.items():
            assert got[key] == pytest.approx(expected), key
    assert len(rows) == 4


def test_the_other_run_would_change_a_hit(connection):
    """Negative control: reading run r-other too makes its d (at T0 + 125) s3's next event, a hit at rank 1."""
    got = _by_key(_attribute(connection, runs=("r1", "r-other")), None)[("Challenger", "v2")]
    assert (got["hits"], got["rank_sum"], got["clicks"]) == (2, 2, 3)


def test_a_shorter_window_drops_later_events(connection):
    """Five minutes: s4's b (at 380 s after its answer) and s1's e (200 s) fall out, or stay in, as they should."""
    got = _by_key(_attribute(connection, window=5), None)
    assert got[("Challenger", "v2")]["followed"] == 1 and got[("Challenger", "v2")]["hits"] == 0
    assert got[("Champion", "v1")]["clicks"] == 4


def test_the_day_before_is_its_own_period(connection):
    rows = _attribute(connection, period=Period(DAY - dt.timedelta(days=1), 1))
    got = _by_key(rows, None)
    assert list(got) == [("Challenger", "v2")]
    # s1's events of the next day are past the window
    assert (got[("Challenger", "v2")]["answers"], got[("Challenger", "v2")]["followed"]) == (1, 0)


def test_no_run_is_refused():
    with pytest.raises(ValueError, match="runs"):
        attribution_sql("captures", "events", [], Period(DAY, 1), 30)


@pytest.mark.parametrize("minutes", [0, 24 * 60 + 1, 1.5, True])
def test_window_out_of_range_is_refused(minutes):
    with pytest.raises(ValueError, match="attribution_minutes"):
        check_window(minutes)


def test_run_names_are_quoted():
    sql = attribution_sql("captures", "events", ["a'b"], Period(DAY, 1), 30)
    assert "run IN ('a''b')" in sql
