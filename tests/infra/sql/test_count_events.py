"""infra/sql/count_events.sql and count_answers.sql executed on DuckDB, against counts made here.

The dialect differences of tests/infra/sql/test_group_sessions.py hold for count_events.sql (it reads
the rows through the same event_rows.sql). For count_answers.sql, over the transform output:

- Athena reads the ``.out`` files through a Glue table with the Hive JSON SerDe, which takes the
  declared columns (session_id, fallback, error) of each line and NULL for a key the line lacks;
  DuckDB's ``read_json`` with the same ``columns`` does the same.
- ``"$path"`` is DuckDB's ``filename`` column, renamed by the view, and ``run`` the folder's name,
  as the table's projection derives it from ``sessions/scored/<run>/``.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from inference.predictor import create_app
from infra.session_query import REASON_COLUMNS, answers_sql, count_sql, quote_string
from model_code.artifacts import read_items
from model_code.data.event_rules import BAD_ROW_REASONS, ReadOptions
from model_code.data.event_table import read_events
from tests.infra.sql.test_group_sessions import OPTIONS, events_on_duckdb, run_on_duckdb
from tests.support.session_events import (
    BAD_ROWS,
    EXPECTED,
    FIRST,
    SECOND,
    VISIT_COUNTS,
    VISIT_OPTIONS,
    VISIT_SESSIONS,
    write_two_runs,
    write_visits,
)


def counts_on_duckdb(connection: duckdb.DuckDBPyConnection, query: str) -> dict[str, int]:
    """The one row of ``query``, by column name."""
    cursor = connection.execute(query)
    (row,) = cursor.fetchall()
    return dict(zip([column[0] for column in cursor.description], row))


@pytest.fixture
def incoming(tmp_path) -> Path:
    """The shared run's files as run-2, beside another run whose rows must not be counted."""
    return write_two_runs(tmp_path / "incoming", "SessionId\tItemId\tTime\n\tstranger\t1\nx\ty\tnever\n")


def test_event_counts_are_the_fixtures_and_the_local_readers(incoming):
    counts = counts_on_duckdb(events_on_duckdb(incoming), count_sql("events", quote_string("run-2"), OPTIONS))
    assert list(counts) == ["rows_read", *REASON_COLUMNS.values(), "sessions", "other_kinds"]
    skipped = {reason: counts[REASON_COLUMNS[reason]] for reason in BAD_ROW_REASONS}
    # written out by hand with the rows of tests/support/session_events.py
    assert counts["rows_read"] == len(FIRST) + len(SECOND)
    assert skipped == BAD_ROWS
    assert counts["sessions"] == len(EXPECTED)
    # the local reader over the same files
    local = read_events(incoming / "run-2", OPTIONS, lambda line: None)
    assert counts["rows_read"] == local.attrs["rows_read"]
    assert {reason: count for reason, count in skipped.items() if count} == local.attrs["skipped_rows"]


def test_a_visitor_logs_counts_are_its_sessions_after_the_gap(tmp_path):
    write_visits(tmp_path / "incoming" / "r")
    counts = counts_on_duckdb(events_on_duckdb(tmp_path / "incoming"),
                              count_sql("events", quote_string("r"), ReadOptions(**VISIT_OPTIONS)))
    assert counts == {"rows_read": VISIT_COUNTS["rows_read"], "missing_session_id": 0,
                      "missing_item_id": VISIT_COUNTS["bad_rows"], "bad_time": 0, "sessions": len(VISIT_SESSIONS),
                      "other_kinds": VISIT_COUNTS["other_kinds"]}


def test_a_run_of_bad_rows_only_counts_no_session(tmp_path):
    run = tmp_path / "incoming" / "r"
    run.mkdir(parents=True)
    (run / "part-1.tsv").write_text(
        "SessionId\tItemId\tTime\n\ta\t1\ns\t\t1\ns\ta\tsoon\ns\t\tsoon\n", encoding="utf-8"
    )
    counts = counts_on_duckdb(events_on_duckdb(tmp_path / "incoming"), count_sql("events", quote_string("r")))
    # one reason per row, the first that applies: a row with no item and a bad time is a missing item id
    assert counts == {"rows_read": 4, "missing_session_id": 1, "missing_item_id": 2, "bad_time": 1, "sessions": 0,
                      "other_kinds": 0}


def test_the_counts_read_the_contexts_columns_and_time_form(tmp_path):
    run = tmp_path / "incoming" / "r"
    run.mkdir(parents=True)
    (run / "part-1.tsv").write_text(
        "user\tItemId\tTime\nu\tb\t2000\nv\ta\t2024-03-02\nu\tc\t2000.5\n", encoding="utf-8"
    )
    options = ReadOptions(session_column="user", time_format="epoch_ms")
    counts = counts_on_duckdb(events_on_duckdb(tmp_path / "incoming"), count_sql("events", quote_string("r"), options))
    assert counts == {"rows_read": 3, "missing_session_id": 0, "missing_item_id": 0, "bad_time": 1, "sessions": 1,
                      "other_kinds": 0}


def test_answer_counts_are_the_containers_lines(incoming, tmp_path, model_dir):
    """The run's grouped sessions (none of whose items the model knows: all fall back), one session it
    knows and one line it refuses, scored by the container as Batch Transform would send them."""
    grouped = run_on_duckdb(incoming, "run-2", tmp_path / "grouped.json")
    known = json.dumps({"session_id": "known", "items": [read_items(model_dir)[0]]})
    refused = json.dumps({"session_id": "refused", "items": "not a list"})
    body = "\n".join([*grouped, known, refused]).encode() + b"\n"
    response = create_app(model_dir).test_client().post("/invocations", data=body, content_type="application/jsonlines")
    assert response.status_code == 200
    answers = response.get_data(as_text=True)
    scored = tmp_path / "scored"
    (scored / "run-2").mkdir(parents=True)
    (scored / "run-2" / "20261129_000001_part0.gz.out").write_text(answers, encoding="utf-8")
    (scored / "run-2" / "summary.json").write_text('{"session_id": "not an answer"}\n', encoding="utf-8")
    (scored / "run-1").mkdir()
    (scored / "run-1" / "other.gz.out").write_text(answers, encoding="utf-8")

    lines = [json.loads(line) for line in answers.splitlines()]
    expected = {"answer_lines": len(lines),
                "sessions_scored": sum("error" not in line for line in lines),
                "fallback_sessions": sum(line.get("fallback") is True for line in lines),
                "error_lines": sum("error" in line for line in lines)}
    assert expected == {"answer_lines": len(EXPECTED) + 2, "sessions_scored": len(EXPECTED) + 1,
                        "fallback_sessions": len(EXPECTED), "error_lines": 1}
    connection = duckdb.connect()
    connection.execute(f"""
        CREATE VIEW answers AS
        SELECT *, filename AS "$path", regexp_extract(filename, '/([^/]+)/[^/]+$', 1) AS run
        FROM read_json('{scored}/*/*', format = 'newline_delimited', filename = true,
                       columns = {{session_id: 'VARCHAR', fallback: 'BOOLEAN', error: 'VARCHAR'}})""")
    assert counts_on_duckdb(connection, answers_sql("answers", quote_string("run-2"))) == expected
