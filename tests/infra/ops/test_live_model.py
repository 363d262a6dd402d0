"""``infra.ops rollback`` against moto's Model Registry, endpoint and Step Functions: the version it picks, what it
refuses, the guarded rollout it starts (the training pipeline's, executed in
``tests/infra/stacks/test_model_versions_executions.py``) and what it records. Every request is checked against
botocore's service model."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from infra.ops import live_model, registry
from infra.ops.__main__ import main
from infra.ops.deployment import Deployment, Stack
from infra.ops.errors import OpsError
from tests.support.service_model import problems

REGION, ACCOUNT = "eu-west-1", "123456789012"
GROUP, ENDPOINT = "gru4rec-dev", "gru4rec-dev"
FIRST_DATA = "s3://gru4rec-dev-data/initial-models/initial-1/model.tar.gz"
NOW = datetime(2026, 12, 7, 19, 30, tzinfo=UTC)


def _archive(job: str) -> str:
    return f"s3://gru4rec-dev-data/models/{job}/output/model.tar.gz"


class Stage:
    """Stage ``dev`` in moto: the group's versions (1: the first model, put live by the deploy; 2: job-a, rolled out
    by its run; 3: job-b Rejected; 4: job-x Approved, whose rollout the alarms rolled back; 5: job-c, live, rolled
    out by its approval; 6: job-d pending), the endpoint serving version 5's model, the training state machine with
    those executions, and every request the operator CLI makes."""

    def __init__(self, session: boto3.Session):
        self.session, self.requests = session, []
        session.events.register("provide-client-params.*.*", self._record)
        sagemaker = session.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        self.arns = [self._register(data, status, note, rolled_out_by) for data, status, note, rolled_out_by in [
            (FIRST_DATA, "Approved", "the first model", "cdk-deploy"),
            (_archive("job-a"), "Approved", "passed", "run-a"),
            (_archive("job-b"), "Rejected", "below the live model", None),
            (_archive("job-x"), "Approved", "passed", None),
            (_archive("job-c"), "Approved", "passed", None),
            (_archive("job-d"), "PendingManualApproval", "passed", None)]]
        self.serve("job-c", self.arns[4])
        role = session.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.machine = session.client("stepfunctions").create_state_machine(
            name="gru4rec-dev-training", roleArn=role,
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))["stateMachineArn"]
        for name, status in (("run-a", "SUCCEEDED"), ("version-4", "FAILED"), ("version-5", "SUCCEEDED")):
            self._ended(name, status)
        self.requests.clear()
        outputs = {"Endpoint": {"EndpointName": ENDPOINT}, "Training": {"TrainingStateMachineArn": self.machine}}
        self.deployment = Deployment("dev", REGION, {part: Stack(f"Gru4Rec-Dev-{part}", "CREATE_COMPLETE", values)
                                                     for part, values in outputs.items()})
        self.waited, self.ending = [], {"status": "SUCCEEDED"}

    def _record(self, params, model, **_):
        self.requests.append((model.service_model.service_name, model.name, dict(params)))

    def _register(self, data: str, status: str, note: str, rolled_out_by: str | None) -> str:
        job = data.split("/")[-3] if "/models/" in data else None
        metadata = {"training-job": job} if job else {"model-version": "initial-1"}
        if rolled_out_by:
            metadata["rolled-out-by"] = rolled_out_by
        return self.session.client("sagemaker").create_model_package(
            ModelPackageGroupName=GROUP, ModelApprovalStatus=status, ModelPackageDescription=note,
            InferenceSpecification={"Containers": [{"Image": "serve:1", "ModelDataUrl": data}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]},
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]

    def _ended(self, name: str, status: str) -> None:
        """An execution of the training state machine that ended ``status`` (moto runs none: its state is set)."""
        from moto.stepfunctions.models import stepfunctions_backends

        arn = self.session.client("stepfunctions").start_execution(stateMachineArn=self.machine, name=name,
                                                                   input="{}")["executionArn"]
        stepfunctions_backends[ACCOUNT][REGION].describe_execution(arn).status = status

    def serve(self, name: str, package: str | None, data: str | None = None, variants=("AllTraffic",)) -> None:
        """The endpoint serving a model ``name`` (tagged with ``package`` as the pipeline tags its models)."""
        sagemaker = self.session.client("sagemaker")
        sagemaker.create_model(ModelName=name, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model",
                               PrimaryContainer={"Image": "serve:1", "ModelDataUrl": data or _archive(name)},
                               Tags=[{"Key": "model-package", "Value": package}] if package else [])
        sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
            {"VariantName": variant, "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
            for variant in variants])
        if sagemaker.list_endpoints()["Endpoints"]:
            sagemaker.delete_endpoint(EndpointName=ENDPOINT)
        sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=name)

    def wait(self, stepfunctions, execution_arn, poll_seconds, **_):
        """The rollout's execution, ended as ``ending`` says (the pipeline itself runs in the executions' tests)."""
        self.waited.append(execution_arn)
        return {"executionArn": execution_arn, **self.ending}

    def roll_back(self, to: str | None = None) -> live_model.Rollback:
        target, live = live_model.rollback_target(self.session, self.deployment, to)
        return live_model.roll_back(self.session, self.deployment, target, live, now=NOW, wait=self.wait)

    def metadata(self, number: int) -> dict:
        return self.session.client("sagemaker").describe_model_package(
            ModelPackageName=self.arns[number - 1]).get("CustomerMetadataProperties", {})

    def rollbacks(self) -> list[dict]:
        """The executions ``rollback`` started."""
        return [e for e in self.session.client("stepfunctions").list_executions(stateMachineArn=self.machine)[
            "executions"] if e["name"].startswith("rollback-")]


@pytest.fixture
def stage(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield Stage(boto3.Session(region_name=REGION))


def _well_formed(stage: Stage) -> None:
    for service, operation, params in stage.requests:
        assert problems(service, operation, params) == [], (operation, params)


def test_rollback_puts_the_approved_version_live_before_the_current_one_live_through_the_pipeline(stage):
    """Version 5 is live; 4 never went live (the alarms rolled its rollout back), 3 is Rejected: the default is 2,
    started as the pipeline's rollout and recorded on it."""
    done = stage.roll_back()
    assert (done.target.number, done.replaced, done.execution) == (2, 5, "rollback-2-20261207-193000")
    (execution,) = stage.rollbacks()
    assert execution["name"] == done.execution and stage.waited == [execution["executionArn"]]
    started = stage.session.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])
    assert json.loads(started["input"]) == {"modelPackage": stage.arns[1], "rollback": True, "trigger": "rollback"}
    assert stage.metadata(2) == {"training-job": "job-a", "rolled-out-by": "run-a",
                                 "rolled-back-at": "2026-12-07T19:30:00Z", "rolled-back-by": done.execution,
                                 "rolled-back-from": "5"}
    _well_formed(stage)
    found = registry.versions(stage.session, stage.deployment)
    (line,) = [line for line in registry.render(found, None).splitlines() if line[1:].lstrip().startswith("2 ")]
    assert "put live again by rollback at 2026-12-07T19:30:00Z" in line


def test_rollback_to_a_named_approved_version(stage):
    done = stage.roll_back("1")
    assert (done.target.number, done.target.model_data) == (1, FIRST_DATA)
    assert stage.metadata(1)["rolled-back-from"] == "5"


@pytest.mark.parametrize("number, status, note", [
    ("3", "Rejected", "below the live model"), ("6", "PendingManualApproval", "passed")])
def test_a_version_that_is_not_approved_is_refused_naming_it(stage, number, status, note):
    with pytest.raises(OpsError, match=f"version {number} of gru4rec-dev is {status} \\({note}\\): only an Approved"):
        stage.roll_back(number)
    assert stage.rollbacks() == [] and "rolled-back-at" not in stage.metadata(int(number))


def test_the_live_version_is_refused(stage):
    with pytest.raises(OpsError, match="version 5 is the live model already"):
        stage.roll_back("5")


def test_a_failed_rollout_records_nothing_and_says_why(stage):
    stage.ending = {"status": "FAILED", "error": "Deployment.RolledBack", "cause": "an alarm fired"}
    with pytest.raises(OpsError, match="ended FAILED: Deployment.RolledBack: an alarm fired .* the live model is "
                                       "unchanged"):
        stage.roll_back()
    assert "rolled-back-at" not in stage.metadata(2)


def test_the_first_model_live_has_nothing_before_it(stage):
    """The Endpoint stack's own model carries no version tag: it is known by its archive (version 1)."""
    stage.serve("stack-model", None, FIRST_DATA)
    assert registry.live_version_arn(stage.session, stage.deployment) == stage.arns[0]
    with pytest.raises(OpsError, match="no Approved version older than the live version 1 has been live"):
        stage.roll_back()


def test_an_endpoint_serving_no_version_needs_one_named(stage):
    stage.serve("elsewhere", None, "s3://other/model.tar.gz")
    with pytest.raises(OpsError, match="serves no version of gru4rec-dev: name the version .* --to-version N"):
        stage.roll_back()
    assert stage.roll_back("2").replaced is None and stage.metadata(2)["rolled-back-from"] == "-"


def test_rollback_waits_for_an_ab_test_to_end_and_for_a_busy_endpoint(stage):
    stage.serve("ab", stage.arns[4], variants=("AllTraffic", "Challenger"))
    with pytest.raises(OpsError, match="A/B test.*ab promote"):
        stage.roll_back("2")
    from moto.sagemaker.models import sagemaker_backends

    stage.serve("busy", stage.arns[4])
    sagemaker_backends[ACCOUNT][REGION].endpoints[ENDPOINT].endpoint_status = "Updating"
    with pytest.raises(OpsError, match="is Updating: another update is running"):
        stage.roll_back("2")
    assert stage.rollbacks() == []


def test_the_cli_names_the_refused_version(stage, monkeypatch, capsys):
    monkeypatch.setattr("infra.ops.__main__.load_deployment", lambda *_args, **_kwargs: stage.deployment)
    assert main(["rollback", "--to-version", "3", "--region", REGION]) == 1
    assert "version 3 of gru4rec-dev is Rejected (below the live model)" in capsys.readouterr().err


def test_a_version_whose_rollout_never_succeeded_has_not_been_live(stage):
    """Negative control of went_live: with version 4's rollout SUCCEEDED, it is the default target."""
    from moto.stepfunctions.models import stepfunctions_backends

    execution = stage.machine.replace(":stateMachine:", ":execution:") + ":version-4"
    stepfunctions_backends[ACCOUNT][REGION].describe_execution(execution).status = "SUCCEEDED"
    assert stage.roll_back().target.number == 4


def test_the_first_deploys_mark_is_the_registrys():
    from infra.registry import FIRST_DEPLOY

    assert live_model.FIRST_DEPLOY == FIRST_DEPLOY
