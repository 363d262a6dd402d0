"""`infra.ops.live_model` against a stage deployed in moto: the live models' history and the rollback."""
from __future__ import annotations

import pytest

from tests.support.ops_stage import (
    ACCOUNT,
    BUCKET,
    IMAGE,
    REGION,
    ROLLOUT,
    SERVERLESS_CONTAINER,
    SERVERLESS_VARIANT,
    job_data,
    pipeline_roll,
    run,
)

FIRST_DATA = f"s3://{BUCKET}/models/a/model.tar.gz"  # what the stage fixture makes live first


JOB_A, JOB_B = "gru4rec-dev-train-20261129-021710-0a1b2c3d", "gru4rec-dev-train-20261130-021710-4e5f6a7b"


def finished_training_job(session, role_arn: str, name: str, recall: float, mrr: float) -> None:
    """A training job with final metrics (moto reports none of its own)."""
    from moto.sagemaker.models import sagemaker_backends

    session.client("sagemaker").create_training_job(
        TrainingJobName=name,
        RoleArn=role_arn,
        AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models/"},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
    )
    sagemaker_backends[ACCOUNT][REGION].training_jobs[name].final_metric_data_list = [
        {"MetricName": "recall@20", "Value": recall}, {"MetricName": "mrr@20", "Value": mrr}]


@pytest.fixture
def rolled_twice(stage):
    """First model -> job A -> job B, each with its metrics."""
    finished_training_job(stage.session, stage.role_arn, JOB_A, 0.6123, 0.3012)
    finished_training_job(stage.session, stage.role_arn, JOB_B, 0.6345, 0.3101)
    pipeline_roll(stage.session, stage.role_arn, JOB_A)
    pipeline_roll(stage.session, stage.role_arn, JOB_B)
    return stage


def _pointers(session) -> tuple[str, str]:
    ssm = session.client("ssm")
    return tuple(ssm.get_parameter(Name=f"/gru4rec/dev/current-model-{leaf}")["Parameter"]["Value"]
                 for leaf in ("data", "name"))


def test_status_lists_every_live_model_with_its_metrics_and_what_replaced_it(rolled_twice, capsys):
    code, out, _ = run(capsys, "status")
    assert code == 0
    lines = out.splitlines()
    start = lines.index("Model history (newest first):")
    header, newest, middle, oldest = (line.split() for line in lines[start + 1:start + 5])
    assert header == ["MODEL", "RECALL@20", "MRR@20", "LIVE", "SINCE", "(UTC)", "REPLACED", "BY"]
    assert newest[:3] == [JOB_B, "0.6345", "0.3101"] and newest[-1] == "(live)"
    assert middle[:3] == [JOB_A, "0.6123", "0.3012"] and middle[-2] == JOB_B
    assert oldest[:5] == ["first", "model", "-", "-", oldest[4]] and oldest[-2] == JOB_A


def test_rollback_puts_the_previous_model_live_through_the_pipelines_guardrails(rolled_twice, capsys,
                                                                               update_endpoint):
    session = rolled_twice.session
    code, out, err = run(capsys, "rollback")
    assert code == 0, err
    (call,) = update_endpoint.calls
    assert {key: call[key] for key in ROLLOUT} == ROLLOUT
    name = call["EndpointConfigName"]
    assert name.startswith("gru4rec-dev-rollback-") and f"live: {JOB_A} (model {name})" in out
    sagemaker = session.client("sagemaker")
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    assert (variant["ModelName"], variant["InstanceType"], variant["VariantName"]) == (
        name,
        "ml.m5.large",
        "AllTraffic",
    )
    model = sagemaker.describe_model(ModelName=name)
    assert model["PrimaryContainer"]["ModelDataUrl"] == job_data(JOB_A)
    assert "ModelDataSource" not in model["PrimaryContainer"]
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert _pointers(session) == (job_data(JOB_A), name)
    _, out, _ = run(capsys, "status")
    history = out.splitlines()[out.splitlines().index("Model history (newest first):") + 2]
    assert history.split()[0] == JOB_A and history.split()[-1] == "(live)"


def test_rollback_of_a_serverless_endpoint_keeps_it_serverless(stage, capsys, update_endpoint):
    for job in (JOB_A, JOB_B):
        finished_training_job(stage.session, stage.role_arn, job, 0.6, 0.3)
        pipeline_roll(stage.session, stage.role_arn, job, serverless=True)
    from moto.sagemaker.models import sagemaker_backends

    # the pipeline's rollout, which moto cannot run: the endpoint serves job B's serverless configuration
    sagemaker_backends[ACCOUNT][REGION].endpoints["gru4rec-dev"].endpoint_config_name = JOB_B
    code, _, err = run(capsys, "rollback")
    assert code == 0, err
    name = update_endpoint.calls[0]["EndpointConfigName"]
    sagemaker = stage.session.client("sagemaker")
    (variant,) = sagemaker.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
    assert variant["ServerlessConfig"] == SERVERLESS_VARIANT["ServerlessConfig"] and "InstanceType" not in variant
    container = sagemaker.describe_model(ModelName=name)["PrimaryContainer"]
    assert container["Environment"] == SERVERLESS_CONTAINER["Environment"]


def test_rollback_to_a_named_model_or_the_first(rolled_twice, capsys, update_endpoint):
    code, _, err = run(capsys, "rollback", "--to", "first")
    assert code == 0, err
    assert _pointers(rolled_twice.session)[0] == FIRST_DATA
    code, _, err = run(capsys, "rollback", "--to", "gru4rec-dev-train-19990101-000000-00000000")
    assert code == 1 and "has never been live on this stage" in err and JOB_A in err and "first" in err


def test_a_rollback_the_alarms_roll_back_fails_and_keeps_the_live_model(rolled_twice, capsys, update_endpoint):
    update_endpoint.rolls_back = True
    before = _pointers(rolled_twice.session)
    code, _, err = run(capsys, "rollback")
    assert code == 1
    assert "did not finish" in err and "alarm gru4rec-dev-5xx fired" in err and "the live model is unchanged" in err
    assert _pointers(rolled_twice.session) == before


def test_rollback_waits_for_no_other_update(rolled_twice, capsys, update_endpoint):
    from moto.sagemaker.models import sagemaker_backends

    sagemaker_backends[ACCOUNT][REGION].endpoints["gru4rec-dev"].endpoint_status = "Updating"
    code, _, err = run(capsys, "rollback")
    assert code == 1 and "is Updating: another update is running" in err
    assert update_endpoint.calls == []


def test_rollback_needs_an_earlier_model(stage, capsys, update_endpoint):
    code, _, err = run(capsys, "rollback")
    assert code == 1 and "no earlier model to roll back to" in err
