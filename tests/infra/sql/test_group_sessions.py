"""infra/sql/group_sessions.sql executed for real on DuckDB, compared with model_code.data.sessions.

DuckDB stands in for Athena's engine (Trino). The differences between the two dialects that matter
for this query, and how the test bridges each:

- ``regexp_like(text, pattern)`` (Trino: the pattern found anywhere) does not exist in DuckDB: the
  test defines it as a macro over ``regexp_matches``, which has the same meaning.
- ``regexp_extract`` without a match: NULL on Trino, '' on DuckDB. The SQL wraps it in NULLIF(.., '')
  or compares with <> '', which reads both the same.
- Empty fields: Athena's text SerDe (LazySimpleSerDe) reads '' and DuckDB's read_csv reads NULL; the
  SQL treats both as missing (NULLIF).
- The file of a row: Athena's hidden column ``"$path"`` (an s3:// URI); DuckDB's ``filename`` column,
  renamed ``"$path"`` by the test's view. Both order by code point, as Python does.
- The run: on Athena a partition column ``run`` projected from ``events/incoming/<run>/``; the view
  derives it from the folder name the same way.
- Files whose name starts with ``_`` or ``.`` (the ``_SUCCESS`` marker) are skipped by Athena's Hive
  tables; the view's glob names only the event files.
- Integer ``/`` is integer division on Trino and a DOUBLE on DuckDB: the SQL divides only doubles.
- UNLOAD (Athena) does not exist on DuckDB: the test writes the SELECT with ``COPY .. (FORMAT JSON)``,
  one JSON object per line as UNLOAD's JSON format writes them. Neither keeps an order of sessions
  across output files, so the lines are compared as a set, one line each.
"""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from inference.contracts import BadLine, parse_json_lines
from inference.predictor import create_app
from infra.session_query import check_run, quote_string, select_sql, unload_sql
from model_code.data.event_rules import OptionError, ReadOptions
from model_code.data.event_table import read_event_codes
from model_code.data.sessions import group_sessions
from tests.support.session_events import EXPECTED, VISIT_OPTIONS, VISIT_SESSIONS, write_two_runs, write_visits

OPTIONS = ReadOptions(max_bad_rows="5")


def events_on_duckdb(incoming: Path) -> duckdb.DuckDBPyConnection:
    """A connection with the view ``events`` over every run under ``incoming``, as the Glue table reads them."""
    connection = duckdb.connect()
    connection.execute("CREATE MACRO regexp_like(text, pattern) AS regexp_matches(text, pattern)")
    connection.execute(f"""
        CREATE VIEW events AS
        SELECT *, filename AS "$path", regexp_extract(filename, '/([^/]+)/[^/]+$', 1) AS run
        FROM read_csv('{incoming}/*/part-*', delim = '\t', header = true, all_varchar = true,
                      filename = true, quote = '', escape = '')""")
    return connection


def run_on_duckdb(incoming: Path, run: str, out: Path, options: ReadOptions = OPTIONS) -> list[str]:
    """The query over ``incoming/<run>/``, its rows written as JSON lines to ``out``; the lines."""
    connection = events_on_duckdb(incoming)
    query = select_sql("events", quote_string(run), options)
    connection.execute(f"COPY ({query}) TO '{out}' (FORMAT JSON)")
    return out.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def incoming(tmp_path) -> Path:
    """Two runs' files; the query must read only the one it is given."""
    return write_two_runs(tmp_path / "incoming", "SessionId\tItemId\tTime\nsplit\tstranger\t1\n")


def test_duckdb_lines_are_the_local_readers_lines(incoming, tmp_path):
    lines = run_on_duckdb(incoming, "run-2", tmp_path / "grouped.json")
    local = list(group_sessions(read_event_codes(incoming / "run-2", OPTIONS, lambda line: None, with_files=True)))
    assert sorted(json.loads(line)["session_id"] for line in lines) == sorted(EXPECTED)
    assert sorted(map(json.loads, lines), key=lambda s: s["session_id"]) == \
        sorted(local, key=lambda s: s["session_id"])
    assert {json.loads(line)["session_id"]: json.loads(line)["items"] for line in lines} == EXPECTED


def test_epoch_milliseconds_and_a_custom_column_name(tmp_path):
    run = tmp_path / "incoming" / "r"
    run.mkdir(parents=True)
    (run / "part-1.csv").write_text("user\tItemId\tTime\nu\tb\t2000\nu\ta\t1000\nu\tc\t2000.5\n", encoding="utf-8")
    options = ReadOptions(session_column="user", time_format="epoch_ms")
    lines = run_on_duckdb(tmp_path / "incoming", "r", tmp_path / "out.json", options)
    local = list(group_sessions(read_event_codes(run, options, lambda line: None, with_files=True)))
    assert [json.loads(line) for line in lines] == local == [{"session_id": "u", "items": ["a", "b", "c"]}]


def test_a_visitor_log_gives_the_same_sessions_in_sql_and_locally(tmp_path):
    """Visitors split by inactivity, kinds not read left out, repeats collapsed, epoch ms beside seconds."""
    write_visits(tmp_path / "incoming" / "r")
    options = ReadOptions(**VISIT_OPTIONS)
    lines = run_on_duckdb(tmp_path / "incoming", "r", tmp_path / "out.json", options)
    local = group_sessions(read_event_codes(tmp_path / "incoming" / "r", options, lambda line: None, with_files=True))
    assert {s["session_id"]: s["items"] for s in map(json.loads, lines)} == VISIT_SESSIONS
    assert sorted(map(json.loads, lines), key=lambda s: s["session_id"]) == sorted(local, key=lambda s: s["session_id"])


def test_without_a_gap_the_sql_keeps_a_visitor_whole(tmp_path):
    write_visits(tmp_path / "incoming" / "r")
    options = ReadOptions(**{**VISIT_OPTIONS, "session_gap": "off"})
    lines = run_on_duckdb(tmp_path / "incoming", "r", tmp_path / "out.json", options)
    assert {s["session_id"]: s["items"] for s in map(json.loads, lines)} == {
        "v1": ["a", "b", "c", "d", "b"], "v2": ["x", "z", "y"], "v4": ["p"]}


def test_a_time_pattern_is_refused_by_name():
    with pytest.raises(OptionError, match="%d/%m/%Y"):
        select_sql("events", "'r'", ReadOptions(time_format="%d/%m/%Y"))


@pytest.mark.parametrize("run", ["", "a'b", "../x", "a/b", "x" * 129])
def test_run_names_that_could_break_the_query_are_refused(run):
    with pytest.raises(ValueError, match="run"):
        check_run(run)


def test_unload_writes_gzip_json_to_the_destination():
    sql = unload_sql("SELECT 1", "s3://bucket/sessions/grouped/r/")
    assert sql.startswith("UNLOAD (\nSELECT 1\n) TO 's3://bucket/sessions/grouped/r/'")
    assert "format = 'JSON'" in sql and "compression = 'GZIP'" in sql


def test_the_grouped_lines_go_through_the_containers_json_lines_path(incoming, tmp_path, model_dir):
    body = "\n".join(run_on_duckdb(incoming, "run-2", tmp_path / "grouped.json")).encode() + b"\n"
    requests = parse_json_lines(body)
    assert not [r for r in requests if isinstance(r, BadLine)]
    assert {r.session_id: r.items for r in requests} == EXPECTED
    response = create_app(model_dir).test_client().post("/invocations", data=body, content_type="application/jsonlines")
    assert response.status_code == 200
    answers = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert sorted(a["session_id"] for a in answers) == sorted(EXPECTED)
    assert all(len(a["recommendations"]) == 20 and "error" not in a for a in answers)
