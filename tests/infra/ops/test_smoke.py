"""`python -m infra.ops smoke` end to end against moto, through the same code as against an account.

What moto stands in for, and how (everything else is the smoke command's own code on moto's services):

- the deploy: the app is synthesized for the smoke run's stage and its stacks are created in moto's
  CloudFormation by the deploy rehearsal's code (``deploy_assembly``) instead of ``cdk deploy``, which
  would build the images in Docker;
- what AWS does while the command waits (the ``sleep`` seam, :class:`CloudStandIn`): moto runs no state
  machine with ``.sync`` tasks and delivers no S3 or registry event to EventBridge, so on each wait the
  stand-in does the pipelines' visible work: a running training execution gets a training job (moto's,
  Completed at once) and its model registered PendingManualApproval (the smoke stage approves by hand), and
  ends SUCCEEDED; an Approved version's event starts the pipeline as ``version-<n>`` (what the rule and the
  trigger machine do, executed in tests/infra/stacks/test_model_versions_executions.py), whose rollout
  leaves a model tagged with the version served by the endpoint; a sessions file in ``sessions/incoming/``
  gets a transform job and its scored file, one answer line per input line, from the stand-in model below;
- the API (the ``recommend`` seam): moto serves no API Gateway stage over HTTP, so the call is answered
  by the same stand-in model (``tests/infra/ops/test_recommend.py`` checks the real signed request on a local server);
- the prices (the ``hourly_price`` seam): moto has no Price List API; the parsing of its answer is tested
  on a document shaped as GetProducts returns it (tests/infra/ops/test_pricing.py).

The stand-in model recommends the most frequent items of the training file, each run's answers checked by
the smoke command's own checks; a wrong answer must fail its step and the stage must still be torn down.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.kms.models import kms_backends
from moto.sagemaker.models import sagemaker_backends
from moto.stepfunctions.models import stepfunctions_backends

from infra.layout import INCOMING_SESSIONS_PREFIX, PARTS, SCORED_SESSIONS_PREFIX, stack_name
from infra.ops import smoke, teardown
from infra.ops.deployment import load_deployment
from infra.ops.recommend import Recommendations
from model_code.data.synthetic import SyntheticSpec, write_dataset
from tests.infra.conftest import synthesize
from tests.infra.test_deploy_rehearsal import ACCOUNT, REGION, bootstrap, deploy_assembly

pytestmark = [
    pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning"),
]

PRICES = {("ml.m5.xlarge", "training"): 0.23, ("ml.m5.xlarge", "transform"): 0.23, ("ml.m5.large", "hosting"): 0.115}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("smoke_data")
    write_dataset(folder, SyntheticSpec(sessions=400, items=60, days=5))
    return folder


class CloudStandIn:
    """What the stage's pipelines and API would do in an account, done on moto when the smoke run waits."""

    def __init__(self, session, stage: str, data: smoke.SmokeData, answer=None, approval_events: int = 1):
        self.session, self.stage = session, stage
        # how many rollouts an approval starts: 1 as the rule and the trigger's execution name make it; 0 and 2
        # are the negative controls of the smoke run's approve step
        self.approval_events = approval_events
        counts = Counter(item for _, items in data.sessions for item in items)
        self.popular = [item for item, _ in counts.most_common()] + sorted(data.known_items - set(counts))
        self.answer = answer or self.popular
        self.waits = 0
        self.training_data: list[str] = []

    def recommend(self, session, deployment, items, k):
        return Recommendations(items=[(item, float(k - rank)) for rank, item in enumerate(self.answer[:k])],
                               unknown_items=0)

    def sleep(self, seconds: float) -> None:
        self.waits += 1
        deployment = load_deployment(self.session, self.stage)
        self._deliver_approvals(deployment)
        self._finish_training(deployment)
        self._score_incoming(deployment)

    def _deliver_approvals(self, deployment) -> None:
        sfn, sagemaker = self.session.client("stepfunctions"), self.session.client("sagemaker")
        started = {e["name"] for e in sfn.list_executions(
            stateMachineArn=deployment.training_state_machine_arn)["executions"]}
        for summary in sagemaker.list_model_packages(ModelPackageGroupName=f"gru4rec-{self.stage}",
                                                     ModelApprovalStatus="Approved")["ModelPackageSummaryList"]:
            names = [f"version-{summary['ModelPackageVersion']}"]
            names += [f"{names[0]}-again-{n}" for n in range(1, self.approval_events)]
            for name in names[:self.approval_events]:
                if name not in started:
                    body = {"modelPackage": summary["ModelPackageArn"], "trigger": "approval"}
                    sfn.start_execution(stateMachineArn=deployment.training_state_machine_arn, name=name,
                                        input=json.dumps(body))

    def _finish_training(self, deployment) -> None:
        sfn = self.session.client("stepfunctions")
        running = sfn.list_executions(stateMachineArn=deployment.training_state_machine_arn,
                                      statusFilter="RUNNING")["executions"]
        for number, execution in enumerate(running):
            execution_input = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
            if "modelPackage" in execution_input:
                self._roll_out(execution_input["modelPackage"], execution["name"], deployment)
            else:
                s3 = self.session.client("s3")
                self.training_data = [o["Key"] for o in s3.list_objects_v2(
                    Bucket=deployment.data_bucket, Prefix="training/").get("Contents", [])]
                job = f"gru4rec-{self.stage}-train-20261202-000000-{number:08x}"
                self._training_job(job, deployment)
                self._register_pending(job, deployment)
            stepfunctions_backends[ACCOUNT][REGION].describe_execution(execution["executionArn"]).status = "SUCCEEDED"

    def _register_pending(self, job: str, deployment) -> None:
        self.session.client("sagemaker").create_model_package(
            ModelPackageGroupName=f"gru4rec-{self.stage}", ModelApprovalStatus="PendingManualApproval",
            ModelPackageDescription="passed the quality gate", CustomerMetadataProperties={"training-job": job},
            InferenceSpecification={"Containers": [{"Image": "serve:latest", "ModelDataUrl":
                                                    f"s3://{deployment.data_bucket}/models/{job}/output/model.tar.gz"}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})

    def _roll_out(self, package: str, name: str, deployment) -> None:
        """The rollout's visible result: a model of the version, tagged with it, served by the endpoint."""
        sagemaker = self.session.client("sagemaker")
        version = sagemaker.describe_model_package(ModelPackageName=package)
        if "rolled-out-by" in version.get("CustomerMetadataProperties", {}):
            return  # the first deploy's version: live already, the pipeline ends at its mark
        model = f"gru4rec-{self.stage}-train-{name}"
        # the pipeline's tags (infra.stacks.workflow.resource_tags), which the teardown and cleanup go by
        tags = [{"Key": "project", "Value": "gru4rec"}, {"Key": "stage", "Value": self.stage},
                {"Key": "model-package", "Value": package}]
        sagemaker.create_model(ModelName=model, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/model",
                               PrimaryContainer=version["InferenceSpecification"]["Containers"][0], Tags=tags)
        sagemaker.create_endpoint_config(EndpointConfigName=model, Tags=tags, ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": model, "InstanceType": "ml.m5.large",
             "InitialInstanceCount": 1}])
        sagemaker_backends[ACCOUNT][REGION].endpoints[deployment.endpoint_name].endpoint_config_name = model

    def _training_job(self, name: str, deployment) -> None:
        self.session.client("sagemaker").create_training_job(
            TrainingJobName=name, RoleArn=f"arn:aws:iam::{ACCOUNT}:role/training",
            AlgorithmSpecification={"TrainingImage": "train:latest", "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{deployment.data_bucket}/models/"},
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )

    def _score_incoming(self, deployment) -> None:
        s3 = self.session.client("s3")
        listed = s3.list_objects_v2(Bucket=deployment.data_bucket, Prefix=INCOMING_SESSIONS_PREFIX).get("Contents", [])
        for number, key in enumerate(o["Key"] for o in listed if o["Key"].endswith(".jsonl")):
            lines = s3.get_object(Bucket=deployment.data_bucket, Key=key)["Body"].read().decode().splitlines()
            answers = []
            for line in lines:
                request = json.loads(line)
                recommendations = self.recommend(None, None, request["items"], request["k"]).items
                answers.append(
                    json.dumps(
                        {
                            "session_id": request["session_id"],
                            "model_version": "stand-in",
                            "recommendations": [{"item_id": i, "score": s} for i, s in recommendations],
                        }
                    )
                )
            name = key[len(INCOMING_SESSIONS_PREFIX):]
            s3.put_object(Bucket=deployment.data_bucket, Key=f"{SCORED_SESSIONS_PREFIX}{name}.out",
                          Body="\n".join(answers).encode())
            self._transform_job(f"gru4rec-{self.stage}-batch-20261202-000000-{number:08x}", deployment)

    def _transform_job(self, name: str, deployment) -> None:
        sagemaker = self.session.client("sagemaker")
        model = sagemaker.list_models()["Models"][0]["ModelName"]
        sagemaker.create_transform_job(
            TransformJobName=name, ModelName=model,
            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                            "S3Uri": f"s3://{deployment.data_bucket}/sessions/incoming/"}}},
            TransformOutput={"S3OutputPath": f"s3://{deployment.data_bucket}/sessions/scored/"},
            TransformResources={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        )


@pytest.fixture
def account(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        bootstrap(session)
        yield session


def smoke_run(session, data_dir: Path, tmp_path, dummy_model_artifact, answer=None, keep=False, approval_events=1):
    """``run_smoke`` on stage smoketest, deployed into moto; (report, printed lines, stand-in, what the deploy made)."""
    stage = smoke.new_stage("test")
    data = smoke.read_smoke_data(data_dir)
    cloud = CloudStandIn(session, stage, data, answer, approval_events)
    made: dict = {}

    def deploy(name: str) -> None:
        synth = synthesize(tmp_path / "cdk.out", {"initial_model_artifact": str(dummy_model_artifact), "stage": name,
                                                  **smoke.SMOKE_CONTEXT})
        assert synth.config.approval_mode == "manual"
        deploy_assembly(session, synth)
        made.update(buckets=[b["Name"] for b in session.client("s3").list_buckets()["Buckets"] if name in b["Name"]],
                    keys=[k["KeyId"] for k in session.client("kms").list_keys()["Keys"]])

    seams = smoke.Seams(deploy=deploy, recommend=cloud.recommend, sleep=cloud.sleep,
                        hourly_price=lambda _session, instance_type, use: PRICES.get((instance_type, use)))
    printed: list[str] = []
    report = smoke.run_smoke(session, data, seams, keep=keep, stage=stage, out=printed.append)
    return report, printed, cloud, made


def stacks_left(session, stage: str) -> list[str]:
    cloudformation = session.client("cloudformation")
    left = []
    for part in PARTS:
        try:
            status = cloudformation.describe_stacks(StackName=stack_name(stage, part))["Stacks"][0]["StackStatus"]
        except cloudformation.exceptions.ClientError:
            continue
        if status != "DELETE_COMPLETE":
            left.append(f"{part}: {status}")
    return left


def assert_torn_down(session, stage: str, made: dict) -> None:
    assert stacks_left(session, stage) == []
    buckets = {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]}
    assert made["buckets"] and not buckets & set(made["buckets"])
    # moto 5.2.5's DescribeKey fails on a key CloudFormation made with a policy: read its state in moto itself
    assert {kms_backends[ACCOUNT][REGION].keys[key].key_state for key in made["keys"]} == {"PendingDeletion"}
    assert session.client("ssm").get_parameters_by_path(Path=f"/gru4rec/{stage}/", Recursive=True)["Parameters"] == []
    assert session.client("sagemaker").list_models()["Models"] == []


def _yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


def test_the_smoke_test_passes_every_step_and_removes_the_stage(account, data_dir, tmp_path, dummy_model_artifact):
    days = {_yesterday()}
    report, printed, cloud, made = smoke_run(account, data_dir, tmp_path, dummy_model_artifact)
    days.add(_yesterday())  # the run may cross midnight (UTC)
    print("\n".join(printed))
    assert [(step.name, step.status) for step in report.steps] == [
        ("deploy stage smoketest", "ok"), ("upload the built-in data", "ok"), ("training pipeline", "ok"),
        ("approve and roll out", "ok"), ("JSON-lines batch", "ok"), ("signed API calls", "ok"), ("cost", "ok"),
        ("tear down", "ok"),
    ], report.render()
    assert not report.failed
    # yesterday's day folder (the last day of a run started now), its marker after the file; the test channel
    assert any(
        sorted(cloud.training_data)
        == [f"training/events/dt={day}/_SUCCESS", f"training/events/dt={day}/train.tsv.gz", "training/test/test.tsv.gz"]
        for day in days
    ), cloud.training_data
    assert cloud.waits >= 2  # the training and the batch were waited for
    batch = next(step for step in report.steps if step.name == "JSON-lines batch")
    sessions = min(smoke.BATCH_SESSIONS, len(smoke.read_smoke_data(data_dir).sessions))
    assert batch.detail.startswith(f"{sessions} sessions scored")
    # one training job and one transform job at the stand-in prices; the endpoint's instances too
    assert any(line.strip().startswith("training ml.m5.xlarge") for line in printed)
    assert any(line.strip().startswith("transform ml.m5.xlarge") for line in printed)
    assert any(line.strip().startswith("hosting ml.m5.large") and "x $0.1150/h" in line for line in printed)
    assert_torn_down(account, "smoketest", made)


def test_a_wrong_answer_fails_its_step_and_the_stage_is_still_removed(
    account, data_dir, tmp_path, dummy_model_artifact
):
    report, printed, _, made = smoke_run(account, data_dir, tmp_path, dummy_model_artifact,
                                         answer=["no-such-item", *range(20)])
    statuses = {step.name: step.status for step in report.steps}
    assert statuses["JSON-lines batch"] == "failed"
    assert statuses["signed API calls"] == "skipped" and "cost" not in statuses
    assert statuses["tear down"] == "ok"
    assert "no-such-item" in next(step.detail for step in report.steps if step.status == "failed")
    assert report.failed and "result: FAILED" in report.render()
    assert_torn_down(account, "smoketest", made)


def test_keep_leaves_the_stage_and_teardown_removes_it_later(account, data_dir, tmp_path, dummy_model_artifact):
    report, printed, _, made = smoke_run(account, data_dir, tmp_path, dummy_model_artifact, keep=True)
    assert [step.name for step in report.steps][-1] == "cost"
    assert len(stacks_left(account, "smoketest")) == len(PARTS)
    assert any("--teardown smoketest" in line for line in printed)
    lines = teardown.teardown(account, "smoketest", sleep=lambda _: None)
    assert any(line.startswith("stack Gru4Rec-Smoketest-Storage deleted") for line in lines)
    assert_torn_down(account, "smoketest", made)


@pytest.mark.parametrize("line, problem", [
    ('{"session_id": "s2", "recommendations": []}', "session 's2', expected 's1'"),
    ('{"session_id": "s1", "error": "bad items"}', "the container refused it: bad items"),
    ('{"session_id": "s1", "recommendations": [{"item_id": "a", "score": 1.0}]}', "1 recommendations, expected 2"),
    ('{"session_id": "s1", "recommendations": [{"item_id": "a", "score": 1.0}, {"item_id": "a", "score": 0.5}]}',
     "recommended twice"),
    ('{"session_id": "s1", "recommendations": [{"item_id": "a", "score": 1.0}, {"item_id": "b", "score": 2.0}]}',
     "not in descending order"),
    ("not json", "not a recommendations line"),
])
def test_each_scored_line_is_checked(line, problem):
    with pytest.raises(smoke.StepFailed, match=problem):
        smoke.check_scored_lines([line], [("s1", ["a"])], frozenset({"a", "b"}), k=2)


@pytest.mark.parametrize("events, problem", [
    (0, "no execution version-2 started after 20 checks"),
    (2, "version 2 was rolled out by ['version-2', 'version-2-again-1'], expected once, by version-2"),
])
def test_an_approval_that_rolls_out_never_or_twice_fails_its_step(account, data_dir, tmp_path, dummy_model_artifact,
                                                                  events, problem):
    """Negative controls of the approve step: the event that never starts the rollout, and one that starts two.
    (Version 1 is the first model, registered by the deploy.)"""
    report, _printed, _, made = smoke_run(account, data_dir, tmp_path, dummy_model_artifact, approval_events=events)
    statuses = {step.name: step.status for step in report.steps}
    assert statuses["approve and roll out"] == "failed" and statuses["JSON-lines batch"] == "skipped"
    assert problem in next(step.detail for step in report.steps if step.status == "failed")
    assert_torn_down(account, "smoketest", made)
