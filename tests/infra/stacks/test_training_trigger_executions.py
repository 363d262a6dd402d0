"""What starts the training pipeline, executed offline from the synthesized template: the new-data trigger
(a day's ``_SUCCESS`` marker starts one training run a day) and the schedule's input.

The trigger's StartExecution is moto's (which refuses a name used before, as Step Functions does); the
training runs it starts use the training stand-ins (``tests.support.stand_ins``), the tuning job's too: the
retraining variant tunes before its first gated training.
"""
from __future__ import annotations

import json

import pytest

from tests.support.pipeline_runs import PASSING, ROLLOUT, assert_well_formed, offline_stage
from tests.support.stand_ins import Endpoint, TrainingJobs, TuningJobs

MARKER = "training/events/dt={day}/_SUCCESS"
TUNED = {"layers": "128", "learning_rate": "0.05"}


def _marker_event(bucket: str, day: str, at: str) -> dict:
    return {"version": "0", "detail-type": "Object Created", "source": "aws.s3", "time": at,
            "detail": {"bucket": {"name": bucket}, "object": {"key": MARKER.format(day=day)}}}


def _training_runs(stage) -> dict[str, dict]:
    """Training executions started so far: name -> (status, input), each waited for to its end."""
    client = stage.pipelines.client
    arn = stage.pipelines.create_once(stage.machine("training"))
    runs = {}
    for execution in client.list_executions(stateMachineArn=arn)["executions"]:
        ended = stage.pipelines.wait_for(execution["executionArn"], len(stage.boundary.requests))
        described = client.describe_execution(executionArn=execution["executionArn"])
        runs[execution["name"]] = {"status": ended.status, "input": json.loads(described["input"])}
    return runs


@pytest.fixture
def stage(variants):
    with offline_stage(variants["retraining"]) as stage:
        TrainingJobs(stage.boundary, PASSING)
        TuningJobs(stage.boundary, TUNED)
        Endpoint(stage.boundary, stage.config.endpoint_name, ROLLOUT)
        stage.pipelines.create_once(stage.machine("training"))
        yield stage


def test_a_days_marker_starts_one_training_run_named_after_the_day(stage):
    first = stage.run("training-trigger", _marker_event(stage.bucket, "2026-11-30", "2026-12-01T00:10:00Z"))
    assert first.status == "SUCCEEDED", (first.error, first.cause)
    assert_well_formed(first)
    (start,) = first.calls("stepfunctions", "StartExecution")
    assert start["name"] == "new-data-2026-12-01"
    runs = _training_runs(stage)
    assert runs == {"new-data-2026-12-01": {"status": "SUCCEEDED", "input": {
        "trigger": "new-data", "marker": MARKER.format(day="2026-11-30")}}}


def test_later_markers_of_the_same_day_start_nothing_more(stage):
    stage.run("training-trigger", _marker_event(stage.bucket, "2026-11-29", "2026-12-01T00:10:00Z"))
    _training_runs(stage)
    later = stage.run("training-trigger", _marker_event(stage.bucket, "2026-11-30", "2026-12-01T23:50:00Z"))
    assert later.status == "SUCCEEDED" and "Already started today" in later.states_entered()
    next_day = stage.run("training-trigger", _marker_event(stage.bucket, "2026-12-01", "2026-12-02T00:05:00Z"))
    assert next_day.status == "SUCCEEDED" and "Already started today" not in next_day.states_entered()
    assert sorted(_training_runs(stage)) == ["new-data-2026-12-01", "new-data-2026-12-02"]


def test_a_trigger_naming_runs_by_the_minute_would_train_twice_a_day(stage):
    """The negative control: the once-a-day rule is the execution name's, so a finer name breaks it."""
    def by_minute(definition):
        start = definition["States"]["Start training"]["Arguments"]
        start["Name"] = start["Name"].replace("[D01]", "[D01]-[H01][m01]")

    stage.pipelines.create(stage.machine("training-trigger"), by_minute)
    stage.run("training-trigger", _marker_event(stage.bucket, "2026-11-29", "2026-12-01T00:10:00Z"))
    stage.run("training-trigger", _marker_event(stage.bucket, "2026-11-30", "2026-12-01T23:50:00Z"))
    assert len(_training_runs(stage)) == 2


def test_the_schedule_starts_the_pipeline_with_an_input_it_runs_on(stage):
    stacks, training = stage.pipelines.stacks, stage.pipelines.machines()[stage.machine("training")][0]
    (schedule,) = [resource["Properties"] for resource in stacks.templates[training]["Resources"].values()
                   if resource["Type"] == "AWS::Scheduler::Schedule"]
    target = stacks.resolve(training, schedule["Target"])
    assert target["Arn"] == stage.pipelines.create_once(stage.machine("training"))
    run = stage.run("training", json.loads(target["Input"]))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    train, _refit = run.calls("sagemaker", "CreateTrainingJob")
    assert train["HyperParameters"]["preset"] == "rsc15" and [c["ChannelName"] for c in train["InputDataConfig"]] == [
        "train", "test"]
    assert {name: train["HyperParameters"][name] for name in TUNED} == TUNED  # the tuning step ran first
