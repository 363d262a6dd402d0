"""The events pipeline in the batch stack (app.py's app, `synth`): trigger, Glue table, Athena workgroup,
the state machine's JSONata run as Step Functions will, and the query it sends executed on DuckDB."""
from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import duckdb
import pytest

from infra.session_query import quote_string
from infra.stacks.event_sessions import allowed_bad_rows
from model_code.data.event_rules import BAD_ROW_REASONS, ReadOptions
from tests.infra.conftest import synthesize
from tests.infra.sql.test_group_sessions import OPTIONS
from tests.support.pipelines import actions_on, definition, evaluate, main_path, marker, policy_statements, resources
from tests.support.session_events import BAD_ROWS, EXPECTED, FIRST, SECOND, write_run

BUCKET = "gru4rec-dev-data"
EXECUTION = {"Id": "arn:aws:states:eu-west-1:123456789012:execution:gru4rec-dev-events:9a1b",
             "StartTime": "2026-11-29T02:17:10.123Z"}


@pytest.fixture(scope="module")
def template(synth):
    return synth.template_dict("batch")


@pytest.fixture(scope="module")
def states(template):
    return definition(template, "events")["States"]


def variables_for(states, key):
    event = {"detail-type": "Object Created", "source": "aws.s3",
             "detail": {"bucket": {"name": BUCKET}, "object": {"key": key}}}
    assigned = states["Name the run"]["Assign"]
    context = {"context": {"Execution": EXECUTION}, "input": event}
    values = {name: evaluate(assigned[name], states=context) for name in ("jobName", "key", "run")}
    return {**values, "bucket": BUCKET}


TASKS = [
    "Count events",
    "Read event counts",
    "Group sessions",
    "Count grouped files",
    "Find live endpoint config",
    "Find live model",
    "Read live model",
    "Create model",
    "Transform",
    "Delete model",
    "Count answers",
    "Read answer counts",
    "Write summary",
]


def test_states_in_order(states):
    assert main_path(states, "Name the run", via={"Run marker?": "Count events"}) == [
        "Name the run",
        "Run marker?",
        "Count events",
        "Read event counts",
        "Rows within bound?",
        "Group sessions",
        "Count grouped files",
        "Find live endpoint config",
        "Find live model",
        "Read live model",
        "Create model",
        "Transform",
        "Delete model",
        "Count answers",
        "Read answer counts",
        "Write summary",
        "Done",
    ]
    for name in TASKS:
        assert states[name]["Catch"][0]["Next"] == "Notify failure"
    for name in ("Too many bad rows", "No sessions"):
        assert states[name]["Next"] == "Notify failure"


def test_rule_matches_run_markers_only(template):
    (rule,) = [
        body
        for name, body in resources(template, "AWS::Events::Rule").items()
        if name.startswith("EventSessionsRunMarker")
    ]
    (key_filter,) = rule["Properties"]["EventPattern"]["detail"]["object"]["key"]
    keys = ["events/incoming/r1/_SUCCESS", "events/incoming/r1/part-0001.tsv", "sessions/incoming/r1/_SUCCESS",
            "events/incoming/_SUCCESS"]
    assert [key for key in keys if fnmatch.fnmatchcase(key, key_filter["wildcard"])] == ["events/incoming/r1/_SUCCESS"]


@pytest.mark.parametrize(
    "key, run",
    [
        ("events/incoming/2026-11-29/_SUCCESS", "2026-11-29"),
        ("events/incoming/day=1/_SUCCESS", "day=1"),
        ("events/incoming/r1/part.tsv", None),
        ("events/incoming/a'b/_SUCCESS", None),
        ("events/incoming/a/b/_SUCCESS", None),
        ("sessions/incoming/r/_SUCCESS", None),
        (None, None),
    ],
)
def test_only_markers_of_well_named_runs_start_a_run(states, key, run):
    variables = variables_for(states, key)
    (choice,) = states["Run marker?"]["Choices"]
    assert evaluate(choice["Condition"], variables) is (run is not None)
    if run is not None:
        assert variables["run"] == run
        assert re.fullmatch(r"gru4rec-dev-events-20261129-021710-[0-9a-f]{8}", variables["jobName"])
    else:
        cause = evaluate(states["Not a run marker"]["Output"]["Cause"], variables)
        assert cause.endswith(f"the key {key}" if key else "no object key")


def events_view(tmp_path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the Glue table ``gru4rec_dev_events.events`` over the shared run's files as run-2, beside a
    run-1 whose rows must not be read."""
    write_run(tmp_path / "run-2")
    (tmp_path / "run-1").mkdir()
    (tmp_path / "run-1" / "part-0001.tsv").write_text("SessionId\tItemId\tTime\n\tx\tnever\n", encoding="utf-8")
    connection = duckdb.connect()
    connection.execute("CREATE MACRO regexp_like(text, pattern) AS regexp_matches(text, pattern)")
    connection.execute("CREATE SCHEMA gru4rec_dev_events")
    # the Glue table's columns: the context's names, lower case, by position
    connection.execute(f"""
        CREATE VIEW gru4rec_dev_events.events AS
        SELECT column0 AS sessionid, column1 AS itemid, column2 AS time, filename AS "$path",
               regexp_extract(filename, '/([^/]+)/[^/]+$', 1) AS run
        FROM read_csv('{tmp_path}/run-*/part-*', delim = '\t', header = true, all_varchar = true, filename = true,
                      quote = '', escape = '', names = ['column0', 'column1', 'column2'])""")
    return connection


def query_of(state: dict, run: str) -> str:
    assert state["Resource"] == "arn:aws:states:::athena:startQueryExecution.sync"
    assert state["Arguments"]["WorkGroup"] == "gru4rec-dev-events"
    assert state["Arguments"]["QueryExecutionContext"] == {"Database": "gru4rec_dev_events"}
    return evaluate(state["Arguments"]["QueryString"], {"run": run, "bucket": BUCKET})


def query_results(cursor: duckdb.DuckDBPyConnection) -> dict:
    """GetQueryResults' answer for a SELECT of one row: the column names as the first row, every value a string."""
    names = [column[0] for column in cursor.description]
    (row,) = cursor.fetchall()
    return {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": name} for name in names]},
                                   {"Data": [{"VarCharValue": str(value)} for value in row]}],
                          "ResultSetMetadata": {"ColumnInfo": [{"Name": name, "Type": "bigint"} for name in names]}},
            "UpdateCount": 0}


def read_results(state: dict, query_id: str, result: dict) -> tuple[str, Any]:
    """The variable the results state assigns and its value, for ``result`` of the query ``$<query_id>``."""
    assert state["Resource"] == "arn:aws:states:::athena:getQueryResults"
    assert state["Arguments"]["QueryExecutionId"] == "{% $" + query_id + " %}"
    (variable, expression), = state["Assign"].items()
    return variable, evaluate(expression, states={"result": result})


def test_the_query_sent_to_athena_groups_the_run_on_duckdb(states, tmp_path):
    query = query_of(states["Group sessions"], "run-2")
    unload = re.fullmatch(r"UNLOAD \(\n(?P<select>.*)\n\) TO (?P<to>'[^']*') WITH \((?P<with>.*)\)", query, re.S)
    assert unload["to"] == quote_string(f"s3://{BUCKET}/sessions/grouped/run-2/")
    assert unload["with"] == "format = 'JSON', compression = 'GZIP'"
    rows = events_view(tmp_path).execute(unload["select"]).fetchall()
    assert {session: items for session, items in rows} == EXPECTED
    assert OPTIONS.max_bad_rows == "5"  # the same files as the local reader's comparison


def test_the_counts_athena_returns_become_the_runs_counts(states, tmp_path):
    """The counting query, run on DuckDB, its row given back as GetQueryResults gives it, read as the
    state machine reads it: the rows of tests/support/session_events.py, counted by hand."""
    cursor = events_view(tmp_path).execute(query_of(states["Count events"], "run-2"))
    variable, counts = read_results(states["Read event counts"], "countQueryId", query_results(cursor))
    assert variable == "counts"
    assert counts == {"rows_read": len(FIRST) + len(SECOND), "missing_session_id": BAD_ROWS["missing session id"],
                      "missing_item_id": BAD_ROWS["missing item id"], "bad_time": BAD_ROWS["bad time"],
                      "sessions": len(EXPECTED), "other_kinds": 0}


def test_the_answer_counts_are_read_by_column_name(states):
    assert "\"$path\" LIKE '%.out'" in query_of(states["Count answers"], "r1")
    assert '"gru4rec_dev_events"."answers" WHERE run = \'r1\'' in " ".join(
        query_of(states["Count answers"], "r1").split()
    )
    result = {
        "ResultSet": {
            "Rows": [
                {
                    "Data": [
                        {"VarCharValue": n}
                        for n in ("answer_lines", "sessions_scored", "fallback_sessions", "error_lines")
                    ]
                },
                {"Data": [{"VarCharValue": v} for v in ("2000001", "2000000", "31", "1")]},
            ],
            "ResultSetMetadata": {
                "ColumnInfo": [
                    {"Name": n} for n in ("answer_lines", "sessions_scored", "fallback_sessions", "error_lines")
                ]
            },
        }
    }
    assert read_results(states["Read answer counts"], "answersQueryId", result) == ("answers", {
        "answer_lines": 2000001, "sessions_scored": 2000000, "fallback_sessions": 31, "error_lines": 1})


def bound_choice(states, counts: dict) -> str:
    """Where "Rows within bound?" goes for ``counts`` (the first rule that holds, else its default)."""
    choice = states["Rows within bound?"]
    for rule in choice["Choices"]:
        if evaluate(rule["Condition"], {"counts": counts}):
            return rule["Next"]
    return choice["Default"]


def counts_of(rows_read: int, missing_session: int = 0, missing_item: int = 0, bad_time: int = 0,
              sessions: int = 1) -> dict:
    return {"rows_read": rows_read, "missing_session_id": missing_session, "missing_item_id": missing_item,
            "bad_time": bad_time, "sessions": sessions}


@pytest.mark.parametrize("rows_read", [100, 3517, 199, 1])
def test_the_default_bound_is_the_local_readers_one_percent(states, rows_read):
    allowed = ReadOptions().bad_row_bound.limit(rows_read)  # the local reader's own rule
    assert allowed == int(rows_read // 100)
    at_bound = counts_of(rows_read, missing_session=allowed // 2, bad_time=allowed - allowed // 2)
    assert bound_choice(states, at_bound) == "Group sessions"
    beyond = counts_of(rows_read, missing_session=allowed // 2, bad_time=allowed - allowed // 2, missing_item=1)
    assert bound_choice(states, beyond) == "Too many bad rows"


def test_beyond_the_bound_the_run_fails_naming_the_counts(states):
    counts = counts_of(3517, missing_session=10, missing_item=20, bad_time=6)
    assert bound_choice(states, counts) == "Too many bad rows"
    output = states["Too many bad rows"]["Output"]
    assert output["Error"] == "Events.TooManyBadRows"
    assert evaluate(output["Cause"], {"run": "r1", "counts": counts}) == (
        "run r1: 36 of 3517 rows are bad (10 missing session id, 20 missing item id, 6 bad time), more than "
        "events_max_bad_rows 1% allows (35); nothing was grouped or scored. Fix the data, or raise the context key "
        "events_max_bad_rows to skip them")


def test_a_run_without_a_good_row_fails(states):
    counts = counts_of(0, sessions=0)
    assert bound_choice(states, counts) == "No sessions"
    assert evaluate(states["No sessions"]["Output"]["Cause"], {"run": "r1", "counts": counts}) == (
        "run r1: no events (0 rows read, none with a session id, an item id and a time) in events/incoming/r1/")


@pytest.fixture(scope="module")
def share_states(tmp_path_factory, dummy_model_artifact):
    """The events pipeline of an app whose context sets events_max_bad_rows to 2.5%."""
    result = synthesize(tmp_path_factory.mktemp("bound"), {"initial_model_artifact": str(dummy_model_artifact),
                                                            "events_max_bad_rows": "2.5%"})
    assert result.nag_error is None
    return definition(result.template_dict("batch"), "events")["States"]


@pytest.mark.parametrize("rows_read", [40, 1000, 3517, 39])
def test_a_share_from_context_is_applied_on_both_sides(share_states, rows_read):
    allowed = ReadOptions(max_bad_rows="2.5%").bad_row_bound.limit(rows_read)
    assert bound_choice(share_states, counts_of(rows_read, bad_time=allowed)) == "Group sessions"
    assert bound_choice(share_states, counts_of(rows_read, bad_time=allowed + 1)) == "Too many bad rows"
    cause = evaluate(share_states["Too many bad rows"]["Output"]["Cause"],
                     {"run": "r", "counts": counts_of(rows_read, bad_time=allowed + 1)})
    assert f"more than events_max_bad_rows 2.5% allows ({allowed})" in cause


@pytest.mark.parametrize("max_bad_rows, rows_read", [("0", 50), ("7", 10), ("7", 1000), ("0.001", 12345),
                                                     ("100%", 9), ("0%", 9)])
def test_the_allowed_count_is_the_local_readers(max_bad_rows, rows_read):
    bound = ReadOptions(max_bad_rows=max_bad_rows).bad_row_bound
    expression = "{% " + allowed_bad_rows(bound) + " %}"
    assert evaluate(expression, {"counts": counts_of(rows_read)}) == bound.limit(rows_read)


def test_one_gzip_transform_job_over_the_grouped_prefix(states):
    arguments = states["Transform"]["Arguments"]
    variables = {"run": "r1", "bucket": BUCKET, "jobName": "gru4rec-dev-events-x"}
    source = arguments["TransformInput"]["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == "S3Prefix"
    assert evaluate(source["S3Uri"], variables) == f"s3://{BUCKET}/sessions/grouped/r1/"
    assert arguments["TransformInput"]["CompressionType"] == "Gzip"
    assert arguments["TransformInput"]["SplitType"] == "Line"
    assert evaluate(arguments["TransformOutput"]["S3OutputPath"], variables) == f"s3://{BUCKET}/sessions/scored/r1"
    assert states["Transform"]["Resource"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    assert {"Key": "pipeline", "Value": "events"} in arguments["Tags"]
    assert {"Key": "pipeline", "Value": "batch"} not in arguments["Tags"]


def test_each_query_adds_its_bytes_scanned(states):
    assert states["Name the run"]["Assign"]["bytesScanned"] == 0
    result = {"QueryExecution": {"QueryExecutionId": "q-2", "Statistics": {"DataScannedInBytes": 1000}}}
    for name, query_id in (("Count events", "countQueryId"), ("Group sessions", "groupQueryId"),
                           ("Count answers", "answersQueryId")):
        assign = states[name]["Assign"]
        assert evaluate(assign[query_id], states={"result": result}) == "q-2"
        assert evaluate(assign["bytesScanned"], {"bytesScanned": 234}, states={"result": result}) == 1234


def test_the_summary_holds_the_runs_counts_and_what_it_read_and_wrote(states):
    variables = {"run": "r1", "bucket": BUCKET, "jobName": "gru4rec-dev-events-x", "countQueryId": "q-1",
                 "groupQueryId": "q-2", "answersQueryId": "q-3", "bytesScanned": 1234, "modelData": "s3://m/model.tar.gz",
                 "groupedFiles": 4,
                 "counts": counts_of(3517, missing_session=1, missing_item=2, bad_time=3, sessions=700),
                 "answers": {"answer_lines": 700, "sessions_scored": 700, "fallback_sessions": 12, "error_lines": 0}}
    write = states["Write summary"]["Arguments"]
    assert evaluate(write["Key"], variables) == "sessions/scored/r1/summary.json"
    summary = json.loads(evaluate(write["Body"], variables))
    assert summary == {
        "run": "r1",
        "events": f"s3://{BUCKET}/events/incoming/r1/",
        "grouped": f"s3://{BUCKET}/sessions/grouped/r1/",
        "scored": f"s3://{BUCKET}/sessions/scored/r1/",
        "rowsRead": 3517,
        "skippedRows": {"missing session id": 1, "missing item id": 2, "bad time": 3},
        "maxBadRows": "1%",
        "allowedBadRows": 35,
        "sessionsGrouped": 700,
        "groupedFiles": 4,
        "sessionsScored": 700,
        "fallbackSessions": 12,
        "errorLines": 0,
        "queries": {"countEvents": "q-1", "group": "q-2", "countAnswers": "q-3"},
        "bytesScanned": 1234,
        "job": "gru4rec-dev-events-x",
        "modelData": "s3://m/model.tar.gz",
    }
    assert list(summary["skippedRows"]) == list(BAD_ROW_REASONS)
    assert evaluate(states["Done"]["Output"], variables) == summary


def tables(template) -> dict[str, dict]:
    return {body["Properties"]["TableInput"]["Name"]: body["Properties"]["TableInput"]
            for body in resources(template, "AWS::Glue::Table").values()}


def test_answers_table_reads_the_transform_output_as_json_lines_per_run(template):
    table_input = tables(template)["answers"]
    descriptor = table_input["StorageDescriptor"]
    assert {c["Name"]: c["Type"] for c in descriptor["Columns"]} == {"session_id": "string", "fallback": "boolean",
                                                                      "error": "string"}
    assert descriptor["SerdeInfo"]["SerializationLibrary"] == "org.apache.hive.hcatalog.data.JsonSerDe"
    assert table_input["PartitionKeys"] == [{"Name": "run", "Type": "string"}]
    assert table_input["Parameters"]["projection.run.type"] == "injected"
    assert "skip.header.line.count" not in table_input["Parameters"]
    assert marker(table_input["Parameters"]["storage.location.template"]).endswith("/sessions/scored/${run}/")


def test_table_reads_the_contexts_columns_by_position_per_run(template):
    table_input = tables(template)["events"]
    descriptor = table_input["StorageDescriptor"]
    assert [c["Name"] for c in descriptor["Columns"]] == ["sessionid", "itemid", "time"]
    assert descriptor["SerdeInfo"]["Parameters"]["field.delim"] == "\t"
    assert table_input["PartitionKeys"] == [{"Name": "run", "Type": "string"}]
    assert table_input["Parameters"]["projection.run.type"] == "injected"
    assert table_input["Parameters"]["skip.header.line.count"] == "1"
    assert marker(table_input["Parameters"]["storage.location.template"]).endswith("/events/incoming/${run}/")


def test_workgroup_enforces_encrypted_results_and_a_scan_cut_off(template, synth):
    (workgroup,) = resources(template, "AWS::Athena::WorkGroup").values()
    configuration = workgroup["Properties"]["WorkGroupConfiguration"]
    assert configuration["EnforceWorkGroupConfiguration"] is True
    assert configuration["BytesScannedCutoffPerQuery"] == synth.config.athena_bytes_scanned_cutoff
    results = configuration["ResultConfiguration"]
    assert marker(results["OutputLocation"]).endswith("/athena/")
    assert results["EncryptionConfiguration"]["EncryptionOption"] == "SSE_KMS"


def test_state_machine_rights_are_scoped(template):
    statements = policy_statements(template)
    assert actions_on(statements, ":workgroup/gru4rec-dev-events") == {
        "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:StopQueryExecution", "athena:GetQueryResults"}
    assert actions_on(statements, "/events/incoming/*") == {"s3:GetObject"}
    assert "s3:PutObject" in actions_on(statements, "/sessions/grouped/*")
    for table in ("events", "answers"):
        assert actions_on(statements, f":table/gru4rec_dev_events/{table}") == {
            "glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"}
    # the events pipeline reads the answers it counts and puts its summary (the batch pipeline only puts)
    assert {"s3:GetObject", "s3:PutObject"} <= actions_on(statements, "/sessions/scored/*")
