"""The raw events pipeline executed end to end from the synthesized template (``tests.support.sfn_executor``).

Stand-ins (``tests.support.stand_ins``): GetQueryExecution of the finished query (what
``startQueryExecution.sync`` returns) and GetQueryResults (the counts the test chooses: the queries
themselves are run on DuckDB in test_count_sql.py and test_group_sessions_sql.py), DescribeTransformJob
of the finished job. S3, SSM, SNS, Athena's StartQueryExecution and SageMaker's models are moto's.
"""
from __future__ import annotations

import json

import pytest

from tests.support.pipeline_runs import assert_well_formed, offline_stage, published
from tests.support.stand_ins import Queries, TransformJobs

VARIANTS = ["default", "serverless"]
RUN = "2026-12-01.shop-a"
MARKER = f"events/incoming/{RUN}/_SUCCESS"
ANSWERS = {"answer_lines": 395, "sessions_scored": 390, "fallback_sessions": 12, "error_lines": 5}
BYTES_PER_QUERY = 2048


def _counts(rows: int, missing_session: int, missing_item: int, bad_time: int, sessions: int) -> dict:
    return {"rows_read": rows, "missing_session_id": missing_session, "missing_item_id": missing_item,
            "bad_time": bad_time, "sessions": sessions}


# what the UNLOAD leaves under sessions/grouped/<run>/: several gzip objects, written in parallel
UNLOADED = ["20261129_000000_00001_abcde_0a1b.gz", "20261129_000000_00001_abcde_2c3d.gz",
            "20261129_000000_00001_abcde_4e5f.gz"]


def _run(result, counts: dict, event_key: str = MARKER, failed_job: bool = False):
    with offline_stage(result) as stage:
        for name in UNLOADED:
            stage.put_object(f"sessions/grouped/{RUN}/{name}", b"")
        Queries(stage.boundary, {"AS rows_read": counts, "AS answer_lines": ANSWERS}, bytes_scanned=BYTES_PER_QUERY)
        TransformJobs(stage.boundary, failed=failed_job)
        run = stage.run("events", {"detail-type": "Object Created", "source": "aws.s3",
                                   "detail": {"bucket": {"name": stage.bucket}, "object": {"key": event_key}}})
        summary = None
        if run.status == "SUCCEEDED":
            summary = json.loads(stage.get_object(f"sessions/scored/{RUN}/summary.json"))
    assert_well_formed(run)
    return stage, run, summary


def _queries(run) -> list[str]:
    return [params["QueryString"] for params in run.calls("athena", "StartQueryExecution")]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_run_within_the_bad_row_bound_is_grouped_scored_and_summarised(variants, variant):
    """1% of 1,000 rows: 10 bad rows are allowed (the bound is inclusive)."""
    stage, run, summary = _run(variants[variant], _counts(1000, 4, 3, 3, 400))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    count, group, answers = _queries(run)
    assert "AS rows_read" in count and f"'{RUN}'" in count
    assert group.startswith("UNLOAD") and f"s3://{stage.bucket}/sessions/grouped/{RUN}/" in group
    assert "AS answer_lines" in answers and f"'{RUN}'" in answers
    workgroups = {params["WorkGroup"] for params in run.calls("athena", "StartQueryExecution")}
    assert workgroups == {f"{stage.config.resource_prefix}-events"}
    (job,) = run.calls("sagemaker", "CreateTransformJob")
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix", "S3Uri": f"s3://{stage.bucket}/sessions/grouped/{RUN}/"}
    assert job["TransformInput"]["CompressionType"] == "Gzip"
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{stage.bucket}/sessions/scored/{RUN}"
    assert run.calls("sagemaker", "DeleteModel") == [{"ModelName": job["ModelName"]}]
    assert summary == run.output
    assert summary["rowsRead"] == 1000 and summary["allowedBadRows"] == 10 and summary["sessionsGrouped"] == 400
    assert summary["groupedFiles"] == len(UNLOADED), "the UNLOAD's objects, which the job spreads by key"
    assert summary["skippedRows"] == {"missing session id": 4, "missing item id": 3, "bad time": 3}
    assert (summary["sessionsScored"], summary["fallbackSessions"], summary["errorLines"]) == (390, 12, 5)
    assert summary["bytesScanned"] == 3 * BYTES_PER_QUERY
    assert summary["job"] == job["TransformJobName"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_run_beyond_the_bad_row_bound_fails_before_grouping(variants, variant):
    _stage, run, _summary = _run(variants[variant], _counts(1000, 5, 3, 3, 400))
    assert (run.status, run.error) == ("FAILED", "Events.TooManyBadRows")
    assert len(_queries(run)) == 1, "counted, never grouped"
    assert run.calls("sagemaker", "CreateModel") == [] and run.calls("s3", "PutObject") == []
    (message,) = published(run)
    assert "11 of 1000 rows are bad" in message["cause"] and "allows (10)" in message["cause"]
    assert message["run"] == RUN


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_run_without_sessions_fails_before_grouping(variants, variant):
    _stage, run, _summary = _run(variants[variant], _counts(0, 0, 0, 0, 0))
    assert (run.status, run.error) == ("FAILED", "Events.NoSessions")
    assert len(_queries(run)) == 1


def test_an_object_that_is_no_run_marker_fails_before_any_query(synth):
    _stage, run, _summary = _run(synth, _counts(10, 0, 0, 0, 2), event_key=f"events/incoming/{RUN}/part-0.csv")
    assert (run.status, run.error) == ("FAILED", "Input.NotARunMarker")
    assert _queries(run) == []


def test_a_failed_transform_job_writes_no_summary(synth):
    _stage, run, _summary = _run(synth, _counts(1000, 0, 0, 0, 400), failed_job=True)
    assert run.status == "FAILED" and run.calls("s3", "PutObject") == []
    (message,) = published(run)
    assert message["error"] == "States.TaskFailed"
    assert run.error == "GRU4Rec.TaskFailed"


# --- negative controls: each stand-in fails a run whose definition is wrong --------------------------------------

def test_counts_read_from_the_header_row_fail_the_run(synth):
    """GetQueryResults gives the column names as its first row: reading that row finds no numbers."""
    def header_row(definition):
        assign = definition["States"]["Read event counts"]["Assign"]
        assign["counts"] = assign["counts"].replace("Rows[1]", "Rows[0]")

    with offline_stage(synth) as stage:
        Queries(stage.boundary, {"AS rows_read": _counts(1000, 0, 0, 0, 400), "AS answer_lines": ANSWERS})
        TransformJobs(stage.boundary)
        stage.pipelines.create(stage.machine("events"), header_row)
        run = stage.run("events", {"detail": {"object": {"key": MARKER}}})
    assert run.status == "FAILED" and len(_queries(run)) == 1


def test_a_query_state_that_does_not_wait_for_the_query_has_no_statistics(synth):
    """Without ``.sync`` the result is StartQueryExecution's answer (an id only): no bytes scanned to add."""
    def no_sync(definition):
        state = definition["States"]["Count events"]
        state["Resource"] = state["Resource"].removesuffix(".sync")

    with offline_stage(synth) as stage:
        Queries(stage.boundary, {"AS rows_read": _counts(1000, 0, 0, 0, 400), "AS answer_lines": ANSWERS})
        stage.pipelines.create(stage.machine("events"), no_sync)
        run = stage.run("events", {"detail": {"object": {"key": MARKER}}})
    assert run.status == "FAILED" and run.calls("athena", "GetQueryExecution") == []
