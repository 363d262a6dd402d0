"""`infra.ops.cleanup` against a stage deployed in moto: only what nothing uses is deleted."""
from __future__ import annotations

import json

from infra.ops import training
from tests.support.ops_stage import BUCKET, IMAGE, job_data, outputs_stack, pipeline_roll, run


def tagged_model_and_config(sagemaker, role_arn: str, suffix: str, stage: str = "dev") -> None:
    tags = [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": stage}]
    sagemaker.create_model(
        ModelName=f"gru4rec-{stage}-model-{suffix}", ExecutionRoleArn=role_arn, Tags=tags,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/{suffix}.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"gru4rec-{stage}-config-{suffix}", Tags=tags,
        ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": f"gru4rec-{stage}-model-{suffix}",
            "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
        }],
    )


def endpoint_stack_owning_a_model(stage) -> str:
    """The Endpoint stack with its own (tagged) first model; returns the model's name."""
    cloudformation = stage.session.client("cloudformation")
    cloudformation.delete_stack(StackName="Gru4Rec-Dev-Endpoint")
    model = {"Type": "AWS::SageMaker::Model", "Properties": {
        "ModelName": "gru4rec-dev-model-first", "ExecutionRoleArn": stage.role_arn,
        "PrimaryContainer": {"Image": IMAGE},
        "Tags": [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": "dev"}],
    }}
    template = {"Resources": {"FirstModel": model},
                "Outputs": {"EndpointName": {"Value": "gru4rec-dev"}}}
    cloudformation.create_stack(StackName="Gru4Rec-Dev-Endpoint", TemplateBody=json.dumps(template))
    [resource] = cloudformation.list_stack_resources(StackName="Gru4Rec-Dev-Endpoint")[
        "StackResourceSummaries"]
    return resource["PhysicalResourceId"].rsplit("/", 1)[-1]


def test_cleanup_deletes_only_what_nothing_uses(stage, capsys):
    sagemaker = stage.session.client("sagemaker")
    live = sagemaker.describe_model(ModelName="gru4rec-dev-model-1")["ModelArn"]
    sagemaker.add_tags(ResourceArn=live, Tags=[{"Key": "project", "Value": "gru4rec"},
                                               {"Key": "stage", "Value": "dev"}])
    tagged_model_and_config(sagemaker, stage.role_arn, "old")
    tagged_model_and_config(sagemaker, stage.role_arn, "other", stage="prod")
    first_model = endpoint_stack_owning_a_model(stage)
    code, out, _ = run(capsys, "cleanup")
    assert code == 0
    assert out.splitlines() == [
        "endpoint config gru4rec-dev-config-old",
        "model gru4rec-dev-model-old",
        "not in use; run again with --yes to delete them",
    ]
    assert len(sagemaker.list_models()["Models"]) == 4
    code, out, _ = run(capsys, "cleanup", "--yes")
    assert code == 0 and out.splitlines()[-1] == "deleted"
    models = sorted(m["ModelName"] for m in sagemaker.list_models()["Models"])
    assert models == [first_model, "gru4rec-dev-model-1", "gru4rec-prod-model-other"]
    configs = sagemaker.list_endpoint_configs()["EndpointConfigs"]
    assert sorted(c["EndpointConfigName"] for c in configs) == [
        "gru4rec-dev-config-1", "gru4rec-prod-config-other"
    ]


def test_cleanup_waits_for_a_running_training(stage, capsys):
    sfn = stage.session.client("stepfunctions")
    training.start_training(sfn, stage.training_arn, {}, name="train-b")
    tagged_model_and_config(stage.session.client("sagemaker"), stage.role_arn, "old")
    code, _, err = run(capsys, "cleanup", "--yes")
    assert code == 1 and "training execution train-b is running" in err
    assert len(stage.session.client("sagemaker").list_models()["Models"]) == 2


def test_cleanup_after_destroy_removes_the_last_ones(stage, capsys):
    sagemaker = stage.session.client("sagemaker")
    tagged_model_and_config(sagemaker, stage.role_arn, "live")
    cloudformation = stage.session.client("cloudformation")
    for part in ("Storage", "Image", "Endpoint", "Api", "Training", "Batch"):
        cloudformation.delete_stack(StackName=f"Gru4Rec-Dev-{part}")
    sagemaker.delete_endpoint(EndpointName="gru4rec-dev")
    code, out, _ = run(capsys, "cleanup", "--yes")
    assert code == 0 and out.splitlines()[-1] == "deleted"
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["gru4rec-dev-model-1"]
    code, _, err = run(capsys, "status")
    assert code == 1 and "Gru4Rec-Dev-Storage" in err


def test_cleanup_keeps_the_models_live_before_the_current_one(stage, capsys):
    """The models of the live registry version and of the model_keep_count (1 here) Approved versions before it
    stay, with their endpoint configs; older ones go. A Rejected version in between counts for nothing."""
    cloudformation = stage.session.client("cloudformation")
    cloudformation.delete_stack(StackName="Gru4Rec-Dev-Training")
    outputs_stack(cloudformation, "Gru4Rec-Dev-Training",
                  {"TrainingStateMachineArn": stage.training_arn, "ModelKeepCount": "1"})
    sagemaker = stage.session.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName="gru4rec-dev")
    for job, status in (("older", "Approved"), ("previous", "Approved"), ("rejected", "Rejected"),
                        ("live", "Approved")):
        package = sagemaker.create_model_package(
            ModelPackageGroupName="gru4rec-dev", ModelApprovalStatus=status, InferenceSpecification={
                "Containers": [{"Image": IMAGE, "ModelDataUrl": job_data(f"gru4rec-dev-train-{job}")}],
                "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
        )["ModelPackageArn"]
        if status == "Approved":
            pipeline_roll(stage.session, stage.role_arn, f"gru4rec-dev-train-{job}", package=package)
    sagemaker.delete_endpoint(EndpointName="gru4rec-dev")
    sagemaker.create_endpoint(EndpointName="gru4rec-dev", EndpointConfigName="gru4rec-dev-train-live")
    code, out, _ = run(capsys, "cleanup")
    assert code == 0
    listed = set(out.splitlines()[:-1])
    assert listed == {"endpoint config gru4rec-dev-train-older", "model gru4rec-dev-train-older"}
