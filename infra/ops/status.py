"""What a stage is doing: recent training and batch executions, the endpoint and its model (the registry's versions,
the live one marked, are ``infra.ops.registry``'s part of ``status``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from infra.layout import LIVE_VARIANT
from infra.ops.deployment import Deployment
from infra.ops.tuning import TuningLine, recent_tuning_jobs

RECENT = 5
HISTORY_PAGE = 100


@dataclass(frozen=True)
class ExecutionLine:
    name: str
    status: str
    started: datetime
    job_name: str | None


@dataclass(frozen=True)
class EndpointLine:
    name: str
    status: str | None  # None: the endpoint does not exist
    config_name: str | None
    instances: int | None
    current_model: str | None
    current_model_data: str | None


@dataclass(frozen=True)
class StatusReport:
    stage: str
    region: str
    training: list[ExecutionLine] | None  # None: that stack is not deployed
    endpoint: EndpointLine | None
    batch: list[ExecutionLine] | None
    tuning: list[TuningLine] | None = None


def job_name_from_history(events: list[dict], job_kind: str) -> str | None:
    """Name of the SageMaker job (`TrainingJob` or `TransformJob`) an execution scheduled."""
    resource = f"create{job_kind}"
    for event in events:
        details = event.get("taskScheduledEventDetails")
        if event.get("type") == "TaskScheduled" and details and details.get("resourceType") == (
            "sagemaker"
        ) and details.get("resource", "").startswith(resource):
            return json.loads(details["parameters"]).get(f"{job_kind}Name")
    return None


def recent_executions(stepfunctions, state_machine_arn: str, job_kind: str) -> list[ExecutionLine]:
    """The latest executions, newest first, each with the job it started (when it got there)."""
    executions = stepfunctions.list_executions(
        stateMachineArn=state_machine_arn, maxResults=RECENT
    )["executions"]
    lines = []
    for execution in executions:
        events = stepfunctions.get_execution_history(
            executionArn=execution["executionArn"], maxResults=HISTORY_PAGE
        )["events"]
        lines.append(
            ExecutionLine(
                name=execution["name"],
                status=execution["status"],
                started=execution["startDate"],
                job_name=job_name_from_history(events, job_kind),
            )
        )
    return sorted(lines, key=lambda line: line.started, reverse=True)


def _live_model(sagemaker, config_name: str | None) -> tuple[str | None, str | None]:
    """The model the endpoint configuration's live variant serves, and its archive (None, None without one)."""
    if config_name is None:
        return None, None
    variants = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    model = next((v["ModelName"] for v in variants if v["VariantName"] == LIVE_VARIANT), variants[0]["ModelName"])
    container = sagemaker.describe_model(ModelName=model).get("PrimaryContainer", {})
    return model, container.get("ModelDataUrl")


def endpoint_line(sagemaker, deployment: Deployment) -> EndpointLine:
    """The endpoint and its live model: what it serves is the live model, nothing recorded beside it."""
    name = deployment.endpoint_name
    try:
        described = sagemaker.describe_endpoint(EndpointName=name)
    except ClientError as error:
        if "Could not find endpoint" not in error.response["Error"].get("Message", ""):
            raise
        described = {}
    variants = described.get("ProductionVariants", [])
    model, model_data = _live_model(sagemaker, described.get("EndpointConfigName"))
    return EndpointLine(
        name=name,
        status=described.get("EndpointStatus"),
        config_name=described.get("EndpointConfigName"),
        instances=sum(v.get("CurrentInstanceCount", 0) for v in variants) if variants else None,
        current_model=model,
        current_model_data=model_data,
    )


def collect_status(session, deployment: Deployment) -> StatusReport:
    """Everything `status` shows; parts whose stack is not deployed are None."""
    stepfunctions = session.client("stepfunctions")
    training = batch = endpoint = tuning = None
    if deployment.has("Training"):
        training = recent_executions(
            stepfunctions, deployment.training_state_machine_arn, "TrainingJob"
        )
        tuning = recent_tuning_jobs(session.client("sagemaker"), deployment.stage)
    if deployment.has("Endpoint"):
        endpoint = endpoint_line(session.client("sagemaker"), deployment)
    if deployment.has("Batch"):
        batch = recent_executions(stepfunctions, deployment.batch_state_machine_arn, "TransformJob")
    return StatusReport(deployment.stage, deployment.region, training, endpoint, batch, tuning)


def _execution_table(title: str, lines: list[ExecutionLine] | None, job_title: str) -> list[str]:
    if lines is None:
        return [f"{title}: stack not deployed"]
    if not lines:
        return [f"{title}: no executions yet"]
    rows = [("STATUS", "STARTED (UTC)", "EXECUTION", job_title)] + [
        (
            line.status,
            line.started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            line.name,
            line.job_name or "-",
        )
        for line in lines
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"{title}:"] + [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3]
        for row in rows
    ]


def _endpoint_lines(endpoint: EndpointLine | None) -> list[str]:
    if endpoint is None:
        return ["Endpoint: stack not deployed"]
    state = endpoint.status or "does not exist"
    lines = [f"Endpoint {endpoint.name}: {state}"]
    if endpoint.status:
        lines.append(f"  config {endpoint.config_name}, {endpoint.instances} instance(s)")
    lines.append(f"  current model: {endpoint.current_model or '(no endpoint)'}")
    lines.append(f"  model data:    {endpoint.current_model_data or '-'}")
    return lines


def _tuning_lines(jobs: list[TuningLine] | None) -> list[str]:
    """Newest first: each tuning job, its training jobs completed and its best one so far."""
    if jobs is None:
        return ["Tuning jobs: stack not deployed"]
    if not jobs:
        return ["Tuning jobs: none yet"]
    rows = [("STATUS", "STARTED (UTC)", "TUNING JOB", "DONE", "BEST VALIDATION:RECALL@20")] + [
        (job.status, job.started.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"), job.name, str(job.completed),
         "-" if job.best_job is None else f"{job.best_value:.4f} ({job.best_job})" if job.best_value is not None
         else job.best_job)
        for job in jobs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return ["Tuning jobs:"] + [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4] for row in rows
    ]


def render(report: StatusReport) -> str:
    return "\n".join(
        [f"Stage {report.stage} ({report.region})"]
        + _execution_table("Training executions", report.training, "TRAINING JOB")
        + _tuning_lines(report.tuning)
        + _endpoint_lines(report.endpoint)
        + _execution_table("Batch executions", report.batch, "TRANSFORM JOB")
    )
