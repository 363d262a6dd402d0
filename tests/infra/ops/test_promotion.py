"""``infra.ops promote`` in one account, against moto's Model Registry, S3 and ECR.

Two stages (dev and prod), each with its bucket, image repository and model package group, as their stacks make
them. Every request the command sends is checked against botocore's service model.
"""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from infra.ops import promotion, registry
from infra.ops.__main__ import main
from infra.ops.deployment import Deployment, Stack
from infra.ops.errors import OpsError
from tests.support.service_model import problems

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SOURCE_JOB = "gru4rec-dev-train-20261201-031500-0a1b2c3d"
ARCHIVE_KEY = f"models/{SOURCE_JOB}/output/model.tar.gz"
REPORT_KEY = f"models/{SOURCE_JOB}/evaluation.json"
ARCHIVE = b"the model archive's bytes"
# moto's digest of an image is its layers' (a real one is the manifest's): the two images differ in a layer
SERVE_MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                             "config": {"digest": "sha256:" + "0" * 64, "size": 7},
                             "layers": [{"digest": "sha256:" + "1" * 64, "size": 9}]})
OTHER_MANIFEST = SERVE_MANIFEST.replace("1" * 64, "2" * 64)


def _repository_uri(stage: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gru4rec-{stage}"


def _deployment(stage: str) -> Deployment:
    outputs = {"Storage": {"DataBucketName": f"gru4rec-{stage}-data"},
               "Image": {"RepositoryUri": _repository_uri(stage)}, "Endpoint": {"EndpointName": f"gru4rec-{stage}"}}
    stacks = {part: Stack(f"Gru4Rec-{stage.title()}-{part}", "CREATE_COMPLETE", values)
              for part, values in outputs.items()}
    return Deployment(stage=stage, region=REGION, stacks=stacks)


def _stage(session, stage: str, manifest: str) -> None:
    """A deployed stage's bucket, group and repository, its serve image pushed as the image stack copies it."""
    session.client("s3").create_bucket(Bucket=f"gru4rec-{stage}-data",
                                       CreateBucketConfiguration={"LocationConstraint": REGION})
    session.client("sagemaker").create_model_package_group(ModelPackageGroupName=f"gru4rec-{stage}")
    ecr = session.client("ecr")
    ecr.create_repository(repositoryName=f"gru4rec-{stage}")
    ecr.put_image(repositoryName=f"gru4rec-{stage}", imageManifest=manifest, imageTag="serve-abc123")


def _register(session, status: str) -> str:
    """A dev version as the training pipeline registers it (rolled out by its own run on an auto stage)."""
    s3 = session.client("s3")
    s3.put_object(Bucket="gru4rec-dev-data", Key=ARCHIVE_KEY, Body=ARCHIVE)
    s3.put_object(Bucket="gru4rec-dev-data", Key=REPORT_KEY, Body=json.dumps(
        {"recommendation_metrics": {"validation:recall@20": {"value": 0.31}}, "quality_gate": {"approval": status}}))
    return session.client("sagemaker").create_model_package(
        ModelPackageGroupName="gru4rec-dev", ModelApprovalStatus=status, ModelPackageDescription="passed the gate",
        InferenceSpecification={
            "Containers": [{"Image": f"{_repository_uri('dev')}:serve-abc123",
                            "ModelDataUrl": f"s3://gru4rec-dev-data/{ARCHIVE_KEY}"}],
            "SupportedContentTypes": ["application/json", "application/jsonlines"],
            "SupportedResponseMIMETypes": ["application/json", "application/jsonlines"],
            "SupportedTransformInstanceTypes": ["ml.m5.xlarge"],
            "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                      "S3Uri": f"s3://gru4rec-dev-data/{REPORT_KEY}"}}},
        CustomerMetadataProperties={"training-job": SOURCE_JOB, "model-version": SOURCE_JOB, "settings": "preset",
                                    "rolled-out-by": "run-20261201-031500", "hp:epochs": "5"})["ModelPackageArn"]


def _dev_and_prod(prod_manifest):
    """A session in which dev is deployed with this code's serve image and prod with ``prod_manifest``'s."""
    session = boto3.Session(region_name=REGION)
    _stage(session, "dev", SERVE_MANIFEST)
    _stage(session, "prod", prod_manifest)
    return session


@pytest.fixture
def stages(monkeypatch):
    """dev and prod deployed from the same code (the same serve image digest); the requests the command sends."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = _dev_and_prod(SERVE_MANIFEST)
        sent = []
        session.events.register("provide-client-params.*.*",
                                lambda params, model, **_: sent.append(
                                    (model.service_model.service_name, model.name, params)))
        yield session, sent


def _digest(session, stage: str) -> str:
    return session.client("ecr").describe_images(repositoryName=f"gru4rec-{stage}")["imageDetails"][0]["imageDigest"]


def test_an_approved_version_reaches_the_target_pending_with_its_archive_image_metrics_and_link(stages):
    session, sent = stages
    source = _register(session, registry.APPROVED)
    done = promotion.promote(session, "dev", "1", _deployment("prod"))
    assert done.target_arn.endswith(":model-package/gru4rec-prod/1") and done.copied
    sagemaker = session.client("sagemaker")
    version = sagemaker.describe_model_package(ModelPackageName=done.target_arn)
    assert version["ModelApprovalStatus"] == registry.PENDING
    (container,) = version["InferenceSpecification"]["Containers"]
    assert container["Image"] == f"{_repository_uri('prod')}@{_digest(session, 'dev')}"
    assert container["ModelDataUrl"] == f"s3://gru4rec-prod-data/{ARCHIVE_KEY}"
    copied = session.client("s3").get_object(Bucket="gru4rec-prod-data", Key=ARCHIVE_KEY)["Body"].read()
    assert copied == ARCHIVE, "the same archive, byte for byte"
    metadata = version["CustomerMetadataProperties"]
    assert metadata["source-version"] == source and metadata["source-stage"] == "dev"
    assert metadata["training-job"] == SOURCE_JOB and metadata["hp:epochs"] == "5"
    assert metadata["model-name"] == "gru4rec-prod-train-from-dev-1"
    assert "rolled-out-by" not in metadata, "the target's approval must roll it out"
    (shown,) = registry.versions(session, _deployment("prod"))
    assert shown.metrics == {"validation:recall@20": 0.31}, "its evaluation report, read in the target"
    assert version["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] == ["ml.m5.large"], (
        "the source's, where the target has no endpoint to read")
    for service, operation, params in sent:
        assert problems(service, operation, params) == [], (operation, params)
    assert ("sagemaker", "CreateModelPackage") in [(service, operation) for service, operation, _ in sent]


@pytest.mark.parametrize("status", [registry.PENDING, registry.REJECTED])
def test_only_an_approved_version_is_promoted_and_nothing_is_written(stages, status):
    session, sent = stages
    _register(session, status)
    sent.clear()
    with pytest.raises(OpsError, match=f"version 1 of gru4rec-dev is {status}: only an Approved version"):
        promotion.promote(session, "dev", "1", _deployment("prod"))
    assert session.client("sagemaker").list_model_packages(
        ModelPackageGroupName="gru4rec-prod")["ModelPackageSummaryList"] == []
    assert "Contents" not in session.client("s3").list_objects_v2(Bucket="gru4rec-prod-data")
    assert [operation for _, operation, _ in sent if operation in ("CopyObject", "CreateModelPackage")] == []


def test_a_target_without_the_image_is_refused_unless_image_names_one_of_its_own(monkeypatch):
    """Negative control of the digest check: prod deployed from other code holds another image under the same tag."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = _dev_and_prod(OTHER_MANIFEST)
        _register(session, registry.APPROVED)
        with pytest.raises(OpsError, match="repository .*gru4rec-prod has no image sha256:.*same code, "
                                           "or name one of stage prod.s images with --image"):
            promotion.promote(session, "dev", "1", _deployment("prod"))
        assert session.client("sagemaker").list_model_packages(
            ModelPackageGroupName="gru4rec-prod")["ModelPackageSummaryList"] == []
        with pytest.raises(OpsError, match="name an image of stage prod's repository"):
            promotion.promote(session, "dev", "1", _deployment("prod"), image=f"{_repository_uri('dev')}:serve-abc123")
        with pytest.raises(OpsError, match="cannot find image .*:serve-nope"):
            promotion.promote(session, "dev", "1", _deployment("prod"), image=f"{_repository_uri('prod')}:serve-nope")
        done = promotion.promote(session, "dev", "1", _deployment("prod"),
                                 image=f"{_repository_uri('prod')}:serve-abc123")
        assert done.image == f"{_repository_uri('prod')}@{_digest(session, 'prod')}" != f"@{_digest(session, 'dev')}"
        metadata = session.client("sagemaker").describe_model_package(
            ModelPackageName=done.target_arn)["CustomerMetadataProperties"]
        assert metadata["image-digest"] == _digest(session, "prod")


def test_a_version_is_not_promoted_into_its_own_stage(stages):
    session, _sent = stages
    _register(session, registry.APPROVED)
    with pytest.raises(OpsError, match="--to dev: the version is in that stage already"):
        promotion.promote(session, "dev", "1", _deployment("dev"))


def test_the_metadata_stays_within_the_apis_fifty_entries():
    described = {"ModelPackageArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/gru4rec-dev/4",
                 "ModelPackageVersion": 4, "ModelPackageDescription": "d" * 1024,
                 "InferenceSpecification": {"Containers": [{"Image": "x", "ModelDataUrl": "s3://b/k"}],
                                            "SupportedContentTypes": ["application/json"],
                                            "SupportedResponseMIMETypes": ["application/json"]},
                 "CustomerMetadataProperties": {f"hp:p{index}": "1" for index in range(50)}}
    request = promotion.registration_request(described, "dev", _deployment("prod"),
                                             f"{_repository_uri('prod')}@sha256:{'1' * 64}", "s3://b/k", None)
    metadata = request["CustomerMetadataProperties"]
    assert len(metadata) == 50 and "source-version" in metadata
    assert problems("sagemaker", "CreateModelPackage", request) == []
    described["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] = ["ml.m5.large"]
    serverless = promotion.registration_request(described, "dev", _deployment("prod"), "x@sha256:1", "s3://b/k",
                                                None, [])
    assert "SupportedRealtimeInferenceInstanceTypes" not in serverless["InferenceSpecification"], (
        "a serverless endpoint names no instance type")


def test_the_cli_promotes_into_the_stage_named_by_to(stages, monkeypatch, capsys):
    session, _sent = stages
    _register(session, registry.APPROVED)
    loaded = []
    monkeypatch.setattr("infra.ops.__main__.load_deployment",
                        lambda _session, stage, **_kwargs: loaded.append(stage) or _deployment(stage))
    monkeypatch.setattr("infra.ops.__main__.make_session", lambda _args: session)
    assert main(["promote", "1", "--to", "prod", "--region", REGION]) == 0
    assert loaded == ["prod"], "only the target's stacks are read: the source may be another account's"
    out = capsys.readouterr().out
    assert "version 1 of gru4rec-prod is PendingManualApproval" in out and "approve 1 --stage prod" in out
    assert main(["promote", "2", "--to", "prod", "--stage", "dev"]) == 1
    assert "gru4rec-dev has no version 2" in capsys.readouterr().err


def test_a_version_the_target_holds_already_is_not_promoted_again(stages):
    """Its model would have the same name as the first promotion's."""
    session, _sent = stages
    _register(session, registry.APPROVED)
    first = promotion.promote(session, "dev", "1", _deployment("prod"))
    with pytest.raises(OpsError, match=f"gru4rec-prod holds this version already, as {first.target_arn}"):
        promotion.promote(session, "dev", "1", _deployment("prod"))
    _register(session, registry.APPROVED)
    assert promotion.promote(session, "dev", "2", _deployment("prod")).target_version == 2


def test_across_accounts_nothing_is_copied_and_the_version_names_the_sources_archive_and_image(stages, monkeypatch):
    """The cross-account branch, in moto's one account: the version's ARN is taken to be another account's."""
    session, _sent = stages
    source = _register(session, registry.APPROVED)
    monkeypatch.setattr(promotion, "_account", lambda arn: "111111111111" if arn == source else ACCOUNT)
    done = promotion.promote(session, "dev", source, _deployment("prod"))
    assert not done.copied and done.model_data == f"s3://gru4rec-dev-data/{ARCHIVE_KEY}"
    assert done.image == f"{_repository_uri('dev')}@{_digest(session, 'dev')}", "the source's image, by digest"
    assert "Contents" not in session.client("s3").list_objects_v2(Bucket="gru4rec-prod-data")
    version = session.client("sagemaker").describe_model_package(ModelPackageName=done.target_arn)
    assert version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == f"s3://gru4rec-dev-data/{REPORT_KEY}"
    assert version["CustomerMetadataProperties"]["source-version"] == source


def test_the_version_names_the_instance_types_of_the_targets_endpoint(stages):
    session, _sent = stages
    _register(session, registry.APPROVED)
    sagemaker = session.client("sagemaker")
    sagemaker.create_model(ModelName="live", ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model",
                           PrimaryContainer={"Image": "x", "ModelDataUrl": "s3://gru4rec-prod-data/m.tar.gz"})
    sagemaker.create_endpoint_config(EndpointConfigName="live", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": "live", "InstanceType": "ml.c5.xlarge", "InitialInstanceCount": 1}])
    sagemaker.create_endpoint(EndpointName="gru4rec-prod", EndpointConfigName="live")
    done = promotion.promote(session, "dev", "1", _deployment("prod"))
    specification = sagemaker.describe_model_package(ModelPackageName=done.target_arn)["InferenceSpecification"]
    assert specification["SupportedRealtimeInferenceInstanceTypes"] == ["ml.c5.xlarge"]
    assert specification["SupportedTransformInstanceTypes"] == ["ml.m5.xlarge"], "the source's (the target's: unknown)"


def test_the_first_models_archive_is_copied_under_models_not_over_the_targets_first_model(stages):
    """dev's version 1 is its first model (``initial-models/<version>/``, a key prod has its own object under)."""
    session, _sent = stages
    s3 = session.client("s3")
    first_key = "initial-models/initial-1/model.tar.gz"
    s3.put_object(Bucket="gru4rec-dev-data", Key=first_key, Body=b"dev's first model")
    s3.put_object(Bucket="gru4rec-prod-data", Key=first_key, Body=b"prod's first model")
    session.client("sagemaker").create_model_package(
        ModelPackageGroupName="gru4rec-dev", ModelApprovalStatus=registry.APPROVED,
        InferenceSpecification={"Containers": [{"Image": f"{_repository_uri('dev')}:serve-abc123",
                                                "ModelDataUrl": f"s3://gru4rec-dev-data/{first_key}"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"rolled-out-by": "first-deploy"})
    done = promotion.promote(session, "dev", "1", _deployment("prod"))
    assert done.model_data == f"s3://gru4rec-prod-data/models/from-dev-1/{first_key}"
    assert s3.get_object(Bucket="gru4rec-prod-data", Key=first_key)["Body"].read() == b"prod's first model"
    copied = s3.get_object(Bucket="gru4rec-prod-data", Key=f"models/from-dev-1/{first_key}")["Body"].read()
    assert copied == b"dev's first model"
