"""`infra.ops.status` against a stage deployed in moto."""
from __future__ import annotations

import json

from infra.ops import status, training
from tests.support.ops_stage import BUCKET, REGION, run


def test_status_shows_executions_endpoint_and_current_model(stage, capsys):
    sfn = stage.session.client("stepfunctions")
    training.start_training(sfn, stage.training_arn, {"epochs": "1"}, name="train-a")
    sfn.start_execution(stateMachineArn=stage.batch_arn, name="batch-a", input="{}")
    code, out, _ = run(capsys, "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"Stage dev ({REGION})"
    training_row = next(line for line in lines if "train-a" in line)
    assert training_row.split()[0] == "RUNNING"
    assert next(line for line in lines if "batch-a" in line).split()[0] == "RUNNING"
    assert "Endpoint gru4rec-dev: InService" in out
    assert "current model: gru4rec-dev-model-1" in out
    assert f"model data:    s3://{BUCKET}/models/a/model.tar.gz" in out


def test_status_tolerates_parts_not_deployed(stage, capsys):
    cloudformation = stage.session.client("cloudformation")
    cloudformation.delete_stack(StackName="Gru4Rec-Dev-Batch")
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "Batch executions: stack not deployed" in out
    assert "Training executions: no executions yet" in out


def test_the_current_model_is_the_endpoints_whatever_old_pointers_say(stage, capsys):
    """Negative control: the live-model parameters a stage deployed before the registry may still hold change
    nothing of what status calls the current model."""
    ssm = stage.session.client("ssm")
    ssm.put_parameter(Name="/gru4rec/dev/current-model-name", Value="stale", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/gru4rec/dev/current-model-data", Value=f"s3://{BUCKET}/models/stale/model.tar.gz",
                      Type="String", Overwrite=True)
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "current model: gru4rec-dev-model-1" in out
    assert f"model data:    s3://{BUCKET}/models/a/model.tar.gz" in out


def test_job_names_come_from_the_execution_history():
    scheduled = {
        "type": "TaskScheduled",
        "taskScheduledEventDetails": {
            "resourceType": "sagemaker",
            "resource": "createTrainingJob.sync",
            "region": REGION,
            "parameters": json.dumps({"TrainingJobName": "gru4rec-dev-train-a", "RoleArn": "r"}),
        },
    }
    events = [{"type": "ExecutionStarted"}, {"type": "TaskStateEntered"}, scheduled]
    assert status.job_name_from_history(events, "TrainingJob") == "gru4rec-dev-train-a"
    assert status.job_name_from_history(events, "TransformJob") is None
    assert status.job_name_from_history(events[:2], "TrainingJob") is None
