"""Promotion in one account, executed: ``infra.ops promote`` gives dev's Approved version to prod, a person approves
it there, and prod's approval trigger and training pipeline roll it out through prod's guarded rollout.

moto holds both groups, both buckets and both image repositories; the stand-ins are those of the registry's
executions (``ModelPackages``, told of the version the operator CLI registered, the endpoint's rollout). Every
request the pipelines send is checked against botocore's service model.
"""
from __future__ import annotations

import json

import boto3
import pytest

from infra.ops import promotion
from infra.ops.deployment import Deployment, Stack
from infra.registry import APPROVED, PENDING
from infra.stacks.model_versions import APPROVAL_EVENT, MODEL_NAME, ROLLED_OUT_BY
from tests.support.cfn_values import ACCOUNT, REGION
from tests.support.pipeline_runs import ROLLOUT, assert_well_formed, offline_stage
from tests.support.stand_ins import Endpoint, ModelPackages

SOURCE_JOB = "gru4rec-dev-train-20261201-031500-0a1b2c3d"
ARCHIVE_KEY = f"models/{SOURCE_JOB}/output/model.tar.gz"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "config": {"digest": "sha256:" + "0" * 64, "size": 7},
                       "layers": [{"digest": "sha256:" + "1" * 64, "size": 9}]})


def _repository_uri(stage: str) -> str:
    return f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gru4rec-{stage}"


def _dev_version(session) -> str:
    """dev's stage in moto (bucket, group, repository) and an Approved version its pipeline rolled out itself."""
    session.client("s3").create_bucket(Bucket="gru4rec-dev-data",
                                       CreateBucketConfiguration={"LocationConstraint": REGION})
    session.client("s3").put_object(Bucket="gru4rec-dev-data", Key=ARCHIVE_KEY, Body=b"archive")
    sagemaker = session.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="gru4rec-dev")
    for stage in ("dev", "prod"):
        session.client("ecr").create_repository(repositoryName=f"gru4rec-{stage}")
        session.client("ecr").put_image(repositoryName=f"gru4rec-{stage}", imageManifest=MANIFEST, imageTag="serve-1")
    return sagemaker.create_model_package(
        ModelPackageGroupName="gru4rec-dev", ModelApprovalStatus=APPROVED,
        InferenceSpecification={"Containers": [{"Image": f"{_repository_uri('dev')}:serve-1",
                                                "ModelDataUrl": f"s3://gru4rec-dev-data/{ARCHIVE_KEY}"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        CustomerMetadataProperties={"training-job": SOURCE_JOB, "model-version": SOURCE_JOB, "gated-job": SOURCE_JOB,
                                    "window-start": "2026-11-03", "window-end": "2026-11-30", "settings": "preset",
                                    ROLLED_OUT_BY: "run-20261201"})["ModelPackageArn"]


def _approval_event(version: dict) -> dict:
    """The registry's event of the approval, as SageMaker sends it (the fields the rule and the trigger read)."""
    return {"version": "0", "id": "5e1c2b9a-0d1f-4c1e-9b7e-2f0a6d7c8e91", "detail-type": APPROVAL_EVENT,
            "source": "aws.sagemaker", "account": ACCOUNT, "time": "2026-12-07T18:00:00Z", "region": REGION,
            "resources": [version["ModelPackageArn"]],
            "detail": {"ModelPackageGroupName": version["ModelPackageGroupName"],
                       "ModelPackageVersion": version["ModelPackageVersion"],
                       "ModelPackageArn": version["ModelPackageArn"], "ModelApprovalStatus": APPROVED,
                       "ModelPackageStatus": "Completed"}}


def _promote_then_approve(result, edit_registration=None):
    """prod (``result``) in moto; dev's version promoted into it with the operator CLI, approved, its event sent."""
    with offline_stage(result) as stage:
        session = boto3.Session(region_name=REGION)
        source = _dev_version(session)
        registered = []
        session.events.register("provide-client-params.sagemaker.CreateModelPackage",
                                lambda params, **_: registered.append(edit_registration(params) if edit_registration
                                                                      else params))
        target = Deployment(stage="prod", region=REGION, stacks={
            "Storage": Stack("Gru4Rec-Prod-Storage", "CREATE_COMPLETE", {"DataBucketName": stage.bucket}),
            "Image": Stack("Gru4Rec-Prod-Image", "CREATE_COMPLETE", {"RepositoryUri": _repository_uri("prod")}),
            "Endpoint": Stack("Gru4Rec-Prod-Endpoint", "CREATE_COMPLETE",
                              {"EndpointName": result.config.endpoint_name})})
        done = promotion.promote(session, "dev", "1", target)
        Endpoint(stage.boundary, result.config.endpoint_name, ROLLOUT)
        packages = ModelPackages(stage.boundary, registered=tuple(registered))
        pending = packages.describe({"ModelPackageName": done.target_arn})
        session.client("sagemaker").update_model_package(ModelPackageArn=done.target_arn, ModelApprovalStatus=APPROVED)
        approved = packages.describe({"ModelPackageName": done.target_arn})
        machine = stage.pipelines.create_once(stage.machine("training"))
        first = len(stage.boundary.requests)
        trigger = stage.run("rollout-trigger", _approval_event(approved))
        (execution,) = stage.pipelines.client.list_executions(stateMachineArn=machine)["executions"]
        run = stage.pipelines.wait_for(execution["executionArn"], first)
        live = [request.operation for request in run.requests if request.service == "ssm"]
    return source, pending, trigger, execution, run, live


def test_approving_a_promoted_version_rolls_it_out_through_the_targets_guarded_rollout(variants):
    result = variants["prod"]
    source, pending, trigger, execution, run, live = _promote_then_approve(result)
    assert pending["ModelApprovalStatus"] == PENDING and pending["ModelPackageGroupName"] == "gru4rec-prod"
    assert pending["CustomerMetadataProperties"]["source-version"] == source
    assert trigger.status == "SUCCEEDED" and execution["name"] == "version-1"
    assert_well_formed(trigger)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert_well_formed(run)
    assert run.calls("sagemaker", "CreateTrainingJob") == [], "a promotion trains nothing"
    (container,) = pending["InferenceSpecification"]["Containers"]
    (model,) = run.calls("sagemaker", "CreateModel")
    assert model["ModelName"] == pending["CustomerMetadataProperties"][MODEL_NAME] == "gru4rec-prod-train-from-dev-1"
    assert model["PrimaryContainer"]["Image"] == container["Image"], "the version's image, by digest"
    assert "@sha256:" in container["Image"] and container["Image"].startswith(_repository_uri("prod"))
    assert model["PrimaryContainer"]["ModelDataUrl"] == container["ModelDataUrl"]
    assert container["ModelDataUrl"].endswith(ARCHIVE_KEY) and "gru4rec-dev-data" not in container["ModelDataUrl"]
    tags = {tag["Key"]: tag["Value"] for tag in model["Tags"]}
    assert tags["model-package"] == pending["ModelPackageArn"], "status marks the promoted version live"
    (update,) = run.calls("sagemaker", "UpdateEndpoint")
    assert update["EndpointName"] == result.config.endpoint_name and "DeploymentConfig" in update
    assert update["EndpointConfigName"] == model["ModelName"]
    assert live == [], "the endpoint is the record of the live model: no parameter is written"


def test_a_promoted_version_that_kept_its_sources_rollout_mark_would_never_go_live(variants):
    """Negative control: the metadata the promotion leaves behind is what lets the target's approval act."""
    def keep_mark(params):
        params["CustomerMetadataProperties"][ROLLED_OUT_BY] = "run-20261201"
        return params

    _source, _pending, trigger, _execution, run, _live = _promote_then_approve(variants["prod"], keep_mark)
    assert trigger.status == "SUCCEEDED" and run.status == "SUCCEEDED"
    assert "Rolled out when registered" in run.states_entered()
    assert run.calls("sagemaker", "CreateModel") == []


def test_the_cli_and_the_pipeline_agree_on_the_model_name_entry():
    assert promotion.MODEL_NAME == MODEL_NAME
    assert ROLLED_OUT_BY in promotion.NOT_CARRIED


@pytest.mark.parametrize("name", ["gru4rec-prod-train-from-dev-1",
                                  "gru4rec-abcdefghijklmnop-train-from-qrstuvwxyzabcdef-99999"])
def test_a_promoted_models_name_is_one_sagemaker_takes(name):
    stages = name.split("-")
    assert promotion.promoted_model_name(stages[-2], int(stages[-1]), stages[1]) == name and len(name) <= 63
