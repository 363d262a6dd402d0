"""``infra.ops approve``, ``reject`` and the registry part of ``status`` against moto's Model Registry."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from infra.ops import registry
from infra.ops.__main__ import main
from infra.ops.cli import build_parser
from infra.ops.deployment import Deployment, Stack
from infra.ops.errors import OpsError

REGION = "eu-west-1"
GROUP = "gru4rec-dev"
BUCKET = "gru4rec-dev-data"
ENDPOINT = "gru4rec-dev"


def _deployment() -> Deployment:
    stacks = {"Endpoint": Stack("Gru4Rec-Dev-Endpoint", "CREATE_COMPLETE", {"EndpointName": ENDPOINT})}
    return Deployment(stage="dev", region=REGION, stacks=stacks)


def _register(sagemaker, s3, job: str, status: str, recall: float) -> str:
    key = f"models/{job}/evaluation.json"
    s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=json.dumps({"recommendation_metrics": {"validation:recall@20": {"value": recall}}, "quality_gate": {}}),
    )
    return sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        ModelPackageDescription=f"gate said {recall}",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:serve",
                    "ModelDataUrl": f"s3://{BUCKET}/models/{job}/output/model.tar.gz",
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        ModelMetrics={
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}}
        },
        CustomerMetadataProperties={"training-job": job},
    )["ModelPackageArn"]


def _serve(sagemaker, job: str, package: str | None) -> None:
    """The endpoint serving the model of ``job``, tagged with its version as the pipeline tags it."""
    tags = [{"Key": "model-package", "Value": package}] if package else []
    sagemaker.create_model(
        ModelName=job,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/model",
        PrimaryContainer={"Image": "x", "ModelDataUrl": f"s3://{BUCKET}/m.tar.gz"},
        Tags=tags,
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=job,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": job, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=job)


@pytest.fixture
def registry_stage(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        sagemaker, s3 = session.client("sagemaker"), session.client("s3")
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        live = _register(sagemaker, s3, "job-1", "Approved", 0.30)
        pending = _register(sagemaker, s3, "job-2", "PendingManualApproval", 0.31)
        _serve(sagemaker, "job-1", live)
        yield session, live, pending


def test_approve_sets_a_pending_version_approved_with_the_note(registry_stage):
    session, _live, pending = registry_stage
    version = registry.approve(session, _deployment(), "2", "checked the report")
    assert (version.arn, version.approval, version.approval_description) == (pending, "Approved", "checked the report")
    described = session.client("sagemaker").describe_model_package(ModelPackageName=pending)
    assert described["ModelApprovalStatus"] == "Approved"


def test_an_approved_version_is_not_approved_again(registry_stage):
    session, _live, _pending = registry_stage
    with pytest.raises(OpsError, match="version 1 is already Approved"):
        registry.approve(session, _deployment(), "1", None)


def test_reject_records_the_reason_and_refuses_the_live_version(registry_stage):
    session, live, pending = registry_stage
    version = registry.reject(session, _deployment(), pending, "catalogue drift")
    assert (version.approval, version.approval_description) == ("Rejected", "catalogue drift")
    with pytest.raises(OpsError, match="version 1 is the live model"):
        registry.reject(session, _deployment(), "1", "too old")
    with pytest.raises(OpsError, match="--reason must say why"):
        registry.reject(session, _deployment(), "2", "  ")


@pytest.mark.parametrize(
    "version, message",
    [
        ("7", "gru4rec-dev has no version 7"),
        ("seven", "VERSION 'seven' is neither"),
        ("0", "VERSION '0' is neither"),
        ("arn:aws:sagemaker:eu-west-1:123456789012:model-package/gru4rec-prod/1", "is neither"),
    ],
)
def test_a_version_the_group_does_not_hold_is_named(registry_stage, version, message):
    session, _live, _pending = registry_stage
    with pytest.raises(OpsError, match=message):
        registry.approve(session, _deployment(), version, None)


def test_status_lists_versions_newest_first_with_their_metrics_and_marks_the_live_one(registry_stage):
    session, live, _pending = registry_stage
    found = registry.versions(session, _deployment())
    assert [(v.number, v.approval, v.metrics) for v in found] == [
        (2, "PendingManualApproval", {"validation:recall@20": 0.31}),
        (1, "Approved", {"validation:recall@20": 0.30}),
    ]
    assert registry.live_version_arn(session, _deployment()) == live
    lines = registry.render(found, live).splitlines()
    assert lines[1].startswith("     2  PendingManualApproval") and "validation:recall@20 0.3100" in lines[1]
    assert lines[2].startswith("*    1  Approved") and "job-1" in lines[2]


def test_the_first_model_has_no_live_version(monkeypatch):
    """Negative control of the live marker: an endpoint whose model carries no version tag has none."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        _serve(session.client("sagemaker"), "initial-1", None)
        assert registry.live_version_arn(session, _deployment()) is None
        assert registry.versions(session, _deployment()) == []
        assert registry.render([], None) == "model registry: no versions yet"


def test_reject_needs_a_reason_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reject", "3"])
    assert "--reason" in capsys.readouterr().err
    assert build_parser().parse_args(["approve", "3", "--stage", "prod"]).version == "3"


def test_the_cli_reports_an_unknown_version_as_an_error(registry_stage, monkeypatch, capsys):
    session, _live, _pending = registry_stage
    monkeypatch.setattr("infra.ops.__main__.load_deployment", lambda *_args, **_kwargs: _deployment())
    assert main(["approve", "9", "--region", REGION]) == 1
    assert "gru4rec-dev has no version 9" in capsys.readouterr().err
