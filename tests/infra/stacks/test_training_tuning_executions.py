"""The training pipeline's tuning step (``tune_every_days``) executed offline (``tests.support.sfn_executor``): a tuning
job before the gated training when one is due, warm-started from the stage's last ones, its best settings used by the
run and recorded for later ones; every request checked against botocore's model.

Stand-ins (``tests.support.stand_ins``): DescribeHyperParameterTuningJob of the finished tuning job (what ``.sync``
returns), with DescribeTrainingJob and the endpoint's as in ``test_executions_training``. The earlier tuning jobs
are moto's (ListHyperParameterTuningJobs), made older where a test needs it.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto.sagemaker.models import sagemaker_backends

from tests.support.cfn_values import ACCOUNT, REGION
from tests.support.pipeline_runs import PASSING, ROLLOUT, assert_well_formed, offline_stage
from tests.support.stand_ins import Endpoint, TrainingJobs, TuningJobs

BEST = {"layers": "192", "batch_size": "48", "learning_rate": "0.0734", "n_sample": "2048"}


@pytest.fixture(scope="module")
def tuning(variants):
    return variants["retraining"]  # tune_every_days 7, the xe space


def earlier_tuning_jobs(role_arn: str, days_ago: list[int]) -> list[str]:
    """Completed tuning jobs of the stage in moto, created ``days_ago`` days before now; their names, newest first."""
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    backend = sagemaker_backends[ACCOUNT][REGION]
    names = []
    for days in sorted(days_ago):
        created = datetime.now(UTC) - timedelta(days=days)
        name = "tune-dev-" + created.strftime("%y%m%d%H%M")
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name,
            HyperParameterTuningJobConfig={"Strategy": "Bayesian", "ResourceLimits": {
                "MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1}},
            TrainingJobDefinition={"AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": "x"},
                                   "RoleArn": role_arn, "OutputDataConfig": {"S3OutputPath": "s3://b/"},
                                   "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                                                      "VolumeSizeInGB": 1},
                                   "StoppingCondition": {"MaxRuntimeInSeconds": 3600}})
        backend.hyper_parameter_tuning_jobs[name].creation_time = created
        names.append(name)
    return names


def _run(result, days_ago=(), failed=False):
    with offline_stage(result) as stage:
        parents = earlier_tuning_jobs(f"arn:aws:iam::{ACCOUNT}:role/x-training-role", list(days_ago))
        TuningJobs(stage.boundary, BEST, failed=failed)
        TrainingJobs(stage.boundary, PASSING)
        Endpoint(stage.boundary, result.config.endpoint_name, ROLLOUT)
        run = stage.run("training")
        recorded = stage.parameter(result.config.tuned_hyperparameters_parameter_name)
    assert_well_formed(run)
    return run, parents, recorded


def _operations(run) -> list[str]:
    return [request.operation for request in run.requests]


def test_a_first_tuning_runs_cold_and_its_best_settings_train_and_stay(tuning):
    run, _parents, recorded = _run(tuning)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    (request,) = run.calls("sagemaker", "CreateHyperParameterTuningJob")
    name = request["HyperParameterTuningJobName"]
    assert name.startswith("tune-dev-") and len(name) == len("tune-dev-") + 10
    assert "WarmStartConfig" not in request
    config = request["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Auto"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:recall@20"}
    static = request["TrainingJobDefinition"]["StaticHyperParameters"]
    window = run.output["window"]
    assert static == {"preset": "rsc15", "valid_days": "1", "loss": "cross-entropy", "elu": "0.0", "bpreg": "0.0",
                      **window}
    train, refit = run.calls("sagemaker", "CreateTrainingJob")
    settings = {"preset": "rsc15", "loss": "cross-entropy", "elu": "0.0", "bpreg": "0.0", **BEST, "tuning_job": name}
    assert train["HyperParameters"] == {**settings, "valid_days": "1", **window}
    assert refit["HyperParameters"] == {**settings, **window}
    assert json.loads(recorded) == settings, "later runs get them too"
    operations = _operations(run)
    assert operations.index("CreateHyperParameterTuningJob") < operations.index("CreateTrainingJob")


def test_a_due_tuning_is_warm_started_from_the_last_five(tuning):
    run, parents, _recorded = _run(tuning, days_ago=[8, 9, 10, 11, 12, 13])
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    (request,) = run.calls("sagemaker", "CreateHyperParameterTuningJob")
    assert request["WarmStartConfig"] == {
        "WarmStartType": "TransferLearning",
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": name} for name in parents[:5]]}


def test_a_single_parent_is_still_a_list(tuning):
    run, parents, _recorded = _run(tuning, days_ago=[8])
    (request,) = run.calls("sagemaker", "CreateHyperParameterTuningJob")
    assert request["WarmStartConfig"]["ParentHyperParameterTuningJobs"] == [{"HyperParameterTuningJobName": parents[0]}]


def test_a_tuning_younger_than_tune_every_days_is_not_repeated(tuning):
    run, _parents, recorded = _run(tuning, days_ago=[2])
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert run.calls("sagemaker", "CreateHyperParameterTuningJob") == []
    train, _refit = run.calls("sagemaker", "CreateTrainingJob")
    assert "tuning_job" not in train["HyperParameters"] and recorded is None


def test_a_failed_tuning_job_fails_the_run_before_training(tuning):
    """Negative control for the stand-in: a tuning job that ends Failed stops the pipeline."""
    run, _parents, recorded = _run(tuning, failed=True)
    assert run.status == "FAILED" and run.error == "GRU4Rec.TaskFailed"
    assert run.calls("sagemaker", "CreateTrainingJob") == [] and recorded is None


def test_without_tune_every_days_there_is_no_tuning_step(synth):
    run, _parents, _recorded = _run(synth)
    assert run.status == "SUCCEEDED", (run.error, run.cause)
    assert not [operation for operation in _operations(run) if "HyperParameterTuning" in operation]
