"""The operator CLI against a stage deployed in moto: stacks carrying the agreed outputs, and
the resources they name (bucket, state machines, SSM parameters, API key, endpoint).

The one-off training job's CreateTrainingJob request goes through boto3 into moto's SageMaker. `recommend` talks to a local HTTP server standing in for API Gateway.
"""
from __future__ import annotations

import gzip
import json
import re
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from moto import mock_aws

from infra.ops import scoring, status, training
from infra.ops.__main__ import main
from infra.ops.deployment import load_deployment
from infra.ops.errors import OpsError
from tests.infra.service_model import problems

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:sagemaker.*")

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


@pytest.fixture
def aws(monkeypatch):
    """moto's fake credentials and a region."""
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.Session(region_name=REGION)


@pytest.fixture
def stage(aws):
    """Stage `dev` deployed in moto: six stacks with the agreed outputs and what they name."""
    iam = aws.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    role_arn = iam.create_role(RoleName="gru4rec-dev-training", AssumeRolePolicyDocument=trust)[
        "Role"
    ]["Arn"]
    aws.client("s3").create_bucket(Bucket=BUCKET)
    sfn = aws.client("stepfunctions")
    training_arn = sfn.create_state_machine(
        name="gru4rec-dev-training",
        definition=json.dumps(training_definition(role_arn)),
        roleArn=role_arn,
    )["stateMachineArn"]
    batch_arn = sfn.create_state_machine(
        name="gru4rec-dev-batch",
        definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}),
        roleArn=role_arn,
    )["stateMachineArn"]
    api_key = aws.client("apigateway").create_api_key(name="gru4rec-dev", enabled=True)
    ssm = aws.client("ssm")
    ssm.put_parameter(
        Name="/gru4rec/dev/current-model-name", Value="gru4rec-dev-model-1", Type="String"
    )
    ssm.put_parameter(
        Name="/gru4rec/dev/current-model-data",
        Value=f"s3://{BUCKET}/models/a/model.tar.gz",
        Type="String",
    )
    create_endpoint(aws.client("sagemaker"), role_arn, "gru4rec-dev")
    api_url = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/"
    outputs = {
        "Storage": {"DataBucketName": BUCKET},
        "Image": {"RepositoryUri": IMAGE.split(":")[0]},
        "Endpoint": {"EndpointName": "gru4rec-dev"},
        "Api": {"ApiUrl": api_url, "ApiKeyId": api_key["id"]},
        "Training": {"TrainingStateMachineArn": training_arn, "TrainWindowDays": "28"},
        "Batch": {"BatchStateMachineArn": batch_arn},
    }
    cloudformation = aws.client("cloudformation")
    for part, values in outputs.items():
        outputs_stack(cloudformation, f"Gru4Rec-Dev-{part}", values)
    return SimpleNamespace(
        session=aws, role_arn=role_arn, training_arn=training_arn, batch_arn=batch_arn,
        api_key=api_key, api_url=api_url,
    )


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the deployment --------------------------------------------------------------------------


def test_deployment_is_read_from_the_stack_outputs(stage):
    deployment = load_deployment(stage.session, "dev")
    assert deployment.data_bucket == BUCKET
    assert deployment.endpoint_name == "gru4rec-dev"
    assert deployment.api_url == stage.api_url
    assert deployment.api_key_id == stage.api_key["id"]
    assert deployment.training_state_machine_arn == stage.training_arn
    assert deployment.batch_state_machine_arn == stage.batch_arn
    assert deployment.repository_uri == IMAGE.split(":")[0]


def test_unknown_stage_names_the_missing_stack(stage, capsys):
    code, out, err = run(capsys, "--stage", "qa", "status")
    assert code == 1 and out == ""
    assert "Gru4Rec-Qa-Storage" in err and "'qa'" in err


def test_a_missing_part_names_its_stack(stage, capsys):
    stage.session.client("cloudformation").delete_stack(StackName="Gru4Rec-Dev-Api")
    code, _, err = run(capsys, "recommend", "a")
    assert code == 1
    assert "stack Gru4Rec-Dev-Api does not exist" in err


def test_a_missing_output_is_named(aws, capsys, tmp_path):
    outputs_stack(aws.client("cloudformation"), "Gru4Rec-Dev-Storage", {"Other": "x"})
    sessions = write_lines(tmp_path / "whatever.jsonl", ['{"session_id": "s1", "items": ["a"]}'])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1
    assert "Gru4Rec-Dev-Storage" in err and "'DataBucketName'" in err


def test_an_invalid_stage_name_is_refused(aws, capsys):
    code, _, err = run(capsys, "--stage", "Prod_1", "status")
    assert code == 1 and "'Prod_1' is not a valid stage name" in err


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in ("train", "score", "recommend", "status"))


# --- train -----------------------------------------------------------------------------------


def test_train_starts_the_state_machine_with_string_hyperparameters(stage, capsys):
    code, out, _ = run(capsys, "train", "-p", "epochs=3", "-p", "loss=bpr-max", "--no-test-channel")
    assert code == 0
    sfn = stage.session.client("stepfunctions")
    [execution] = sfn.list_executions(stateMachineArn=stage.training_arn)["executions"]
    assert execution["executionArn"] in out
    started = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == {
        "hyperparameters": {"epochs": "3", "loss": "bpr-max"},
        "test_channel": False,
    }


@pytest.mark.parametrize(
    "pair, problem",
    [("epochs", "not of the form name=value"), ("=3", "not of the form"), ("epochs=", "form")],
)
def test_train_refuses_a_bad_hyperparameter_and_starts_nothing(stage, capsys, pair, problem):
    code, _, err = run(capsys, "train", "-p", pair)
    assert code == 1 and problem in err and repr(pair) in err
    sfn = stage.session.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stage.training_arn)["executions"] == []


def test_train_refuses_a_repeated_hyperparameter():
    with pytest.raises(OpsError, match="'epochs' is given twice"):
        training.parse_hyperparameters(["epochs=1", "epochs=2"])


def test_train_upload_data_files_a_day_and_its_marker_and_replaces_that_day_only(stage, capsys, tmp_path):
    s3 = stage.session.client("s3")
    s3.put_object(Bucket=BUCKET, Key="training/events/dt=2026-11-29/old.csv", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="training/events/dt=2026-11-28/kept.csv", Body=b"kept")
    s3.put_object(Bucket=BUCKET, Key="training/test/old.csv", Body=b"old")
    (tmp_path / "train.tsv.gz").write_bytes(b"train-bytes")
    (tmp_path / "test.tsv.gz").write_bytes(b"test-bytes")
    code, out, _ = run(capsys, "train", "--upload-data", str(tmp_path), "--day", "2026-11-29")
    assert code == 0
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["training/events/dt=2026-11-28/kept.csv", "training/events/dt=2026-11-29/_SUCCESS",
                    "training/events/dt=2026-11-29/train.tsv.gz", "training/test/test.tsv.gz"]
    assert s3.get_object(Bucket=BUCKET, Key=keys[2])["Body"].read() == b"train-bytes"
    assert f"uploaded s3://{BUCKET}/training/events/dt=2026-11-29/train.tsv.gz" in out
    sfn = stage.session.client("stepfunctions")
    assert len(sfn.list_executions(stateMachineArn=stage.training_arn)["executions"]) == 1


def test_the_days_marker_is_written_after_its_files(stage, tmp_path):
    s3 = stage.session.client("s3")
    writes = []
    for name in ("upload_file", "put_object"):
        setattr(s3, name, _recording(getattr(s3, name), writes))
    (tmp_path / "train.csv").write_bytes(b"a")
    (tmp_path / "test.csv").write_bytes(b"b")
    uris = training.upload_training_data(s3, BUCKET, tmp_path, training.upload_day("2026-11-29"))
    # upload_file may itself call put_object: each key once, in the order first written
    keys = list(dict.fromkeys(writes))
    assert keys == ["training/events/dt=2026-11-29/train.csv", "training/test/test.csv",
                    "training/events/dt=2026-11-29/_SUCCESS"]
    assert writes[-1] == keys[-1]
    assert uris == [f"s3://{BUCKET}/{key}" for key in keys]


def _recording(call, keys: list):
    """``call`` (an S3 upload_file or put_object), appending the key it writes to ``keys`` first."""
    def record(*args, **kwargs):
        keys.append(kwargs["Key"] if "Key" in kwargs else args[2])
        return call(*args, **kwargs)
    return record


@pytest.mark.parametrize("now, day", [
    (datetime(2026, 12, 2, 0, 5, tzinfo=timezone.utc), "2026-12-01"),
    (datetime(2026, 12, 1, 23, 59, tzinfo=timezone.utc), "2026-11-30"),
    # 01:00 in UTC+2 is still the evening before in UTC
    (datetime.fromisoformat("2026-12-02T01:00:00+02:00"), "2026-11-30"),
])
def test_uploaded_data_is_filed_under_the_last_day_of_a_window_started_now(now, day):
    assert training.upload_day(now=now).isoformat() == day
    assert training.training_window(28, now)["window_end"] == day


def test_the_window_is_the_whole_utc_days_before_the_start():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert training.training_window(3, now) == {"window_start": "2026-02-26", "window_end": "2026-02-28"}
    assert training.training_window(1, now) == {"window_start": "2026-02-28", "window_end": "2026-02-28"}


def test_upload_day_takes_a_given_day_and_names_a_bad_one():
    assert training.upload_day("2026-11-29").isoformat() == "2026-11-29"
    with pytest.raises(OpsError, match="--day: cannot use '29.11.2026'; allowed: a day as YYYY-MM-DD"):
        training.upload_day("29.11.2026")


@pytest.mark.parametrize("extra, problem", [
    (["--day", "2026-02-30"], "--day: cannot use '2026-02-30'"),
    (["--day", "yesterday"], "--day: cannot use 'yesterday'"),
])
def test_a_bad_upload_day_is_refused_before_any_aws_call(no_aws, capsys, tmp_path, extra, problem):
    (tmp_path / "train.tsv.gz").write_bytes(b"x")
    code, _, err = run(capsys, "train", "--upload-data", str(tmp_path), *extra)
    assert code == 1 and problem in err


def test_train_upload_data_needs_a_train_file(stage, capsys, tmp_path):
    (tmp_path / "test.tsv.gz").write_bytes(b"x")
    code, _, err = run(capsys, "train", "--upload-data", str(tmp_path))
    assert code == 1 and "no train.* file" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


def test_one_off_training_job_copies_the_state_machines_job(stage, capsys):
    code, out, _ = run(
        capsys, "train", "--one-off", "-p", "epochs=2", "--no-test-channel", "--wait"
    )
    assert code == 0, out
    sagemaker = stage.session.client("sagemaker")
    [summary] = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    assert summary["TrainingJobName"].startswith("gru4rec-dev-oneoff-")
    assert summary["TrainingJobName"] in out
    assert f"{summary['TrainingJobName']}: Completed" in out  # moto's jobs end at once
    assert "model: s3://" in out
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert job["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert job["RoleArn"] == stage.role_arn
    assert job["ResourceConfig"] == {
        "InstanceType": "ml.c5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 20,
        "VolumeKmsKeyId": KEY_ARN,
    }
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 14400}
    assert job["EnableManagedSpotTraining"] is True
    assert job["CheckpointConfig"]["S3Uri"] == f"s3://{BUCKET}/checkpoints/{summary['TrainingJobName']}/"
    assert job["HyperParameters"] == {"preset": "rsc15", "epochs": "2", **training.training_window(28)}
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{BUCKET}/models/"
    assert job["OutputDataConfig"]["KmsKeyId"] == KEY_ARN
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train"]
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{BUCKET}/training/events/"
    )
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "FastFile"
    tags = sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "stage", "Value": "dev"} in tags


@pytest.mark.parametrize("spot", [True, False])
def test_the_one_off_request_is_one_sagemaker_accepts(spot):
    """The CreateTrainingJob request sent through boto3, against botocore's service model (patterns,
    lengths, enums), for the longest stage name at the last millisecond of a year."""
    settings = training.one_off_settings(training_definition("arn:aws:iam::123456789012:role/r", spot=spot))
    stage = "s" * 16
    name = training.one_off_job_name(stage, datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc))
    assert name == f"gru4rec-{stage}-oneoff-20261231-235959-999"
    request = training.one_off_request(name, stage, BUCKET, settings, {"epochs": "2"}, 28)
    assert problems("sagemaker", "CreateTrainingJob", request) == []
    assert ("CheckpointConfig" in request) is spot
    # the negative control: the same check refuses a name one character too long
    too_long = training.one_off_request(name + "x" * (64 - len(name)), stage, BUCKET, settings, {}, 28)
    assert "CreateTrainingJob.TrainingJobName: length 64 is above the maximum 63" in problems(
        "sagemaker", "CreateTrainingJob", too_long)


def test_one_off_settings_follow_the_command_line_first():
    definition = training_definition("arn:aws:iam::1:role/r", spot=False)
    settings = training.one_off_settings(definition, instance_type="ml.m5.xlarge")
    assert settings.instance_type == "ml.m5.xlarge"
    assert settings.image_uri == IMAGE and settings.metric_definitions == METRICS
    assert settings.default_hyperparameters == {"preset": "rsc15", "epochs": "10"}
    assert not settings.spot and settings.max_wait_seconds is None
    del definition["States"]["Train"]["Arguments"]["RoleArn"]
    with pytest.raises(OpsError, match="could not read the role .*--role"):
        training.one_off_settings(definition)
    del definition["States"]["Train"]
    with pytest.raises(OpsError, match="no CreateTrainingJob task"):
        training.one_off_settings(definition)


@pytest.mark.parametrize("state_machine_type", ["ml.c5.2xlarge", "ml.g5.xlarge"])
def test_one_off_jobs_on_the_other_kind_of_instance_need_the_other_image(state_machine_type):
    definition = training_definition("arn:aws:iam::1:role/r", spot=False)
    definition["States"]["Train"]["Arguments"]["ResourceConfig"]["InstanceType"] = state_machine_type
    other = "ml.m5.xlarge" if state_machine_type == "ml.g5.xlarge" else "ml.p4d.24xlarge"
    with pytest.raises(OpsError, match=f"--instance-type {re.escape(other)} needs the .* image.*pass --image"):
        training.one_off_settings(definition, instance_type=other)
    named = training.one_off_settings(definition, instance_type=other, image_uri="123.dkr.ecr/x:other")
    assert (named.instance_type, named.image_uri) == (other, "123.dkr.ecr/x:other")
    same_kind = "ml.g6.xlarge" if state_machine_type == "ml.g5.xlarge" else "ml.m5.xlarge"
    assert training.one_off_settings(definition, instance_type=same_kind).image_uri == IMAGE


def test_wait_reports_until_the_execution_ends(stage):
    sfn = stage.session.client("stepfunctions")
    arn = training.start_training(sfn, stage.training_arn, {}, name="train-1")
    reports = []

    def stop_on_first_sleep(_seconds):
        sfn.stop_execution(executionArn=arn)

    described = training.wait_for_execution(
        sfn, arn, poll_seconds=0, sleep=stop_on_first_sleep, report=reports.append
    )
    assert described["status"] == "ABORTED"
    assert reports == ["train-1: RUNNING", "train-1: ABORTED"]


# --- score -----------------------------------------------------------------------------------


def write_lines(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_score_uploads_to_incoming_and_names_the_output(stage, capsys, tmp_path):
    sessions = write_lines(
        tmp_path / "week48.jsonl",
        [json.dumps({"session_id": "s1", "items": ["a", "b"]}),
         json.dumps({"session_id": "s2", "items": ["c"]})],
    )
    code, out, _ = run(capsys, "score", str(sessions))
    assert code == 0
    s3 = stage.session.client("s3")
    body = s3.get_object(Bucket=BUCKET, Key="sessions/incoming/week48.jsonl")
    assert body["Body"].read() == sessions.read_bytes()
    assert f"s3://{BUCKET}/sessions/scored/week48.jsonl.out" in out
    assert "2 sessions" in out


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"session_id": "s2", "items": ["a"]', "line 2: line 2 is not valid JSON"),
        ('{"session_id": "s2"}', "line 2: 'items' is missing"),
        ('{"session_id": "s2", "items": [1.5]}', "line 2: 'items[0]' must be an item id"),
        ('{"session_id": true, "items": ["a"]}', "line 2: 'session_id' must be a string or an integer"),
        ('{"session_id": "s2", "items": ["a"], "k": 0}', "line 2: 'k' is 0: it must be from 1 to 1000"),
        ('{"session_id": "s2", "itmes": ["a"]}', "line 2: line 2 has unknown field(s) 'itmes'"),
        ('["a", "b"]', "line 2: line 2 must be a JSON object"),
        ("", "line 2: empty line (the container skips blank lines"),
    ],
)
def test_score_names_the_bad_line_and_uploads_nothing(stage, capsys, tmp_path, line, problem):
    sessions = write_lines(tmp_path / "s.jsonl", ['{"session_id": "s1", "items": ["a"]}', line])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1 and problem in err and "s.jsonl" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


def test_score_refuses_other_names_unless_renamed(stage, capsys, tmp_path):
    sessions = write_lines(tmp_path / "sessions.json", ['{"session_id": "s1", "items": ["a"]}'])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1 and "only `<name>.jsonl` files" in err and "--name" in err
    code, out, _ = run(capsys, "score", str(sessions), "--name", "renamed.jsonl")
    assert code == 0 and "sessions/scored/renamed.jsonl.out" in out
    keys = [o["Key"] for o in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == ["sessions/incoming/renamed.jsonl"]


def test_score_refuses_an_empty_file(stage, capsys, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    code, _, err = run(capsys, "score", str(tmp_path / "empty.jsonl"))
    assert code == 1 and "holds no sessions" in err


def test_score_with_a_filter_list_uploads_it_beside_the_sessions(stage, capsys, tmp_path):
    sessions = write_lines(tmp_path / "week48.jsonl", [json.dumps({"session_id": "s1", "items": ["a"]})])
    filters = tmp_path / "in_stock.json"
    filters.write_text(json.dumps({"include_items": ["a", "b", 7]}))
    code, _, err = run(capsys, "score", str(sessions), "--filters", str(filters))
    assert code == 0, err
    s3 = stage.session.client("s3")
    body = s3.get_object(Bucket=BUCKET, Key="sessions/incoming/week48.filters.json")["Body"]
    assert json.loads(body.read()) == {"include_items": ["a", "b", 7]}
    assert s3.get_object(Bucket=BUCKET, Key="sessions/incoming/week48.jsonl")["Body"].read() == sessions.read_bytes()


def test_the_filter_list_is_uploaded_before_the_sessions_file_that_starts_the_run(stage, tmp_path):
    sessions = write_lines(tmp_path / "run.jsonl", [json.dumps({"items": ["a"]})])
    (tmp_path / "f.json").write_text(json.dumps({"exclude_items": ["b"]}))
    s3 = stage.session.client("s3")
    keys = []
    upload = s3.upload_file
    s3.upload_file = lambda path, bucket, key, **kwargs: (keys.append(key), upload(path, bucket, key, **kwargs))
    scoring.submit_sessions(s3, BUCKET, sessions, filters=tmp_path / "f.json")
    assert keys == ["sessions/incoming/run.filters.json", "sessions/incoming/run.jsonl"]


@pytest.mark.parametrize("content, problem", [
    ('{"include_items": "a"}', "'include_items' in"),
    ('{"include": ["a"]}', "must be a JSON object with 'exclude_items' and/or 'include_items'"),
    ('{"exclude_items": [null]}', "'exclude_items[0]' must be an item id"),
    ("not json", "is not a JSON file"),
])
def test_score_refuses_a_bad_filter_list_before_uploading_anything(stage, capsys, tmp_path, content, problem):
    sessions = write_lines(tmp_path / "s.jsonl", ['{"session_id": "s1", "items": ["a"]}'])
    (tmp_path / "f.json").write_text(content)
    code, _, err = run(capsys, "score", str(sessions), "--filters", str(tmp_path / "f.json"))
    assert code == 1 and problem in err and "f.json" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


def test_wait_for_output_polls_until_the_scored_file_exists(stage):
    s3 = stage.session.client("s3")
    submission = scoring.Submission(BUCKET, "sessions/incoming/x.jsonl",
                                    "sessions/scored/x.jsonl.out", 1)
    polls = []

    def output_appears(seconds):
        polls.append(seconds)
        s3.put_object(Bucket=BUCKET, Key=submission.output_key, Body=b"{}\n")

    found = scoring.wait_for_output(s3, submission, timeout_seconds=60, poll_seconds=5,
                                    sleep=output_appears)
    assert polls == [5] and found["ContentLength"] == 3
    with pytest.raises(OpsError, match="did not appear within 10 s"):
        scoring.wait_for_output(
            s3, scoring.Submission(BUCKET, "a", "never.out", 1), 10, 5, sleep=lambda s: None
        )


# --- recommend -------------------------------------------------------------------------------


class FakeApi:
    """A local HTTP server standing in for API Gateway: records requests, answers canned."""

    def __init__(self, status: int, answer: dict):
        self.requests: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                api.requests.append({"path": self.path, "headers": headers, "body": body})
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/prod/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def api_stage(stage, url: str) -> None:
    """Point the stage's ApiUrl output at the local server."""
    cloudformation = stage.session.client("cloudformation")
    cloudformation.delete_stack(StackName="Gru4Rec-Dev-Api")
    outputs = {"ApiUrl": url, "ApiKeyId": stage.api_key["id"]}
    outputs_stack(cloudformation, "Gru4Rec-Dev-Api", outputs)


def expected_signature(request: dict, url: str, credentials) -> str:
    """The Authorization header botocore computes for the request as received."""
    received = request["headers"]
    stamp = datetime.strptime(received["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    signed_names = received["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {name: received[name] for name in signed_names if name not in ("host", "x-amz-date")}
    resigned = AWSRequest(method="POST", url=url, data=request["body"], headers=headers)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: stamp
    try:
        SigV4Auth(credentials, "execute-api", REGION).add_auth(resigned)
    finally:
        botocore.auth.get_current_datetime = original
    return resigned.headers["Authorization"]


def test_recommend_sends_a_signed_request_with_the_api_key(stage, capsys):
    answer = {
        "recommendations": [{"item_id": "i9", "score": 7.31}, {"item_id": "i2", "score": 6.5}],
        "unknown_items": 1,
    }
    with FakeApi(200, answer) as api:
        api_stage(stage, api.url)
        code, out, _ = run(capsys, "recommend", "a", "b", "-k", "2", "--exclude-seen")
    assert code == 0
    [request] = api.requests
    assert request["path"] == "/prod/recommendations"
    assert json.loads(request["body"]) == {"items": ["a", "b"], "k": 2, "exclude_seen": True}
    assert request["headers"]["x-api-key"] == stage.api_key["value"]
    authorization = request["headers"]["authorization"]
    credentials = stage.session.get_credentials().get_frozen_credentials()
    scope = f"{request['headers']['x-amz-date'][:8]}/{REGION}/execute-api/aws4_request"
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}")
    assert "x-api-key" in authorization.split("SignedHeaders=")[1].split(",")[0]
    assert authorization == expected_signature(request, api.url + "recommendations", credentials)
    table = out.splitlines()
    assert table[0].split() == ["rank", "item_id", "score"]
    assert table[1].split() == ["1", "i9", "7.3100"]
    assert table[2].split() == ["2", "i2", "6.5000"]
    assert "unknown items in the session: 1" in out


def test_recommend_reports_the_apis_error(stage, capsys):
    with FakeApi(400, {"error": "items must be a list of strings"}) as api:
        api_stage(stage, api.url)
        code, _, err = run(capsys, "recommend", "a")
    assert code == 1
    assert "the API answered 400: items must be a list of strings" in err


def test_recommend_checks_k_before_calling(stage, capsys):
    with FakeApi(200, {}) as api:
        api_stage(stage, api.url)
        code, _, err = run(capsys, "recommend", "a", "-k", "0")
    assert code == 1 and "the endpoint would refuse this request: 'k' is 0: it must be from 1 to 1000" in err
    assert api.requests == []


# --- status ----------------------------------------------------------------------------------


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
    stage.session.client("ssm").delete_parameter(Name="/gru4rec/dev/current-model-name")
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "Batch executions: stack not deployed" in out
    assert "Training executions: no executions yet" in out
    assert "current model: (the first model, the Endpoint stack's own)" in out


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


# --- cleanup ---------------------------------------------------------------------------------


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
    stage.session.client("ssm").delete_parameter(Name="/gru4rec/dev/current-model-name")
    code, out, _ = run(capsys, "cleanup", "--yes")
    assert code == 0 and out.splitlines()[-1] == "deleted"
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == ["gru4rec-dev-model-1"]
    code, _, err = run(capsys, "status")
    assert code == 1 and "Gru4Rec-Dev-Storage" in err


def test_one_off_options_need_one_off(stage, capsys, tmp_path):
    (tmp_path / "train.tsv.gz").write_bytes(b"x")
    code, _, err = run(capsys, "train", "--image", IMAGE, "--upload-data", str(tmp_path))
    assert code == 1 and "for --one-off jobs only" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET)


# --- checked before any AWS call ---------------------------------------------------------------


@pytest.fixture
def no_aws(monkeypatch):
    """Fail the test if a command reaches for AWS at all."""
    def refuse(args):
        raise AssertionError("an AWS session was made before the local checks")

    monkeypatch.setattr("infra.ops.__main__.make_session", refuse)


@pytest.mark.parametrize("argv, problem", [
    (["recommend", "a", "-k", "0"], "the endpoint would refuse this request: 'k' is 0: it must be from 1 to 1000"),
    (["recommend", "a", "-k", "1001"], "'k' is 1001: it must be from 1 to 1000"),
    (["train", "-p", "learnig_rate=0.1"], "bad hyperparameter: unknown parameter 'learnig_rate' (did you mean 'learning_rate'?)"),
    (["train", "-p", "epochs=two"], "bad hyperparameter: parameter 'epochs': cannot use 'two'; allowed: an integer >= 1"),
    (["train", "-p", "time_format=iso"], "bad hyperparameter: parameter 'time_format': cannot use 'iso'"),
    (["train", "--upload-data", "no-such-folder"], "no-such-folder: no such folder"),
    (["train", "--role", "arn:aws:iam::1:role/x"], "for --one-off jobs only"),
    (["train", "--day", "2026-11-29"], "--day is for --upload-data only"),
    (["score", "nope.jsonl"], "nope.jsonl: no such file"),
    (["status", "--stage", "Prod_1"], "stage 'Prod_1' is not a valid stage name"),
])
def test_local_problems_are_refused_before_any_aws_call(no_aws, capsys, argv, problem):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and problem in err and err.count("\n") == 1


def test_a_bad_sessions_file_is_refused_before_any_aws_call(no_aws, capsys, tmp_path):
    sessions = write_lines(tmp_path / "batch.jsonl", ['{"session_id": "s1", "items": ["a"]}', '{"items": "a"}'])
    code, _, err = run(capsys, "score", str(sessions))
    assert code == 1 and f"{sessions} line 2: 'items' must be a list of item ids, not a string" in err


def test_shop_reading_options_are_accepted_as_hyperparameters(stage, capsys):
    code, _, _ = run(capsys, "train", "-p", "session_column=user_session", "-p", "time_format=%d/%m/%Y %H:%M",
                     "-p", "max_bad_rows=1%", "-p", "separator=;")
    assert code == 0
    sfn = stage.session.client("stepfunctions")
    [execution] = sfn.list_executions(stateMachineArn=stage.training_arn)["executions"]
    sent = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert sent["hyperparameters"] == {"session_column": "user_session", "time_format": "%d/%m/%Y %H:%M",
                                       "max_bad_rows": "1%", "separator": ";"}


@pytest.mark.parametrize("argv", [["--stage", "qa", "status"], ["status", "--stage", "qa"]])
def test_stage_goes_before_or_after_the_command(stage, capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert "Gru4Rec-Qa-Storage" in err and "'qa'" in err


def test_the_stage_after_the_command_wins_and_region_is_kept(monkeypatch):
    from infra.ops.__main__ import build_parser

    args = build_parser().parse_args(["--stage", "dev", "--region", "eu-west-1", "status", "--stage", "prod"])
    assert (args.stage, args.region, args.profile) == ("prod", "eu-west-1", None)
    args = build_parser().parse_args(["score", "f.jsonl"])
    assert (args.stage, args.region) == ("dev", None)


# --- the live model: history and rollback ----------------------------------------------------------

FIRST_DATA = f"s3://{BUCKET}/models/a/model.tar.gz"  # what the stage fixture makes live first
JOB_A, JOB_B = "gru4rec-dev-train-20261129-021710-0a1b2c3d", "gru4rec-dev-train-20261130-021710-4e5f6a7b"


def job_data(job: str) -> str:
    return f"s3://{BUCKET}/models/{job}/output/model.tar.gz"


def finished_training_job(session, role_arn: str, name: str, recall: float, mrr: float) -> None:
    """A training job with final metrics (moto reports none of its own)."""
    from moto.sagemaker.models import sagemaker_backends

    session.client("sagemaker").create_training_job(
        TrainingJobName=name, RoleArn=role_arn, AlgorithmSpecification={"TrainingImage": IMAGE, "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models/"}, StoppingCondition={"MaxRuntimeInSeconds": 60},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1})
    sagemaker_backends[ACCOUNT][REGION].training_jobs[name].final_metric_data_list = [
        {"MetricName": "recall@20", "Value": recall}, {"MetricName": "mrr@20", "Value": mrr}]


SERVERLESS_VARIANT = {"ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 5}}
SERVERLESS_CONTAINER = {"Environment": {"SAGEMAKER_SERVERLESS": "true"}}


def pipeline_roll(session, role_arn: str, job: str, serverless: bool = False) -> None:
    """What a training execution leaves behind: its model and endpoint config, both named after the job and
    tagged, then the pointers; ``serverless``: as the pipeline writes them in endpoint_mode=serverless."""
    tags = [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": "dev"}]
    sagemaker = session.client("sagemaker")
    sagemaker.create_model(ModelName=job, ExecutionRoleArn=role_arn, Tags=tags,
                           PrimaryContainer={"Image": IMAGE, "ModelDataUrl": job_data(job),
                                             **(SERVERLESS_CONTAINER if serverless else {})})
    variant = SERVERLESS_VARIANT if serverless else {"InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sagemaker.create_endpoint_config(EndpointConfigName=job, Tags=tags, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": job, **variant}])
    ssm = session.client("ssm")
    ssm.put_parameter(Name="/gru4rec/dev/current-model-data", Value=job_data(job), Type="String", Overwrite=True)
    ssm.put_parameter(Name="/gru4rec/dev/current-model-name", Value=job, Type="String", Overwrite=True)


@pytest.fixture
def rolled_twice(stage):
    """First model -> job A -> job B, each with its metrics."""
    finished_training_job(stage.session, stage.role_arn, JOB_A, 0.6123, 0.3012)
    finished_training_job(stage.session, stage.role_arn, JOB_B, 0.6345, 0.3101)
    pipeline_roll(stage.session, stage.role_arn, JOB_A)
    pipeline_roll(stage.session, stage.role_arn, JOB_B)
    return stage


@pytest.fixture
def update_endpoint(monkeypatch):
    """UpdateEndpoint, which moto 5.2.5 lacks: records the call and moves the endpoint to the new configuration,
    or (``rolls_back``) leaves it on the old one with a reason, as SageMaker does when an alarm fires."""
    from moto.sagemaker.models import sagemaker_backends
    from moto.sagemaker.responses import SageMakerResponse

    control = SimpleNamespace(calls=[], rolls_back=False)

    def update(self):
        request = json.loads(self.body)
        control.calls.append(request)
        endpoint = sagemaker_backends[ACCOUNT][REGION].endpoints[request["EndpointName"]]
        if control.rolls_back:
            endpoint.failure_reason = "alarm gru4rec-dev-5xx fired during the canary"
        else:
            endpoint.endpoint_config_name = request["EndpointConfigName"]
        return json.dumps({"EndpointArn": endpoint.arn})

    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update, raising=False)
    return control


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
    assert (variant["ModelName"], variant["InstanceType"], variant["VariantName"]) == (name, "ml.m5.large", "AllTraffic")
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


def test_cleanup_keeps_the_models_live_before_the_current_one(stage, capsys):
    """model_keep_count (1 here) earlier live models stay, with their endpoint configs; older ones go."""
    cloudformation = stage.session.client("cloudformation")
    cloudformation.delete_stack(StackName="Gru4Rec-Dev-Training")
    outputs_stack(cloudformation, "Gru4Rec-Dev-Training",
                  {"TrainingStateMachineArn": stage.training_arn, "ModelKeepCount": "1"})
    for job in ("older", "previous", "live"):
        pipeline_roll(stage.session, stage.role_arn, f"gru4rec-dev-train-{job}")
    code, out, _ = run(capsys, "cleanup")
    assert code == 0
    listed = set(out.splitlines()[:-1])
    assert listed == {"endpoint config gru4rec-dev-train-older", "model gru4rec-dev-train-older"}


# --- score-events ----------------------------------------------------------------------------


def _event_files(folder):
    from tests.session_events import write_run

    return write_run(folder)


def test_score_events_uploads_a_run_then_its_marker(stage, capsys, tmp_path):
    folder = _event_files(tmp_path / "clicks")
    code, out, err = run(capsys, "score-events", str(folder), "--run", "2026-11-29")
    assert code == 0, err
    s3 = stage.session.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="events/incoming/")["Contents"])
    assert keys == ["events/incoming/2026-11-29/_SUCCESS", "events/incoming/2026-11-29/part-0001.tsv",
                    "events/incoming/2026-11-29/part-0002.tsv.gz"]
    body = s3.get_object(Bucket=BUCKET, Key="events/incoming/2026-11-29/part-0002.tsv.gz")["Body"].read()
    assert body == (folder / "part-0002.tsv.gz").read_bytes()
    assert f"s3://{BUCKET}/sessions/scored/2026-11-29/" in out and "summary.json" in out


def test_score_events_puts_the_marker_last_and_copies_s3_sources(stage, tmp_path):
    from infra.ops.event_runs import submit_events

    s3 = stage.session.client("s3")
    for path in sorted(_event_files(tmp_path / "clicks").iterdir()):
        s3.upload_file(str(path), BUCKET, f"exports/day1/{path.name}")
    s3.put_object(Bucket=BUCKET, Key="exports/day1/_SUCCESS", Body=b"")  # the exporter's own marker: not copied
    calls = []

    class Recording:
        def __getattr__(self, name):
            method = getattr(s3, name)

            def call(*args, **kwargs):
                calls.append(name)
                return method(*args, **kwargs)
            return call

    done = submit_events(Recording(), BUCKET, f"s3://{BUCKET}/exports/day1/", "r1")
    assert done.files == ("part-0001.tsv", "part-0002.tsv.gz")
    writes = [name for name in calls if name in ("copy", "put_object", "upload_file")]
    assert writes == ["copy", "copy", "put_object"]
    assert s3.head_object(Bucket=BUCKET, Key="events/incoming/r1/_SUCCESS")["ContentLength"] == 0


def test_score_events_refuses_a_run_that_exists_or_a_bad_name(stage, capsys, tmp_path):
    folder = _event_files(tmp_path / "clicks")
    assert run(capsys, "score-events", str(folder), "--run", "r1")[0] == 0
    code, _, err = run(capsys, "score-events", str(folder), "--run", "r1")
    assert code == 1 and "already holds objects" in err
    code, _, err = run(capsys, "score-events", str(folder), "--run", "a'b")
    assert code == 1 and "run \"a'b\"" in err


def test_score_events_refuses_files_the_table_cannot_read_before_any_call(capsys, tmp_path):
    (tmp_path / "e.json").write_bytes(b"{}")
    code, _, err = run(capsys, "score-events", str(tmp_path / "e.json"))
    assert code == 1 and "e.json" in err and ".tsv" in err and ".parquet" in err


def _events_table(stage, columns, separator="\t"):
    """The stage's Glue table over events/incoming/, as the Batch stack declares it."""
    glue = stage.session.client("glue")
    glue.create_database(DatabaseInput={"Name": "gru4rec_dev_events"})
    glue.create_table(DatabaseName="gru4rec_dev_events", TableInput={
        "Name": "events", "StorageDescriptor": {
            "Columns": [{"Name": name, "Type": "string"} for name in columns],
            "SerdeInfo": {"Parameters": {"field.delim": separator}}}})


def test_score_events_takes_the_tables_columns_by_header_name_from_csv_and_parquet(stage, capsys, tmp_path):
    import pandas as pd

    _events_table(stage, ["user_session", "product_id", "event_time", "event_type"])
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "2019-10-01.csv").write_text("event_time,event_type,product_id,price,user_session\n"
                                           "2019-10-01 00:00:00 UTC,view,p1,1.5,s1\n"
                                           "2019-10-01 00:00:05 UTC,cart,p2,,s1\n", encoding="utf-8")
    pd.DataFrame({"USER_SESSION": ["s2"], "Product_Id": [7], "event_time": [1569888010000],
                  "event_type": ["view"]}).to_parquet(folder / "2019-10-02.parquet")
    code, out, err = run(capsys, "score-events", str(folder), "--run", "r1")
    assert code == 0, err
    s3 = stage.session.client("s3")
    read = lambda key: gzip.decompress(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()).decode()
    assert read("events/incoming/r1/2019-10-01.txt.gz") == (
        "user_session\tproduct_id\tevent_time\tevent_type\n"
        "s1\tp1\t2019-10-01 00:00:00 UTC\tview\n"
        "s1\tp2\t2019-10-01 00:00:05 UTC\tcart\n")
    assert read("events/incoming/r1/2019-10-02.txt.gz").splitlines()[1] == "s2\t7\t1569888010000\tview"
    assert "run r1: 2 event files" in out


def test_score_events_refuses_a_missing_column_or_a_value_the_table_cannot_split(stage, capsys, tmp_path):
    _events_table(stage, ["sessionid", "itemid", "time"], separator=",")
    (tmp_path / "a.tsv").write_text("SessionId\tItemId\tTime\ns\ta,b\t1\n", encoding="utf-8")
    code, _, err = run(capsys, "score-events", str(tmp_path / "a.tsv"), "--run", "r1")
    assert code == 1 and "a.tsv line 2, column 'itemid'" in err
    (tmp_path / "b.tsv").write_text("SessionId\tItem\tTime\ns\ta\t1\n", encoding="utf-8")
    code, _, err = run(capsys, "score-events", str(tmp_path / "b.tsv"), "--run", "r2")
    assert code == 1 and "no column 'itemid'" in err and "'Item'" in err
    assert "Contents" not in stage.session.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="events/")


def test_train_upload_data_files_a_folder_of_days_each_into_its_day(stage, capsys, tmp_path):
    s3 = stage.session.client("s3")
    s3.put_object(Bucket=BUCKET, Key="training/events/dt=2026-11-29/old.csv", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="training/events/dt=2026-11-27/kept.csv", Body=b"kept")
    (tmp_path / "dt=2026-11-28").mkdir()
    (tmp_path / "dt=2026-11-28" / "part-0.csv.gz").write_bytes(b"day-28")
    (tmp_path / "dt=2026-11-28" / "_SUCCESS").write_bytes(b"")
    (tmp_path / "2026-11-29.csv").write_bytes(b"day-29")
    code, out, err = run(capsys, "train", "--upload-data", str(tmp_path))
    assert code == 0, err
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["training/events/dt=2026-11-27/kept.csv",
                    "training/events/dt=2026-11-28/_SUCCESS", "training/events/dt=2026-11-28/part-0.csv.gz",
                    "training/events/dt=2026-11-29/2026-11-29.csv", "training/events/dt=2026-11-29/_SUCCESS"]
    assert s3.get_object(Bucket=BUCKET, Key="training/events/dt=2026-11-28/part-0.csv.gz")["Body"].read() == b"day-28"
    assert out.index("dt=2026-11-29/2026-11-29.csv") < out.index("dt=2026-11-28/_SUCCESS")  # markers last


@pytest.mark.parametrize("layout, problem", [
    ({"train.csv": b"a", "2026-11-29.csv": b"b"}, "both a train.* file and days"),
    ({"dt=2026-02-30/part-0.csv": b"a"}, "cannot use '2026-02-30'"),
    ({"notes.txt.bak": b"a"}, "no train.* file (e.g. train.tsv.gz), no day folder (dt=YYYY-MM-DD/)"),
])
def test_a_folder_of_unclear_days_is_refused_before_any_aws_call(no_aws, capsys, tmp_path, layout, problem):
    for name, body in layout.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(body)
    code, _, err = run(capsys, "train", "--upload-data", str(tmp_path))
    assert code == 1 and problem in err


def test_day_is_for_a_train_file_only(no_aws, capsys, tmp_path):
    (tmp_path / "2026-11-29.csv").write_bytes(b"a")
    code, _, err = run(capsys, "train", "--upload-data", str(tmp_path), "--day", "2026-11-29")
    assert code == 1 and "--day is for a train.* file" in err
