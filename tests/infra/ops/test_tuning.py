"""`infra.ops tune`: the CreateHyperParameterTuningJob request (checked against botocore's service model), the job
started in moto and shown by `status`, and `tune --apply` writing a finished job's best settings for later runs."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from moto.sagemaker.models import sagemaker_backends

from infra.ops import training, tuning
from infra.tuning import OBJECTIVE_METRIC, TuningError, parameter_ranges
from model_code.commands.tuning_space import load_space
from tests.support.ops_stage import ACCOUNT, BUCKET, IMAGE, KEY_ARN, REGION, run, training_definition
from tests.support.service_model import problems

VALIDATION_METRICS = [{"Name": "recall@20", "Regex": "recall@20=([0-9.]+);"},
                      {"Name": OBJECTIVE_METRIC, "Regex": "validation:recall@20=([0-9.]+);"}]
NOW = datetime(2026, 12, 7, 13, 45, 12, tzinfo=UTC)


def validating_definition(role_arn: str) -> dict:
    """The test stage's state machine with a validation split and its metric, as a deployed stage has by default."""
    definition = training_definition(role_arn)
    definition["States"]["Name the job"]["Assign"]["defaultHyperparameters"]["valid_days"] = "1"
    definition["States"]["Train"]["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"] = VALIDATION_METRICS
    return definition


@pytest.fixture
def tuning_stage(stage):
    stage.session.client("stepfunctions").update_state_machine(
        stateMachineArn=stage.training_arn, definition=json.dumps(validating_definition(stage.role_arn)))
    return stage


def settings(role_arn: str) -> training.OneOffSettings:
    return training.one_off_settings(validating_definition(role_arn))


ROLE = f"arn:aws:iam::{ACCOUNT}:role/gru4rec-dev-training"


# --- the request ---------------------------------------------------------------------------------


def test_the_xe_space_becomes_sagemaker_ranges():
    ranges = parameter_ranges(load_space("xe"))
    categorical = {entry["Name"]: entry["Values"] for entry in ranges["CategoricalParameterRanges"]}
    assert categorical == {"layers": ["64", "96", "128", "192", "256", "384", "512"],
                           "n_sample": ["512", "1024", "2048", "4096"]}
    assert ranges["IntegerParameterRanges"] == [
        {"Name": "batch_size", "MinValue": "32", "MaxValue": "256", "ScalingType": "Linear"}]
    continuous = {entry["Name"]: entry for entry in ranges["ContinuousParameterRanges"]}
    assert continuous["learning_rate"] == {"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "0.5",
                                           "ScalingType": "Logarithmic"}
    assert continuous["dropout_hidden"]["MaxValue"] == "0.7" and continuous["logq"]["ScalingType"] == "Linear"
    assert len(categorical) + len(ranges["IntegerParameterRanges"]) + len(continuous) == 9


@pytest.mark.parametrize("space", ["xe", "bpr-max"])
def test_the_request_is_what_the_service_model_accepts(space):
    request = tuning.tuning_request("dev", BUCKET, settings(ROLE), load_space(space),
                                    tuning.TuningLimits(30, 3, 12 * 3600), 28, NOW)
    assert problems("sagemaker", "CreateHyperParameterTuningJob", request) == []
    assert request["HyperParameterTuningJobName"] == "tune-dev-2612071345"


def test_the_service_model_check_catches_a_request_sagemaker_would_refuse():
    """Negative control: the same check names what a broken request gets wrong."""
    request = tuning.tuning_request("dev", BUCKET, settings(ROLE), load_space("xe"), tuning.TuningLimits(4, 2), 28, NOW)
    config = request["HyperParameterTuningJobConfig"]
    config["ParameterRanges"]["CategoricalParameterRanges"][0]["Values"] = [str(n) for n in range(31)]
    config["ParameterRanges"]["IntegerParameterRanges"][0]["ScalingType"] = "Exponential"
    request["HyperParameterTuningJobName"] = "tune-a-stage-name-far-too-long-0000"
    found = "\n".join(problems("sagemaker", "CreateHyperParameterTuningJob", request))
    assert "CategoricalParameterRanges[0].Values" in found
    assert "IntegerParameterRanges[0].ScalingType" in found
    assert "HyperParameterTuningJobName" in found


def test_the_longest_stage_name_fits_sagemakers_name_limit():
    request = tuning.tuning_request(
        "s" * 16, BUCKET, settings(ROLE), load_space("xe"), tuning.TuningLimits(4, 2), 28, NOW
    )
    assert problems("sagemaker", "CreateHyperParameterTuningJob", request) == []


def test_searched_names_are_never_static_and_the_window_is():
    defaults = {"preset": "rsc15", "learning_rate": "0.1", "valid_days": "1"}
    base = settings(ROLE)
    request = tuning.tuning_request("dev", BUCKET, training.OneOffSettings(**{**base.__dict__,
                                                                             "default_hyperparameters": defaults}),
                                    load_space("bpr-max"), tuning.TuningLimits(4, 2), 28, NOW)
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static == {"preset": "diginetica", "valid_days": "1", "loss": "bpr-max", "logq": "0.0",
                      **training.training_window(28, NOW)}


@pytest.mark.parametrize(
    "space, limits, problem",
    [
        (
            {"search": {"layers": {"choices": [str(n) for n in range(64, 95)]}}},
            (4, 2),
            "31 choices; SageMaker takes at most 30",
        ),
        ({"search": {"momentum": {"low": 0.0, "high": 0.9, "log": True}}}, (4, 2), "a logarithmic range needs low > 0"),
        ({"search": {"momentum": {"low": 0.0, "high": 0.9}}}, (2, 3), "--parallel (3) is more than --trials (2)"),
    ],
)
def test_what_sagemaker_would_refuse_is_refused_first(tmp_path, space, limits, problem):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    with pytest.raises(TuningError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        tuning.tuning_job_config(load_space(str(path)), *limits, None)


@pytest.mark.parametrize("argv, problem", [
    (["tune", "--space", "nope"], "--space nope: not a built-in space"),
    (["tune", "--trials", "2", "--parallel", "3"], "--parallel (3) is more than --trials (2)"),
    (["tune", "--max-runtime", "soon"], "--max-runtime 'soon': give a duration such as 90m"),
    (["tune", "--max-runtime", "1m"], "--max-runtime (60 s) must be from 120 s"),
    (["tune", "--apply", "tune-dev-1", "--image", "x"], "--image: for starting a tuning job, not with --apply"),
])
def test_local_tune_problems_are_refused_before_any_aws_call(no_aws, capsys, argv, problem):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == "" and problem in err


def test_durations():
    assert [tuning.parse_duration(text) for text in ("90m", "12h", "2d", "600")] == [5400, 43200, 172800, 600]


# --- started in moto, shown by status ------------------------------------------------------------


def test_tune_starts_a_tuning_job_like_the_training_jobs_and_status_shows_it(tuning_stage, capsys):
    code, out, err = run(capsys, "tune", "--space", "bpr-max", "--trials", "6", "--parallel", "2",
                         "--max-runtime", "3h")
    assert code == 0, err
    name = out.split()[-1]
    assert name.startswith("tune-dev-")
    sagemaker = tuning_stage.session.client("sagemaker")
    job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    config = job["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": OBJECTIVE_METRIC}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2,
                                        "MaxRuntimeInSeconds": 10800}
    definition = job["TrainingJobDefinition"]
    assert definition["RoleArn"] == tuning_stage.role_arn
    assert definition["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert definition["AlgorithmSpecification"]["MetricDefinitions"] == VALIDATION_METRICS
    assert definition["ResourceConfig"] == {"InstanceType": "ml.c5.2xlarge", "InstanceCount": 1,
                                            "VolumeSizeInGB": 20, "VolumeKmsKeyId": KEY_ARN}
    assert definition["OutputDataConfig"] == {"S3OutputPath": f"s3://{BUCKET}/models/", "KmsKeyId": KEY_ARN}
    assert "EnableManagedSpotTraining" not in definition
    assert definition["StaticHyperParameters"] == {"preset": "diginetica", "epochs": "10", "valid_days": "1",
                                                   "loss": "bpr-max", "logq": "0.0", **training.training_window(28)}
    assert [channel["DataSource"]["S3DataSource"]["S3Uri"] for channel in definition["InputDataConfig"]] == [
        f"s3://{BUCKET}/training/events/"]
    assert {"Key": "stage", "Value": "dev"} in sagemaker.list_tags(ResourceArn=job["HyperParameterTuningJobArn"])[
        "Tags"
    ]

    code, out, _ = run(capsys, "status")
    assert code == 0
    row = next(line for line in out.splitlines() if name in line)
    assert row.split()[0] == "Completed"  # moto's jobs end at once


def test_tune_without_a_validation_split_or_its_metric_is_refused(stage, capsys):
    code, _, err = run(capsys, "tune", "--trials", "2", "--parallel", "1")
    assert code == 1 and f"metric definitions declare no {OBJECTIVE_METRIC}" in err
    definition = validating_definition(stage.role_arn)
    del definition["States"]["Name the job"]["Assign"]["defaultHyperparameters"]["valid_days"]
    stage.session.client("stepfunctions").update_state_machine(stateMachineArn=stage.training_arn,
                                                               definition=json.dumps(definition))
    code, _, err = run(capsys, "tune", "--trials", "2", "--parallel", "1")
    assert code == 1 and "the stage's valid_days is 0" in err
    assert (
        stage.session.client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    )


def test_status_without_tuning_jobs_says_so(stage, capsys):
    code, out, _ = run(capsys, "status")
    assert code == 0 and "Tuning jobs: none yet" in out


# --- apply ---------------------------------------------------------------------------------------

TUNED = {"layers": "192", "batch_size": "48", "learning_rate": "0.0734", "momentum": "0.35",
         "dropout_embedding": "0.1", "dropout_hidden": "0.25", "sample_alpha": "0.6", "n_sample": "2048", "logq": "1.0"}


def finish(name: str, tuned: dict[str, str], objective: float = 0.6431) -> None:
    """Stand-in for a finished tuning job: moto's answer with our best training job (moto's own names a parameter
    "string"), as DescribeHyperParameterTuningJob's model allows."""
    job = sagemaker_backends[ACCOUNT][REGION].hyper_parameter_tuning_jobs[name]
    job.training_job_definition["StaticHyperParameters"]["_tuning_objective_metric"] = OBJECTIVE_METRIC
    job.best_training_job = {
        "TrainingJobName": f"{name}-004-1a2b3c4d", "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
        f"training-job/{name}-004-1a2b3c4d", "CreationTime": NOW, "TrainingJobStatus": "Completed",
        "TunedHyperParameters": tuned, "ObjectiveStatus": "Succeeded",
        "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Maximize", "MetricName": OBJECTIVE_METRIC,
                                                        "Value": objective},
    }
    job.OverallBestTrainingJob = job.best_training_job
    assert problems("sagemaker", "DescribeHyperParameterTuningJob", job.describe(), output=True) == []


def test_apply_makes_the_best_settings_the_stages_training_parameters(tuning_stage, capsys):
    _, out, _ = run(capsys, "tune", "--trials", "6", "--parallel", "2")
    name = out.split()[-1]
    finish(name, TUNED)
    code, out, err = run(capsys, "tune", "--apply", name)
    assert code == 0, err
    stored = tuning_stage.session.client("ssm").get_parameter(Name="/gru4rec/dev/tuned-hyperparameters")
    # the xe space's fixed values and the tuned ones; its preset (rsc15) and epochs are the stage's own defaults
    assert json.loads(stored["Parameter"]["Value"]) == {"loss": "cross-entropy", "elu": "0.0", "bpreg": "0.0",
                                                        **TUNED, "tuning_job": name}
    _, out, _ = run(capsys, "status")
    assert "0.6431 (" + name + "-004-1a2b3c4d)" in out


def test_apply_refuses_moto_s_own_best_job_and_writes_nothing(tuning_stage, capsys):
    """Negative control for the stand-in: moto's canned best job tunes a parameter named "string"."""
    _, out, _ = run(capsys, "tune", "--trials", "6", "--parallel", "2")
    code, _, err = run(capsys, "tune", "--apply", out.split()[-1])
    assert code == 1 and "unknown parameter 'string'" in err
    ssm = tuning_stage.session.client("ssm")
    assert "tuned-hyperparameters" not in str(ssm.describe_parameters()["Parameters"])


def test_apply_refuses_an_unfinished_job_and_another_stages(tuning_stage, capsys):
    _, out, _ = run(capsys, "tune", "--trials", "6", "--parallel", "2")
    name = out.split()[-1]
    sagemaker_backends[ACCOUNT][REGION].hyper_parameter_tuning_jobs[
        name
    ].hyper_parameter_tuning_job_status = "InProgress"
    code, _, err = run(capsys, "tune", "--apply", name)
    assert code == 1 and f"tuning job {name} is InProgress" in err
    code, _, err = run(capsys, "tune", "--apply", "tune-prod-2612071345")
    assert code == 1 and "not a tuning job of stage dev" in err


def test_a_one_off_job_gets_the_applied_settings_under_its_own(tuning_stage, capsys):
    applied = {"layers": "192", "learning_rate": "0.0734", "tuning_job": "tune-dev-2612071345"}
    tuning_stage.session.client("ssm").put_parameter(Name="/gru4rec/dev/tuned-hyperparameters",
                                                     Value=json.dumps(applied), Type="String")
    code, out, err = run(capsys, "train", "--one-off", "-p", "learning_rate=0.05")
    assert code == 0, err
    sagemaker = tuning_stage.session.client("sagemaker")
    [summary] = sagemaker.list_training_jobs()["TrainingJobSummaries"]
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert job["HyperParameters"] == {"preset": "rsc15", "epochs": "10", "valid_days": "1", **applied,
                                      "learning_rate": "0.05", **training.training_window(28)}
