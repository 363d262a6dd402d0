"""The training pipeline executed end to end from the synthesized template (``tests.support.sfn_executor``):
each path from the start to its end state, the requests it makes checked against botocore's model.

Stand-ins (``tests.support.stand_ins``): DescribeTrainingJob of the finished job (what ``.sync`` returns),
DescribeEndpoint and UpdateEndpoint (moto has no UpdateEndpoint; before the rollout DescribeEndpoint is moto's
endpoint, which serves the live model). SSM, SNS and SageMaker's models and endpoint configurations are moto's.
"""
from __future__ import annotations

import json

import boto3
import pytest

from infra.stacks.training import ENDPOINT_MAX_POLLS
from tests.support.cfn_values import REGION
from tests.support.pipeline_runs import (
    FIRST_MODEL,
    PASSING,
    ROLLOUT,
    assert_well_formed,
    data_bucket,
    offline_stage,
    published,
)
from tests.support.stand_ins import Endpoint, TrainingJobs

VARIANTS = ["default", "serverless"]
OPERATOR_INPUT = {"hyperparameters": {"epochs": 3, "loss": "bpr-max", "preset": "diginetica"}, "test_channel": False}


def _models_uri(bucket: str, job: str) -> str:
    return f"s3://{bucket}/models/{job}/output/model.tar.gz"


def _run(result, execution_input=None, metrics=PASSING, statuses=ROLLOUT, live=FIRST_MODEL, failed=()):
    """One execution; with it the SSM calls it made (none but the read of the tuned settings: the live model is
    what the endpoint serves, and nothing records it beside)."""
    with offline_stage(result) as stage:
        stage.live_model(live)
        TrainingJobs(stage.boundary, metrics, failed)
        Endpoint(stage.boundary, result.config.endpoint_name, statuses)
        run = stage.run("training", execution_input)
    assert_well_formed(run)
    ssm = [request.operation for request in run.requests if request.service == "ssm"]
    assert set(ssm) <= {"GetParameters"}, ssm
    return stage, run, ssm


def _channels(job: dict) -> list[str]:
    return [channel["ChannelName"] for channel in job["InputDataConfig"]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_first_model_is_gated_on_the_floor_refit_and_shipped(variants, variant):
    result = variants[variant]
    stage, run, _ssm = _run(result)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    train, refit = run.calls("sagemaker", "CreateTrainingJob")
    assert _channels(train) == ["train", "test"], "no champion channel without a pipeline-trained live model"
    assert train["HyperParameters"]["valid_days"] == "1" and "valid_days" not in refit["HyperParameters"]
    assert refit["TrainingJobName"] == train["TrainingJobName"] + "-refit"
    shipped = refit["TrainingJobName"]
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["ModelName"] == shipped and model["PrimaryContainer"]["ModelDataUrl"] == _models_uri(
        stage.bucket, shipped
    )
    (update,) = run.calls("sagemaker", "UpdateEndpoint")
    assert update["EndpointConfigName"] == shipped
    assert run.output["gated"] == {"job": train["TrainingJobName"], "validation:recall@20": 0.31, "champion": None,
                                   "champion:validation:recall@20": None}
    assert run.output["shipped"] == {"job": shipped, "modelData": _models_uri(stage.bucket, shipped), "refit": True}
    assert run.waits == [60, 60, 60], "one poll interval before each endpoint check"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_operators_hyperparameters_and_test_channel_reach_train_and_refit(variants, variant):
    stage, run, _ssm = _run(variants[variant], OPERATOR_INPUT)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    train, refit = run.calls("sagemaker", "CreateTrainingJob")
    window = run.output["window"]
    assert train["HyperParameters"] == {"preset": "diginetica", "epochs": "3", "loss": "bpr-max", "valid_days": "1",
                                        **window}
    assert refit["HyperParameters"] == {"preset": "diginetica", "epochs": "3", "loss": "bpr-max", **window}
    assert _channels(train) == _channels(refit) == ["train"]


TUNED = {"layers": "192", "learning_rate": "0.0734", "loss": "cross-entropy", "tuning_job": "tune-dev-2612071345"}


def _run_tuned(result, execution_input, tuned):
    with offline_stage(result) as stage:
        if tuned is not None:
            boto3.client("ssm", region_name=REGION).put_parameter(
                Name=result.config.tuned_hyperparameters_parameter_name, Value=json.dumps(tuned), Type="String")
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, result.config.endpoint_name, ROLLOUT)
        run = stage.run("training", execution_input)
    assert_well_formed(run)
    return run


def test_applied_tuned_settings_reach_train_and_refit_under_the_operators_own(synth):
    run = _run_tuned(synth, {"hyperparameters": {"learning_rate": "0.05"}}, TUNED)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.calls("ssm", "GetParameters") == [{"Names": [synth.config.tuned_hyperparameters_parameter_name]}]
    train, refit = run.calls("sagemaker", "CreateTrainingJob")
    expected = {"preset": "rsc15", **TUNED, "learning_rate": "0.05", **run.output["window"]}
    assert train["HyperParameters"] == {**expected, "valid_days": "1"}
    assert refit["HyperParameters"] == expected


def test_without_an_applied_tuning_job_no_tuned_settings_are_sent(synth):
    """Negative control: the same run with no tuned-hyperparameters parameter."""
    run = _run_tuned(synth, None, None)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    train, _refit = run.calls("sagemaker", "CreateTrainingJob")
    assert train["HyperParameters"] == {"preset": "rsc15", "valid_days": "1", **run.output["window"]}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_challenger_scored_beside_the_live_model_passes_and_ships_through_refit(variants, variant):
    synth = variants[variant]
    live = _models_uri(data_bucket(synth), "gru4rec-dev-train-20261101-000000-0a1b2c3d")
    metrics = {"": {"validation:recall@20": 0.31, "champion:validation:recall@20": 0.30}}
    stage, run, _ssm = _run(synth, metrics=metrics, live=live)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    train, refit = run.calls("sagemaker", "CreateTrainingJob")
    assert _channels(train) == ["train", "test", "champion"] and _channels(refit) == ["train", "test"]
    assert train["InputDataConfig"][2]["DataSource"]["S3DataSource"]["S3Uri"] == live
    assert run.output["gated"]["champion"] == live and run.output["gated"]["champion:validation:recall@20"] == 0.30
    (update,) = run.calls("sagemaker", "UpdateEndpoint")
    assert update["EndpointConfigName"] == refit["TrainingJobName"]


def test_the_champion_is_the_model_the_endpoint_serves_and_no_parameter_is_read(synth):
    live = _models_uri(data_bucket(synth), "gru4rec-dev-train-20261101-000000-0a1b2c3d")
    metrics = {"": {"validation:recall@20": 0.31, "champion:validation:recall@20": 0.30}}
    _stage, run, ssm = _run(synth, metrics=metrics, live=live)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    train, _refit = run.calls("sagemaker", "CreateTrainingJob")
    assert train["InputDataConfig"][2]["DataSource"]["S3DataSource"]["S3Uri"] == live
    assert ssm == ["GetParameters"]
    (read,) = run.calls("ssm", "GetParameters")
    assert read["Names"] == [synth.config.tuned_hyperparameters_parameter_name], "the tuned settings only"


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_challenger_below_the_live_model_stops_before_any_model_is_made(variants, variant):
    synth = variants[variant]
    live = _models_uri(data_bucket(synth), "gru4rec-dev-train-20261101-000000-0a1b2c3d")
    metrics = {"": {"validation:recall@20": 0.29, "champion:validation:recall@20": 0.30}}
    stage, run, _ssm = _run(synth, metrics=metrics, live=live)
    assert (run.status, run.error) == ("FAILED", "QualityGate.BelowLiveModel")
    assert "validation:recall@20 = 0.29, the live model 0.3" in run.cause
    assert len(run.calls("sagemaker", "CreateTrainingJob")) == 1, "no refit"
    assert run.calls("sagemaker", "CreateModel") == [] and run.calls("sagemaker", "UpdateEndpoint") == []
    (message,) = published(run)
    assert message["error"] == "QualityGate.BelowLiveModel" and message["job"] == run.calls(
        "sagemaker", "CreateTrainingJob")[0]["TrainingJobName"]


def test_below_the_floor_fails_the_gate(synth):
    _stage, run, _ssm = _run(synth, metrics={"": {"validation:recall@20": 0.05}})
    assert (run.status, run.error) == ("FAILED", "QualityGate.BelowThreshold")
    assert run.calls("sagemaker", "CreateModel") == []


def test_without_refit_the_gated_job_ships(refit_off_new_data_on):
    refit_off = refit_off_new_data_on
    stage, run, _ssm = _run(refit_off, OPERATOR_INPUT)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    (train,) = run.calls("sagemaker", "CreateTrainingJob")
    assert train["HyperParameters"]["epochs"] == "3" and _channels(train) == ["train"]
    assert run.output["shipped"] == {
        "job": train["TrainingJobName"],
        "modelData": _models_uri(stage.bucket, train["TrainingJobName"]),
        "refit": False,
    }
    assert [u["EndpointConfigName"] for u in run.calls("sagemaker", "UpdateEndpoint")] == [train["TrainingJobName"]]


def test_without_validation_days_the_test_recall_gates_and_nothing_is_refit(variants):
    result = variants["prod"]
    assert result.config.valid_days == 0
    stage, run, _ssm = _run(result, {"hyperparameters": {"epochs": 2}}, metrics={"": {"recall@20": 0.4}})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert "Read live model" not in run.states_entered()
    (train,) = run.calls("sagemaker", "CreateTrainingJob")
    assert "valid_days" not in train["HyperParameters"] and train["HyperParameters"]["epochs"] == "2"
    assert _channels(train) == ["train", "test"]
    assert run.output["recall@20"] == 0.4
    assert run.calls("sagemaker", "UpdateEndpoint") == [], "prod approves by hand: nothing went live"


def test_without_validation_days_a_missing_test_recall_fails_the_gate(variants):
    _stage, run, _ssm = _run(variants["prod"], {"test_channel": False}, metrics={"": {"mrr@20": 0.1}})
    assert (run.status, run.error) == ("FAILED", "QualityGate.MetricMissing")


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_rolled_back_rollout_fails_and_keeps_the_live_model(variants, variant):
    result = variants[variant]
    statuses = [("InService", "old"), ("Updating", "old"), ("RollingBack", "old"), ("InService", "old")]
    stage, run, _ssm = _run(result, statuses=statuses)
    assert (run.status, run.error) == ("FAILED", "Deployment.RolledBack")
    assert len(run.calls("sagemaker", "UpdateEndpoint")) == 1
    assert run.calls("ssm", "PutParameter") == []


@pytest.mark.slow
def test_a_busy_endpoint_is_awaited_then_given_up(synth):
    stage, run, _ssm = _run(synth, statuses=[("Updating", "old")])
    assert (run.status, run.error) == ("FAILED", "Deployment.EndpointBusy")
    assert len(run.calls("sagemaker", "DescribeEndpoint")) == 1 + ENDPOINT_MAX_POLLS, "the live model's read, the polls"
    assert run.waits == [60] * (ENDPOINT_MAX_POLLS - 1)
    assert run.calls("sagemaker", "UpdateEndpoint") == []


def test_a_busy_endpoint_that_frees_up_is_updated(synth):
    statuses = [("Updating", "old"), ("Updating", "old"), ("InService", "old"), ("InService", "new")]
    _stage, run, _ssm = _run(synth, statuses=statuses)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert len(run.calls("sagemaker", "UpdateEndpoint")) == 1


def test_a_failed_training_job_notifies_and_fails(synth):
    """The notification names the task's error and the job's Describe response; the execution fails with that
    error outside the States Language's reserved prefix (the interpreter refuses a Fail state's States.* name)."""
    _stage, run, _ssm = _run(synth, failed=("",))
    assert run.status == "FAILED" and run.calls("sagemaker", "CreateModel") == []
    assert run.error == "GRU4Rec.TaskFailed" and "AlgorithmError" in run.cause
    (message,) = published(run)
    assert message["error"] == "States.TaskFailed" and "AlgorithmError" in message["cause"]


# --- negative controls: each stand-in fails a run whose definition is wrong --------------------------------------

def _run_edited(result, edit, statuses=ROLLOUT):
    with offline_stage(result) as stage:
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, result.config.endpoint_name, statuses)
        stage.pipelines.create(stage.machine("training"), edit)
        return stage.run("training")


def test_a_train_state_that_does_not_wait_for_the_job_fails(synth):
    """Without ``.sync`` the state's result is CreateTrainingJob's answer, which has no model artifact."""
    def no_sync(definition):
        definition["States"]["Train"]["Resource"] = definition["States"]["Train"]["Resource"].removesuffix(".sync")

    run = _run_edited(synth, no_sync)
    assert run.status == "FAILED" and run.calls("sagemaker", "DescribeTrainingJob") == []
    (message,) = published(run)
    assert message["error"] == "States.QueryEvaluationError"


def test_a_gate_reading_another_metric_name_finds_none(synth):
    def other_metric(definition):
        assign = definition["States"]["Train"]["Assign"]
        assign["recall"] = assign["recall"].replace("validation:recall@20", "validation:recall@10")

    assert _run_edited(synth, other_metric).error == "QualityGate.MetricMissing"


def test_an_update_of_another_endpoint_is_refused(synth):
    def other_endpoint(definition):
        definition["States"]["Update endpoint"]["Arguments"]["EndpointName"] = "gru4rec-other"

    run = _run_edited(synth, other_endpoint)
    assert run.status == "FAILED" and run.calls("sagemaker", "UpdateEndpoint")[0]["EndpointName"] == "gru4rec-other"
    assert run.calls("ssm", "PutParameter") == []


def test_a_rollout_check_against_the_gated_job_mistakes_the_refit_for_a_rollback(synth):
    def gated(definition):
        for rule in definition["States"]["Endpoint updated?"]["Choices"]:
            rule["Condition"] = rule["Condition"].replace("$jobName", "$gatedJob")

    assert _run_edited(synth, gated).error == "Deployment.RolledBack"
