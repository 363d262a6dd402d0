"""`infra.ops.training` against a stage deployed in moto: starting the pipeline, uploading training data, one-off
training jobs (their CreateTrainingJob request goes through boto3 into moto's SageMaker)."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from infra.ops import training
from infra.ops.errors import OpsError
from tests.support.ops_stage import BUCKET, IMAGE, KEY_ARN, METRICS, run, training_definition
from tests.support.service_model import problems


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
    (datetime(2026, 12, 2, 0, 5, tzinfo=UTC), "2026-12-01"),
    (datetime(2026, 12, 1, 23, 59, tzinfo=UTC), "2026-11-30"),
    # 01:00 in UTC+2 is still the evening before in UTC
    (datetime.fromisoformat("2026-12-02T01:00:00+02:00"), "2026-11-30"),
])
def test_uploaded_data_is_filed_under_the_last_day_of_a_window_started_now(now, day):
    assert training.upload_day(now=now).isoformat() == day
    assert training.training_window(28, now)["window_end"] == day


def test_the_window_is_the_whole_utc_days_before_the_start():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
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
    name = training.one_off_job_name(stage, datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
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


def test_shop_reading_options_are_accepted_as_hyperparameters(stage, capsys):
    code, _, _ = run(capsys, "train", "-p", "session_column=user_session", "-p", "time_format=%d/%m/%Y %H:%M",
                     "-p", "max_bad_rows=1%", "-p", "separator=;")
    assert code == 0
    sfn = stage.session.client("stepfunctions")
    [execution] = sfn.list_executions(stateMachineArn=stage.training_arn)["executions"]
    sent = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert sent["hyperparameters"] == {"session_column": "user_session", "time_format": "%d/%m/%Y %H:%M",
                                       "max_bad_rows": "1%", "separator": ";"}


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
