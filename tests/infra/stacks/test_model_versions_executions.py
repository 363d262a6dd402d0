"""The training pipeline's record of models, executed: every trained model becomes a version of the stage's
model package group, with the gate's verdict as its approval status.

moto holds the registry (CreateModelPackage, DescribeModelPackage, ListModelPackages) and the evaluation reports
(S3); the stand-ins are those of ``test_executions_training`` (the finished training job, the endpoint's
rollout). Every request is checked against botocore's service model, its patterns and limits included.
"""

from __future__ import annotations

import json

import boto3
import pytest
from moto.events.models import EventPattern

from infra.registry import (
    APPROVED,
    CONTENT_TYPES,
    FIRST_DEPLOY,
    METRICS_GROUP,
    PENDING,
    REJECTED,
    ROLLED_OUT_BY,
    inference_specification,
    metadata_value,
)
from infra.stacks.model_versions import APPROVAL_EVENT
from tests.support.cfn_values import ACCOUNT, REGION
from tests.support.pipeline_runs import FIRST_MODEL, PASSING, ROLLOUT, assert_well_formed, data_bucket, offline_stage
from tests.support.service_model import problems
from tests.support.sfn_executor import Request, Run, evaluate_jsonata
from tests.support.stand_ins import Endpoint, ModelPackages, TrainingJobs

LIVE_JOB = "gru4rec-dev-train-20261101-000000-0a1b2c3d"


def _run(result, metrics=PASSING, live=FIRST_MODEL, execution_input=None, tuned=None):
    """One execution; returns it with the group's versions as moto describes them afterwards, oldest first."""
    with offline_stage(result) as stage:
        stage.live_model(live)
        if tuned is not None:
            boto3.client("ssm", region_name=REGION).put_parameter(
                Name=result.config.tuned_hyperparameters_parameter_name, Value=json.dumps(tuned), Type="String"
            )
        TrainingJobs(stage.boundary, metrics)
        Endpoint(stage.boundary, result.config.endpoint_name, ROLLOUT)
        ModelPackages(stage.boundary)
        run = stage.run("training", execution_input)
        versions = _versions(result.config.model_package_group_name)
        reports = {
            version["ModelPackageArn"]: json.loads(stage.get_object(_report_key(stage, version)))
            for version in versions
        }
    assert_well_formed(run)
    return stage, run, versions, reports


def _versions(group: str) -> list[dict]:
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    summaries = sagemaker.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Ascending"
    )["ModelPackageSummaryList"]
    return [sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"]) for summary in summaries]


def _report_key(stage, version: dict) -> str:
    uri = version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    prefix = f"s3://{stage.bucket}/"
    assert uri.startswith(prefix), uri
    return uri[len(prefix) :]


def _live(result) -> str:
    return f"s3://{data_bucket(result)}/models/{LIVE_JOB}/output/model.tar.gz"


@pytest.mark.parametrize("variant", ["default", "serverless"])
def test_a_model_that_passes_is_registered_approved_before_it_goes_live(variants, variant):
    result = variants[variant]
    stage, run, versions, reports = _run(result)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    (version,) = versions
    (model,) = run.calls("sagemaker", "CreateModel")
    assert version["ModelApprovalStatus"] == APPROVED and version["ModelPackageGroupName"] == "gru4rec-dev"
    container = version["InferenceSpecification"]["Containers"][0]
    assert container == {
        "Image": model["PrimaryContainer"]["Image"],
        "ModelDataUrl": model["PrimaryContainer"]["ModelDataUrl"],
    }
    specification = version["InferenceSpecification"]
    assert specification["SupportedContentTypes"] == CONTENT_TYPES
    assert specification["SupportedTransformInstanceTypes"] == [result.config.transform_instance_type]
    realtime = specification.get("SupportedRealtimeInferenceInstanceTypes")
    assert realtime == (None if result.config.serverless else [result.config.endpoint_instance_type])
    operations = [f"{request.service}:{request.operation}" for request in run.requests]
    assert operations.index("sagemaker:CreateModelPackage") < operations.index("sagemaker:CreateModel")
    tags = {tag["Key"]: tag["Value"] for tag in model["Tags"]}
    assert tags["model-package"] == version["ModelPackageArn"] == run.output["modelPackage"]
    assert version["ModelPackageDescription"].startswith(
        "passed the quality gate: validation:recall@20 = 0.31, floor 0.2"
    )


def test_a_version_carries_its_metrics_report_and_the_runs_metadata(synth):
    metrics = {"": {"validation:recall@20": 0.31, "champion:validation:recall@20": 0.30, "recall@20": 0.28}}
    stage, run, (version,), reports = _run(synth, metrics=metrics, live=_live(synth))
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    train, refit = run.calls("sagemaker", "CreateTrainingJob")
    report = reports[version["ModelPackageArn"]]
    assert report[METRICS_GROUP] == {
        "validation:recall@20": {"value": 0.31},
        "champion:validation:recall@20": {"value": 0.30},
        "recall@20": {"value": 0.28},
    }
    assert report["quality_gate"] == {
        "metric": "validation:recall@20",
        "floor": 0.2,
        "tolerance": 0.005,
        "approval": APPROVED,
        "champion": _live(synth),
        "gated_job": train["TrainingJobName"],
    }
    assert _report_key(stage, version) == f"models/{refit['TrainingJobName']}/evaluation.json"
    metadata = version["CustomerMetadataProperties"]
    window = run.output["window"]
    assert {
        key: metadata[key]
        for key in ("training-job", "model-version", "gated-job", "window-start", "window-end", "settings", "hp:preset")
    } == {
        "training-job": refit["TrainingJobName"],
        "model-version": refit["TrainingJobName"],
        "gated-job": train["TrainingJobName"],
        "window-start": window["window_start"],
        "window-end": window["window_end"],
        "settings": "preset",
        "hp:preset": "rsc15",
    }
    assert "tuning-job" not in metadata
    assert metadata["training-image"] == train["AlgorithmSpecification"]["TrainingImage"]
    assert "live model 0.3 on the same sessions" in version["ModelPackageDescription"]


def test_tuned_settings_are_named_in_the_metadata(synth):
    tuned = {"layers": "192", "tuning_job": "tune-dev-2612071345"}
    _stage, run, (version,), _reports = _run(
        synth, tuned=tuned, execution_input={"hyperparameters": {"loss": "top1,max"}}
    )
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    metadata = version["CustomerMetadataProperties"]
    assert (metadata["settings"], metadata["tuning-job"], metadata["hp:layers"]) == (
        "tuned",
        "tune-dev-2612071345",
        "192",
    )
    assert "hp:tuning_job" not in metadata
    assert metadata["hp:loss"] == "top1_max", "a character the API refuses in a value is replaced"


def test_a_metadata_value_the_api_refuses_is_caught_by_the_request_check():
    """Negative control of the sanitizing above: the raw value fails botocore's pattern in the request check."""
    request = {"ModelPackageGroupName": "gru4rec-dev", "CustomerMetadataProperties": {"hp:loss": "top1,max"}}
    assert any(
        "CustomerMetadataProperties" in problem for problem in problems("sagemaker", "CreateModelPackage", request)
    )
    assert evaluate_jsonata(metadata_value("'top1,max'")) == "top1_max"
    assert evaluate_jsonata(metadata_value("''")) == "-"
    assert len(evaluate_jsonata(metadata_value("'" + "x" * 300 + "'"))) == 256


@pytest.mark.parametrize(
    "metrics, live, error, reason",
    [
        (
            {"validation:recall@20": 0.29, "champion:validation:recall@20": 0.30},
            True,
            "QualityGate.BelowLiveModel",
            "validation:recall@20 = 0.29, the live model 0.3",
        ),
        ({"validation:recall@20": 0.05}, False, "QualityGate.BelowThreshold", "below the quality gate threshold 0.2"),
        ({"mrr@20": 0.1}, False, "QualityGate.MetricMissing", "reported no validation:recall@20"),
    ],
)
def test_a_model_the_gate_stops_is_registered_rejected_with_the_reason(synth, metrics, live, error, reason):
    stage, run, (version,), reports = _run(synth, metrics={"": metrics}, live=_live(synth) if live else FIRST_MODEL)
    assert (run.status, run.error) == ("FAILED", error)
    (train,) = run.calls("sagemaker", "CreateTrainingJob")
    assert version["ModelApprovalStatus"] == REJECTED and reason in version["ModelPackageDescription"]
    assert version["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == (
        f"s3://{stage.bucket}/models/{train['TrainingJobName']}/output/model.tar.gz"
    )
    assert reports[version["ModelPackageArn"]]["quality_gate"]["approval"] == REJECTED
    assert run.calls("sagemaker", "CreateModel") == [] and run.calls("sagemaker", "UpdateEndpoint") == []
    (message,) = [json.loads(params["Message"]) for params in run.calls("sns", "Publish")]
    assert message["error"] == error, "the notification names the gate's verdict, not the registration"


def test_on_a_manual_stage_a_passing_model_waits_for_approval(variants):
    result = variants["prod"]
    assert result.config.approval_mode == "manual"
    _stage, run, (version,), _reports = _run(result, metrics={"": {"recall@20": 0.4}})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert version["ModelApprovalStatus"] == PENDING and version["ModelPackageGroupName"] == "gru4rec-prod"
    assert "Awaiting approval" in run.states_entered()
    assert run.calls("sagemaker", "CreateModel") == [] and run.calls("sagemaker", "UpdateEndpoint") == []
    assert run.output["modelPackage"] == version["ModelPackageArn"]


def test_registration_into_a_group_that_does_not_exist_fails_the_run(synth):
    """Negative control: moto refuses a version of a group it does not hold, so the runs above show the group used."""

    def other_group(definition):
        definition["States"]["Register model version"]["Arguments"]["ModelPackageGroupName"] = "gru4rec-other"

    with offline_stage(synth) as stage:
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, synth.config.endpoint_name, ROLLOUT)
        stage.pipelines.create(stage.machine("training"), other_group)
        run = stage.run("training")
    assert run.status == "FAILED" and "Model Package Group does not exist" in run.cause
    assert run.calls("sagemaker", "CreateModel") == []


# --- deployment follows approval ----------------------------------------------------------------------------------


def _approval_event(version: dict, status: str = APPROVED) -> dict:
    """The registry's event of a version's state change, as SageMaker sends it (the fields the rule and the trigger
    read): https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html#eventbridge-model-package"""
    return {
        "version": "0",
        "id": "844e2571-85d4-695f-b930-0153b71dcb42",
        "detail-type": APPROVAL_EVENT,
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2026-12-07T17:00:14Z",
        "region": REGION,
        "resources": [version["ModelPackageArn"]],
        "detail": {
            "ModelPackageGroupName": version["ModelPackageGroupName"],
            "ModelPackageVersion": version["ModelPackageVersion"],
            "ModelPackageArn": version["ModelPackageArn"],
            "ModelApprovalStatus": status,
            "ModelPackageStatus": "Completed",
        },
    }


def _pipeline_runs(stage, first_request: int) -> dict[str, Run]:
    """Executions of the training pipeline the trigger started (named ``version-<n>``), each waited for to its end,
    with the requests made from ``first_request`` on."""
    client = stage.pipelines.client
    arn = stage.pipelines.create_once(stage.machine("training"))
    runs = {}
    for execution in client.list_executions(stateMachineArn=arn)["executions"]:
        if execution["name"].startswith("version-"):
            runs[execution["name"]] = stage.pipelines.wait_for(execution["executionArn"], first_request)
    return runs


def _approve(arn: str) -> None:
    boto3.client("sagemaker", region_name=REGION).update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus=APPROVED, ApprovalDescription="checked the report"
    )


def _pending_then_approved(result, events: int, edit=None):
    """A manual stage: a run registers a pending version, a person approves it, the registry sends ``events``
    events of that approval (SageMaker may send several per change)."""
    with offline_stage(result) as stage:
        TrainingJobs(stage.boundary, {"": {"recall@20": 0.4}})
        Endpoint(stage.boundary, result.config.endpoint_name, ROLLOUT)
        ModelPackages(stage.boundary)
        stage.pipelines.create_once(stage.machine("training"))
        if edit:
            stage.pipelines.create(stage.machine("rollout-trigger"), edit)
        trained = stage.run("training")
        (version,) = _versions(result.config.model_package_group_name)
        _approve(version["ModelPackageArn"])
        first = len(stage.boundary.requests)
        triggers = [stage.run("rollout-trigger", _approval_event(version)) for _ in range(events)]
        runs = _pipeline_runs(stage, first)
        live = [update["EndpointConfigName"] for run in runs.values()
                for update in run.calls("sagemaker", "UpdateEndpoint")]
    return trained, version, triggers, runs, live


def test_approving_a_pending_version_rolls_it_out_once(variants):
    trained, version, triggers, runs, live = _pending_then_approved(variants["prod"], events=2)
    assert trained.status == "SUCCEEDED" and trained.calls("sagemaker", "UpdateEndpoint") == []
    for trigger in triggers:
        assert_well_formed(trigger)
    assert [trigger.calls("stepfunctions", "StartExecution")[0]["name"] for trigger in triggers] == ["version-1"] * 2
    assert all(trigger.status == "SUCCEEDED" for trigger in triggers)
    (run,) = runs.values()
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    (job,) = trained.calls("sagemaker", "CreateTrainingJob")
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["ModelName"] == job["TrainingJobName"]
    assert (
        model["PrimaryContainer"]["ModelDataUrl"] == version["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    )
    (update,) = run.calls("sagemaker", "UpdateEndpoint")
    assert update["EndpointConfigName"] == job["TrainingJobName"] and live == [job["TrainingJobName"]]
    assert run.output["modelPackage"] == version["ModelPackageArn"]
    assert run.calls("sagemaker", "CreateTrainingJob") == [], "a rollout trains nothing"


def test_a_trigger_naming_runs_by_event_would_roll_a_version_out_twice(variants):
    """Negative control: the once-per-version rule is the execution name's."""

    def by_event(definition):
        start = definition["States"]["Start rollout"]["Arguments"]
        start["Name"] = (
            "{% 'version-' & $string($states.input.detail.ModelPackageVersion) & '-' & $string($millis()) %}"
        )

    _trained, _version, _triggers, runs, _live = _pending_then_approved(variants["prod"], events=2, edit=by_event)
    assert len(runs) == 2


def test_the_approval_event_of_a_version_its_run_rolled_out_rolls_out_nothing_more(synth):
    with offline_stage(synth) as stage:
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, synth.config.endpoint_name, ROLLOUT)
        ModelPackages(stage.boundary)
        stage.pipelines.create_once(stage.machine("training"))
        trained = stage.run("training")
        (version,) = _versions(synth.config.model_package_group_name)
        first = len(stage.boundary.requests)
        trigger = stage.run("rollout-trigger", _approval_event(version))
        (run,) = _pipeline_runs(stage, first).values()
    assert trained.status == "SUCCEEDED" and len(trained.calls("sagemaker", "UpdateEndpoint")) == 1
    assert version["CustomerMetadataProperties"]["rolled-out-by"].startswith("run-"), "the training execution's name"
    assert trigger.status == "SUCCEEDED" and run.status == "SUCCEEDED", (run.error, run.cause)
    assert "Rolled out when registered" in run.states_entered()
    assert run.calls("sagemaker", "CreateModel") == [] and run.calls("sagemaker", "UpdateEndpoint") == []


@pytest.mark.parametrize("status", [REJECTED, PENDING])
def test_a_version_that_is_not_approved_is_not_rolled_out(synth, status):
    with offline_stage(synth) as stage:
        metrics = {"": {"validation:recall@20": 0.05}} if status == REJECTED else PASSING
        TrainingJobs(stage.boundary, metrics)
        Endpoint(stage.boundary, synth.config.endpoint_name, ROLLOUT)
        ModelPackages(stage.boundary)
        stage.run("training")
        (version,) = _versions(synth.config.model_package_group_name)
        if status == PENDING:
            boto3.client("sagemaker", region_name=REGION).update_model_package(
                ModelPackageArn=version["ModelPackageArn"], ModelApprovalStatus=PENDING
            )
        run = stage.run("training", {"modelPackage": version["ModelPackageArn"], "rollback": True})
    assert_well_formed(run)
    assert (run.status, run.error) == ("FAILED", "Rollout.NotApproved")
    assert f"is {status}" in run.cause and run.calls("sagemaker", "UpdateEndpoint") == []


def test_the_rule_matches_approved_versions_of_this_stages_group_only(synth):
    """Matched with moto's EventBridge pattern matcher."""
    stack = synth.stacks["training"].stack_name
    (pattern,) = [
        resource["Properties"]["EventPattern"]
        for resource in synth.templates[stack]["Resources"].values()
        if resource["Type"] == "AWS::Events::Rule"
        and resource["Properties"].get("EventPattern", {}).get("detail-type") == [APPROVAL_EVENT]
    ]
    version = {
        "ModelPackageGroupName": "gru4rec-dev",
        "ModelPackageVersion": 3,
        "ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/gru4rec-dev/3",
    }
    rule = EventPattern.load(json.dumps(pattern))
    assert rule.matches_event(_approval_event(version))
    assert not rule.matches_event(_approval_event(version, PENDING))
    assert not rule.matches_event(_approval_event(version, REJECTED))
    assert not rule.matches_event(_approval_event({**version, "ModelPackageGroupName": "gru4rec-prod"}))


def test_moto_describes_a_version_unlike_aws_without_the_stand_in(synth):
    """Negative control of ``ModelPackages``: moto's own answer fails the output check and, after an approval,
    has lost the metadata the rollout reads."""
    with offline_stage(synth) as stage:
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, synth.config.endpoint_name, ROLLOUT)
        stage.run("training")
        (version,) = _versions(synth.config.model_package_group_name)
        _approve(version["ModelPackageArn"])
        raw = boto3.client("sagemaker", region_name=REGION).describe_model_package(
            ModelPackageName=version["ModelPackageArn"]
        )
        raw.pop("ResponseMetadata")
        corrected = ModelPackages(stage.boundary).describe({"ModelPackageName": version["ModelPackageArn"]})
    assert problems("sagemaker", "DescribeModelPackage", raw, output=True) != []
    assert "CustomerMetadataProperties" not in raw
    assert problems("sagemaker", "DescribeModelPackage", corrected, output=True) == []
    assert (
        corrected["CustomerMetadataProperties"]["training-job"] == version["CustomerMetadataProperties"]["training-job"]
    )


def test_the_first_models_version_registered_at_deploy_rolls_out_nothing_more(synth):
    """The version the Endpoint stack registers (``FirstModelVersion``: no training job, ``rolled-out-by:
    cdk-deploy``): its approval event starts a run that ends at once."""
    request = {
        "ModelPackageGroupName": "gru4rec-dev",
        "ModelApprovalStatus": APPROVED,
        "InferenceSpecification": inference_specification(
            synth.config, "123456789012.dkr.ecr.eu-west-1.amazonaws.com/gru4rec-dev:serve-1", FIRST_MODEL
        ),
        "CustomerMetadataProperties": {"model-version": "initial-1", ROLLED_OUT_BY: FIRST_DEPLOY},
    }
    assert problems("sagemaker", "CreateModelPackage", request) == []
    with offline_stage(synth) as stage:
        Endpoint(stage.boundary, synth.config.endpoint_name, ROLLOUT)
        ModelPackages(stage.boundary)
        stage.pipelines.create_once(stage.machine("training"))
        arn = boto3.client("sagemaker", region_name=REGION).create_model_package(**request)["ModelPackageArn"]
        stage.boundary.requests.append(Request("sagemaker", "CreateModelPackage", request))  # what ModelPackages reads
        (version,) = _versions("gru4rec-dev")
        first = len(stage.boundary.requests)
        trigger = stage.run("rollout-trigger", _approval_event(version))
        (run,) = _pipeline_runs(stage, first).values()
    assert arn == version["ModelPackageArn"] and trigger.status == "SUCCEEDED"
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert "Rolled out when registered" in run.states_entered() and run.calls("sagemaker", "CreateModel") == []
    assert run.output["rolledOutBy"] == FIRST_DEPLOY


def _trained_then_rolled_back(synth, execution_input: dict):
    """A run registers (and rolls out) version 1; then the pipeline is started as ``infra.ops rollback`` starts it."""
    with offline_stage(synth) as stage:
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, synth.config.endpoint_name, ROLLOUT)
        ModelPackages(stage.boundary)
        trained = stage.run("training")
        (version,) = _versions(synth.config.model_package_group_name)
        run = stage.run("training", {"modelPackage": version["ModelPackageArn"], **execution_input},
                        name="rollback-1-20261207-193000")
    assert_well_formed(run)
    return trained, version, run


def test_a_rollback_rolls_an_approved_version_out_again_under_a_name_of_its_own(synth):
    """The version's own model and endpoint config exist (or were cleaned up): the rollback makes new ones, of the
    pipeline's names, from the version's image and archive, through the same guarded rollout."""
    trained, version, run = _trained_then_rolled_back(synth, {"rollback": True, "trigger": "rollback"})
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    (first,) = trained.calls("sagemaker", "CreateModel")
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["ModelName"] != first["ModelName"] and model["ModelName"].startswith("gru4rec-dev-train-")
    container = version["InferenceSpecification"]["Containers"][0]
    assert (model["PrimaryContainer"]["Image"], model["PrimaryContainer"]["ModelDataUrl"]) == (
        container["Image"], container["ModelDataUrl"])
    tags = {tag["Key"]: tag["Value"] for tag in model["Tags"]}
    assert tags["model-package"] == version["ModelPackageArn"], "status then marks the version live"
    (update,) = run.calls("sagemaker", "UpdateEndpoint")
    assert update["EndpointConfigName"] == model["ModelName"] and "DeploymentConfig" in update
    assert run.output["modelPackage"] == version["ModelPackageArn"]
    assert run.calls("sagemaker", "CreateTrainingJob") == [] and run.calls("sagemaker", "CreateModelPackage") == []


def test_without_the_rollback_flag_a_rolled_out_version_is_not_rolled_out_again(synth):
    """Negative control: the same start without ``rollback`` ends at the version's mark."""
    _trained, _version, run = _trained_then_rolled_back(synth, {"trigger": "rollback"})
    assert run.status == "SUCCEEDED" and "Rolled out when registered" in run.states_entered()
    assert run.calls("sagemaker", "CreateModel") == [] and run.calls("sagemaker", "UpdateEndpoint") == []
