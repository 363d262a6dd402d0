"""The events pipeline in the batch stack (app.py's app, `synth`): trigger, Glue table, Athena workgroup,
the state machine's JSONata run as Step Functions will, and the query it sends executed on DuckDB."""
from __future__ import annotations

import fnmatch
import json
import re

import duckdb
import pytest

from infra.session_query import quote_string
from tests.infra.pipelines import actions_on, definition, evaluate, main_path, marker, policy_statements, resources
from tests.infra.test_group_sessions_sql import OPTIONS
from tests.session_events import EXPECTED, write_run

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


def test_states_in_order(states):
    assert main_path(states, "Name the run", via={"Run marker?": "Group sessions"}) == [
        "Name the run", "Run marker?", "Group sessions", "Read live model", "Create model", "Transform",
        "Delete model", "Write summary", "Done"]
    for name in ("Group sessions", "Read live model", "Create model", "Transform", "Delete model", "Write summary"):
        assert states[name]["Catch"][0]["Next"] == "Notify failure"


def test_rule_matches_run_markers_only(template):
    (rule,) = [body for name, body in resources(template, "AWS::Events::Rule").items() if name.startswith("EventSessionsRunMarker")]
    (key_filter,) = rule["Properties"]["EventPattern"]["detail"]["object"]["key"]
    keys = ["events/incoming/r1/_SUCCESS", "events/incoming/r1/part-0001.tsv", "sessions/incoming/r1/_SUCCESS",
            "events/incoming/_SUCCESS"]
    assert [key for key in keys if fnmatch.fnmatchcase(key, key_filter["wildcard"])] == ["events/incoming/r1/_SUCCESS"]


@pytest.mark.parametrize("key, run", [
    ("events/incoming/2026-11-29/_SUCCESS", "2026-11-29"), ("events/incoming/day=1/_SUCCESS", "day=1"),
    ("events/incoming/r1/part.tsv", None), ("events/incoming/a'b/_SUCCESS", None), ("events/incoming/a/b/_SUCCESS", None),
    ("sessions/incoming/r/_SUCCESS", None), (None, None),
])
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


def test_the_query_sent_to_athena_groups_the_run_on_duckdb(states, tmp_path):
    group = states["Group sessions"]
    assert group["Resource"] == "arn:aws:states:::athena:startQueryExecution.sync"
    assert group["Arguments"]["WorkGroup"] == "gru4rec-dev-events"
    assert group["Arguments"]["QueryExecutionContext"] == {"Database": "gru4rec_dev_events"}
    query = evaluate(group["Arguments"]["QueryString"], {"run": "run-2", "bucket": BUCKET})
    unload = re.fullmatch(r"UNLOAD \(\n(?P<select>.*)\n\) TO (?P<to>'[^']*') WITH \((?P<with>.*)\)", query, re.S)
    assert unload["to"] == quote_string(f"s3://{BUCKET}/sessions/grouped/run-2/")
    assert unload["with"] == "format = 'JSON', compression = 'GZIP'"
    write_run(tmp_path / "run-2")
    connection = duckdb.connect()
    connection.execute("CREATE MACRO regexp_like(text, pattern) AS regexp_matches(text, pattern)")
    connection.execute("CREATE SCHEMA gru4rec_dev_events")
    # the Glue table's columns: the context's names, lower case, by position
    connection.execute(f"""
        CREATE VIEW gru4rec_dev_events.events AS
        SELECT column0 AS sessionid, column1 AS itemid, column2 AS time, filename AS "$path", 'run-2' AS run
        FROM read_csv('{tmp_path}/run-2/part-*', delim = '\t', header = true, all_varchar = true, filename = true,
                      quote = '', escape = '', names = ['column0', 'column1', 'column2'])""")
    rows = connection.execute(unload["select"]).fetchall()
    assert {session: items for session, items in rows} == EXPECTED
    assert OPTIONS.max_bad_rows == "5"  # the same files as the local reader's comparison


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


def test_the_summary_names_what_the_run_read_and_wrote(states):
    variables = {"run": "r1", "bucket": BUCKET, "jobName": "gru4rec-dev-events-x", "queryId": "q-1",
                 "bytesScanned": 1234, "modelData": "s3://m/model.tar.gz"}
    write = states["Write summary"]["Arguments"]
    assert evaluate(write["Key"], variables) == "sessions/scored/r1/summary.json"
    summary = json.loads(evaluate(write["Body"], variables))
    assert summary == {"run": "r1", "events": f"s3://{BUCKET}/events/incoming/r1/",
                       "grouped": f"s3://{BUCKET}/sessions/grouped/r1/", "scored": f"s3://{BUCKET}/sessions/scored/r1/",
                       "query": "q-1", "bytesScanned": 1234, "job": "gru4rec-dev-events-x", "modelData": "s3://m/model.tar.gz"}
    assert evaluate(states["Done"]["Output"], variables) == summary


def test_table_reads_the_contexts_columns_by_position_per_run(template):
    (table,) = resources(template, "AWS::Glue::Table").values()
    table_input = table["Properties"]["TableInput"]
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
        "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:StopQueryExecution"}
    assert actions_on(statements, "/events/incoming/*") == {"s3:GetObject"}
    assert "s3:PutObject" in actions_on(statements, "/sessions/grouped/*")
    assert actions_on(statements, ":table/gru4rec_dev_events/events") == {
        "glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"}
