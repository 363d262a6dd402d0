"""The daily attribution executed end to end from the synthesized template (``tests.support.sfn_executor``),
over captured answers staged in (moto's) S3 in SageMaker's data capture layout.

Stand-ins: GetQueryExecution of the finished query (``tests.support.stand_ins.Queries``) and GetQueryResults,
which runs the query the state machine sent on DuckDB over the objects the bucket holds under
``capture/`` and ``events/incoming/`` (the dialect bridges of ``tests.support.captures``) and answers as
Athena does. S3, SNS, CloudWatch and Athena's StartQueryExecution are moto's.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from infra.layout import CAPTURE_PREFIX, INCOMING_EVENTS_PREFIX
from tests.infra.conftest import synthesize
from tests.support.captures import DAY, EXPECTED, on_duckdb, run_attribution, write_captures, write_events
from tests.support.cfn_values import REGION
from tests.support.pipeline_runs import assert_well_formed, offline_stage
from tests.support.stand_ins import Queries

SCHEDULE = "cron(30 2 * * ? *)"


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory, dummy_model_artifact):
    return synthesize(
        tmp_path_factory.mktemp("cdk_out_attribution"),
        {"initial_model_artifact": str(dummy_model_artifact), "attribution_schedule": SCHEDULE},
    )


class DuckQueries(Queries):
    """GetQueryResults of the query as DuckDB runs it over the bucket's captures and events."""

    def __init__(self, boundary, bucket: str, database: str, folder: Path):
        super().__init__(boundary, {})
        self.bucket, self.database, self.folder = bucket, database, folder

    def _download(self, prefix: str) -> Path:
        s3 = boto3.client("s3", region_name=REGION)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                path = self.folder / item["Key"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read())
        return self.folder / prefix

    def query_results(self, params: dict) -> dict:
        query = self._started(params["QueryExecutionId"])["QueryString"]
        connection = on_duckdb(self._download(CAPTURE_PREFIX), self._download(INCOMING_EVENTS_PREFIX), self.database)
        rows = run_attribution(connection, query)
        names = list(rows[0]) if rows else []
        cell = lambda value: {} if value is None else {"VarCharValue": str(value)}  # noqa: E731
        return {
            "ResultSet": {
                "Rows": [{"Data": [{"VarCharValue": name} for name in names]}]
                + [{"Data": [cell(row[name]) for name in names]} for row in rows],
                "ResultSetMetadata": {
                    "ColumnInfo": [
                        {
                            "Name": name,
                            "Label": name,
                            "Type": "varchar",
                            "CatalogName": "hive",
                            "SchemaName": "",
                            "TableName": "",
                        }
                        for name in names
                    ]
                },
            },
            "UpdateCount": 0,
        }


def _stage_files(stage, folder: Path, markers: tuple[str, ...]) -> None:
    write_captures(folder / "capture")
    write_events(folder / "incoming")
    for path in sorted((folder / "capture").rglob("*.jsonl")):
        stage.put_object(CAPTURE_PREFIX + path.relative_to(folder / "capture").as_posix(), path.read_bytes())
    for path in sorted((folder / "incoming").rglob("part-*")):
        stage.put_object(INCOMING_EVENTS_PREFIX + path.relative_to(folder / "incoming").as_posix(), path.read_bytes())
    for run in markers:
        stage.put_object(f"{INCOMING_EVENTS_PREFIX}{run}/_SUCCESS", b"")


def _run(result, tmp_path, markers=("r1",), execution_input=None):
    with offline_stage(result) as stage:
        _stage_files(stage, tmp_path / "staged", markers)
        DuckQueries(stage.boundary, stage.bucket, f"gru4rec_{stage.config.stage}_events", tmp_path / "athena")
        run = stage.run("attribution", execution_input or {"day": DAY.isoformat()})
        summary = None
        if run.status == "SUCCEEDED" and run.calls("s3", "PutObject"):
            summary = json.loads(stage.get_object(f"reports/attribution/{DAY.isoformat()}.json"))
    assert_well_formed(run)
    return stage, run, summary


def test_the_days_answers_are_attributed_summarised_and_published(scheduled, tmp_path):
    """Run r-other has no marker (unfinished): only r1 is read, so the counts are the hand-worked ones."""
    stage, run, summary = _run(scheduled, tmp_path)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    (query,) = [params["QueryString"] for params in run.calls("athena", "StartQueryExecution")]
    assert "run IN ('r1')" in query and "day BETWEEN '2026/12/01' AND '2026/12/01'" in query
    assert summary == run.output and summary["day"] == DAY.isoformat() and summary["runs"] == ["r1"]
    by_variant = {(row["variant"], row["modelVersion"]): row for row in summary["variants"]}
    assert by_variant.keys() == EXPECTED.keys()
    for key, counts in EXPECTED.items():
        assert {field: by_variant[key][field] for field in counts} == pytest.approx(counts), key
    assert by_variant[("Champion", "v1")]["hitRate"] == 1.0 and by_variant[("Champion", "v1")]["coverage"] == 0.75
    assert by_variant[("Challenger", "v2")]["unknownShare"] == pytest.approx(1 / 3)
    (metrics,) = run.calls("cloudwatch", "PutMetricData")
    assert metrics["Namespace"] == "GRU4Rec/Attribution"
    datums = {(d["MetricName"], d["Dimensions"][1]["Value"]): d["Value"] for d in metrics["MetricData"]}
    assert datums == pytest.approx(
        {
            ("HitRate", "Champion"): 1.0,
            ("Coverage", "Champion"): 0.75,
            ("UnknownShare", "Champion"): 0.2,
            ("HitRate", "Challenger"): 0.5,
            ("Coverage", "Challenger"): 0.5,
            ("UnknownShare", "Challenger"): 1 / 3,
        }
    )


def test_a_run_whose_marker_came_is_read_too(scheduled, tmp_path):
    """Negative control of the marker rule: with r-other's marker, its event makes s3's next item a hit."""
    _, run, summary = _run(scheduled, tmp_path, markers=("r1", "r-other"))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert summary["runs"] == ["r-other", "r1"]
    challenger = [row for row in summary["variants"] if row["variant"] == "Challenger"][0]
    assert (challenger["hits"], challenger["clicks"]) == (2, 3)


def test_no_run_since_the_day_ends_with_nothing_to_attribute(scheduled, tmp_path):
    _, run, summary = _run(scheduled, tmp_path, markers=())
    assert run.status == "SUCCEEDED" and run.output == {"day": DAY.isoformat(), "runs": []}
    assert run.calls("athena", "StartQueryExecution") == [] and summary is None


def test_the_schedule_is_off_by_default(synth):
    assert not [
        r
        for t in synth.templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::Scheduler::Schedule" and "attribution" in json.dumps(r)
    ]
    assert "gru4rec-dev-attribution" not in json.dumps(synth.templates)


def test_the_schedule_starts_the_state_machine(scheduled):
    (schedule,) = [
        r
        for t in scheduled.templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::Scheduler::Schedule" and r["Properties"]["Name"] == "gru4rec-dev-attribution"
    ]
    assert schedule["Properties"]["ScheduleExpression"] == SCHEDULE
    assert scheduled.nag_error is None


def _alarms(result) -> dict[str, dict]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"]
        for t in result.templates.values()
        for r in t["Resources"].values()
        if r["Type"] == "AWS::CloudWatch::Alarm" and isinstance(r["Properties"].get("AlarmName"), str)
    }


def test_the_staleness_alarms_watch_what_the_state_machine_publishes(scheduled, tmp_path):
    """The alarms' namespace, metric names and dimensions are those of the executed run's PutMetricData, on the
    live variant; a metric of the challenger, or of another stage, would be another metric (negative control)."""
    _, run, _ = _run(scheduled, tmp_path)
    (published_metrics,) = run.calls("cloudwatch", "PutMetricData")
    datums = {
        (published_metrics["Namespace"], d["MetricName"], tuple((x["Name"], x["Value"]) for x in d["Dimensions"]))
        for d in published_metrics["MetricData"]
    }
    alarms = _alarms(scheduled)
    unknown, coverage = alarms["gru4rec-dev-stale-unknown-items"], alarms["gru4rec-dev-stale-coverage"]
    assert (unknown["Threshold"], unknown["ComparisonOperator"]) == (0.2, "GreaterThanThreshold")
    assert (coverage["Threshold"], coverage["ComparisonOperator"]) == (0.05, "LessThanThreshold")
    for alarm in (unknown, coverage):
        (query,) = alarm["Metrics"]
        stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
        assert stat["Period"] * alarm["EvaluationPeriods"] <= 86400, "CloudWatch evaluates at most a day"
        watched = (
            metric["Namespace"],
            metric["MetricName"],
            tuple((d["Name"], d["Value"]) for d in metric["Dimensions"]),
        )
        assert watched[2] == (("Stage", "dev"), ("Variant", "AllTraffic"))
        # the fixture's variants are Champion and Challenger: the same metric of the live variant's name
        assert (watched[0], watched[1], (("Stage", "dev"), ("Variant", "Champion"))) in datums
        assert watched not in datums


def test_without_the_schedule_there_is_no_staleness_alarm(synth):
    assert not [name for name in _alarms(synth) if "stale" in name]
    assert "GRU4Rec/Attribution" not in json.dumps(synth.template_dict("monitoring"))


def test_a_failed_attribution_raises_the_pipelines_failure_alarm(scheduled):
    alarm = _alarms(scheduled)["gru4rec-dev-attribution-failures"]
    assert "gru4rec-dev-batch-failures" in json.dumps(alarm["AlarmActions"])
    assert "gru4rec-dev-attribution" in json.dumps(alarm["Metrics"])
