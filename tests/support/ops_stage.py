"""A stage deployed in moto for the operator CLI's tests: its names, a training state machine shaped like the real
one, stacks that carry the agreed outputs, the endpoint, what a pipeline rollout leaves behind, and ``run`` (the
CLI's exit code and output)."""
from __future__ import annotations

import json

from infra.ops.__main__ import main

REGION = "us-east-1"


ACCOUNT = "123456789012"


BUCKET = "gru4rec-dev-data-1a2b3c"


IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gru4rec-dev:7f3e"


METRICS = [{"Name": "recall@20", "Regex": "recall@20=([0-9.]+);"}]


KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b7c1f3e-1111-2222-3333-444455556666"


ROLLOUT = {
    "RetainAllVariantProperties": True,
    "ExcludeRetainedVariantProperties": [{"VariantPropertyType": "DataCaptureConfig"}],
    "DeploymentConfig": {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
            "Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}, "WaitIntervalInSeconds": 600},
            "TerminationWaitInSeconds": 600, "MaximumExecutionTimeoutInSeconds": 14400},
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "gru4rec-dev-5xx"}]},
    },
}


def training_definition(role_arn: str, spot: bool = True) -> dict:
    """A training state machine shaped like the real one (JSONata): name the job, train,
    gate, deploy."""
    job = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
        "Arguments": {
            "TrainingJobName": "{% $jobName %}",
            "RoleArn": role_arn,
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": METRICS,
            },
            "HyperParameters": "{% $merge([$defaultHyperparameters, "
                               "$states.input.hyperparameters]) %}",
            "InputDataConfig": "{% [$trainChannel, $testChannel] %}",
            "ResourceConfig": {
                "InstanceType": "ml.c5.2xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 20,
                "VolumeKmsKeyId": KEY_ARN,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
            "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models/", "KmsKeyId": KEY_ARN},
        },
        "Next": "Gate",
    }
    if spot:
        job["Arguments"]["EnableManagedSpotTraining"] = True
        job["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] = 14400
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "Name the job",
        "States": {
            "Name the job": {
                "Type": "Pass",
                "Assign": {"jobName": "{% 'gru4rec-dev-train-' & $millis() %}",
                           "defaultHyperparameters": {"preset": "rsc15", "epochs": 10}},
                "Next": "Train",
            },
            "Train": job,
            "Gate": {"Type": "Pass", "Next": "Update endpoint"},
            "Update endpoint": {
                "Type": "Task",
                "Resource": "arn:aws:states:::aws-sdk:sagemaker:updateEndpoint",
                "Arguments": {"EndpointName": "gru4rec-dev", "EndpointConfigName": "{% $jobName %}",
                              **ROLLOUT},
                "Next": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }


def outputs_stack(cloudformation, name: str, outputs: dict[str, str]) -> None:
    """A stack that only carries outputs (as the deployed stack would)."""
    template = {
        "Resources": {"Marker": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))


def create_endpoint(sagemaker, role_arn: str, name: str) -> None:
    sagemaker.create_model(
        ModelName="gru4rec-dev-model-1",
        ExecutionRoleArn=role_arn,
        PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/models/a/model.tar.gz"},
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName="gru4rec-dev-config-1",
        ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": "gru4rec-dev-model-1",
            "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
        }],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName="gru4rec-dev-config-1")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def job_data(job: str) -> str:
    return f"s3://{BUCKET}/models/{job}/output/model.tar.gz"


SERVERLESS_VARIANT = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}


SERVERLESS_CONTAINER = {"Environment": {"SAGEMAKER_SERVERLESS": "true"}}


def pipeline_roll(session, role_arn: str, job: str, serverless: bool = False, package: str | None = None) -> None:
    """What a training execution leaves behind: its model and endpoint config, both named after the job and
    tagged (``package``: the registry version it rolled out); ``serverless``: as the pipeline writes them in
    endpoint_mode=serverless."""
    tags = [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": "dev"}]
    if package:
        tags.append({"Key": "model-package", "Value": package})
    sagemaker = session.client("sagemaker")
    sagemaker.create_model(ModelName=job, ExecutionRoleArn=role_arn, Tags=tags,
                           PrimaryContainer={"Image": IMAGE, "ModelDataUrl": job_data(job),
                                             **(SERVERLESS_CONTAINER if serverless else {})})
    variant = SERVERLESS_VARIANT if serverless else {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sagemaker.create_endpoint_config(EndpointConfigName=job, Tags=tags, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": job, **variant}])
