"""retrain_schedule: an EventBridge Scheduler schedule that starts the training pipeline; off by default."""
from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint

from infra.config import AppConfig, ConfigError
from tests.infra.conftest import synthesize
from tests.infra.test_app import LINT_REGIONS
from tests.infra.test_deploy_rehearsal import rehearse
from tests.support.pipelines import as_list, resources

WEEKLY = "rate(7 days)"


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory, dummy_model_artifact):
    return synthesize(tmp_path_factory.mktemp("scheduled"),
                      {"initial_model_artifact": str(dummy_model_artifact), "retrain_schedule": WEEKLY})


@pytest.mark.parametrize("expression", ["rate(7 days)", "rate(1 day)", "rate(12 hours)", "cron(0 3 ? * MON *)"])
def test_scheduler_expressions_are_accepted(dummy_model_artifact, expression):
    config = AppConfig.from_mapping(
        {"initial_model_artifact": str(dummy_model_artifact), "retrain_schedule": expression}
    )
    assert config.retrain_schedule == expression


@pytest.mark.parametrize("expression", ["rate(7 day)", "rate(0 days)", "every week", "cron(0 3 * * *)", "rate(1 days)"])
def test_other_schedules_are_refused_by_name(dummy_model_artifact, expression):
    with pytest.raises(ConfigError) as caught:
        AppConfig.from_mapping({"initial_model_artifact": str(dummy_model_artifact), "retrain_schedule": expression})
    assert caught.value.key == "retrain_schedule" and "rate(7 days)" in str(caught.value)


def test_no_schedule_by_default(synth):
    assert synth.config.retrain_schedule is None
    assert resources(synth.template_dict("training"), "AWS::Scheduler::Schedule") == {}


def test_the_schedule_starts_the_training_state_machine(scheduled):
    template = scheduled.template_dict("training")
    (schedule,) = [r["Properties"] for r in resources(template, "AWS::Scheduler::Schedule").values()]
    assert schedule["ScheduleExpression"] == WEEKLY and schedule["State"] == "ENABLED"
    (machine_id,) = [name for name in resources(template, "AWS::StepFunctions::StateMachine")
                     if name.startswith("StateMachine")]
    assert schedule["Target"]["Arn"] == {"Ref": machine_id}
    assert json.loads(schedule["Target"]["Input"]) == {"trigger": "schedule"}
    assert "KmsKeyArn" in schedule
    role_id = schedule["Target"]["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [r["Properties"]["PolicyDocument"] for r in resources(template, "AWS::IAM::Policy").values()
                 if {"Ref": role_id} in r["Properties"]["Roles"]]
    start, decrypt = policy["Statement"]
    assert as_list(start["Action"]) == ["states:StartExecution"] and start["Resource"] == {"Ref": machine_id}
    # the schedule is encrypted with the stage's key: the target's role decrypts it, nothing more
    assert as_list(decrypt["Action"]) == ["kms:Decrypt"] and decrypt["Resource"] == schedule["KmsKeyArn"]


def test_a_scheduled_stage_passes_cdk_nag_and_cfn_lint_and_deploys(scheduled):
    assert scheduled.nag_error is None
    findings = [f"{name}: {match}" for name, template in scheduled.templates.items()
                for match in lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS))]
    assert findings == []
    with rehearse(scheduled) as record:
        statuses = {name: status for name, (status, _events) in record["stacks"].items()}
    assert set(statuses.values()) == {"CREATE_COMPLETE"}, statuses
