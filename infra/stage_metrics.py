"""The CloudWatch metrics of one stage, by the fixed names its stacks give their resources.

Every metric here is addressed by name (the API, the endpoint, the state machines, the request
metrics' ``Service``), never through another stack's attributes: the monitoring stack imports
nothing from the others. Where each figure comes from:

- API Gateway, ``AWS/ApiGateway`` by ApiName and Stage (the stage enables metrics);
- the endpoint, ``AWS/SageMaker`` (invocations, errors, latency) and ``/aws/sagemaker/Endpoints``
  (CPU, memory) by EndpointName and VariantName: "SageMaker AI endpoint invocation metrics",
  https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html. A serverless endpoint
  publishes no CPU metric; its memory is ``AWS/SageMaker`` MemoryUtilization and its scale is
  ServerlessConcurrentExecutionsUtilization (the exhaustive list:
  https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-monitoring.html);
- the pipelines, ``AWS/States`` by StateMachineArn;
- training jobs, ``/aws/sagemaker/TrainingJobs`` by Host (``<job>/algo-1``), one series per job, read
  with a SEARCH over the pipeline's job names;
- the serving container, ``GRU4Rec`` by Service (``inference/request_metrics.py``).
"""
from __future__ import annotations

import re

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch

from infra.config import AppConfig
from infra.stacks.endpoint import VARIANT_NAME

FIVE_MINUTES = cdk.Duration.minutes(5)
ONE_MINUTE = cdk.Duration.minutes(1)
REQUEST_NAMESPACE = "GRU4Rec"
TRAINING_NAMESPACE = "/aws/sagemaker/TrainingJobs"
PIPELINES = ("training", "batch", "events")
"""The stage's state machines, ``gru4rec-<stage>-<pipeline>``."""
ABNORMAL_ENDS = ("ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted")


class StageMetrics:
    """Metric objects for the stage of ``config``, in the account and region of ``stack``."""

    def __init__(self, stack: cdk.Stack, config: AppConfig, api_name: str):
        self.stack = stack
        self.config = config
        self.api_dimensions = {"ApiName": api_name, "Stage": config.stage}
        self.endpoint_dimensions = {"EndpointName": config.endpoint_name, "VariantName": VARIANT_NAME}

    # --- API Gateway ----------------------------------------------------------------------------

    def api(self, name: str, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
        """``Count``, ``4XXError``, ``5XXError`` or ``Latency`` of the stage's REST API."""
        return cloudwatch.Metric(namespace="AWS/ApiGateway", metric_name=name, dimensions_map=self.api_dimensions,
                                 statistic=statistic, period=FIVE_MINUTES, label=label)

    # --- the endpoint ---------------------------------------------------------------------------

    def endpoint(self, name: str, statistic: str = "Sum", label: str | None = None,
                 namespace: str = "AWS/SageMaker", period: cdk.Duration = FIVE_MINUTES) -> cloudwatch.Metric:
        """One of the endpoint variant's metrics (``AWS/SageMaker`` unless told otherwise)."""
        return cloudwatch.Metric(namespace=namespace, metric_name=name, dimensions_map=self.endpoint_dimensions,
                                 statistic=statistic, period=period, label=label)

    def endpoint_4xx_percent(self) -> cloudwatch.MathExpression:
        """Invocations the container answered with a 4xx, in percent of all invocations."""
        return cloudwatch.MathExpression(
            expression="100 * errors / invocations", label="4xx, % of invocations", period=FIVE_MINUTES,
            using_metrics={"errors": self.endpoint("Invocation4XXErrors"), "invocations": self.endpoint("Invocations")})

    def endpoint_resources(self) -> list[cloudwatch.IMetric]:
        """CPU and memory of the instances, or memory of a serverless endpoint."""
        if self.config.serverless:
            return [self.endpoint("MemoryUtilization", "Average", "memory %")]
        instances = "/aws/sagemaker/Endpoints"
        return [self.endpoint("CPUUtilization", "Average", "CPU % (sum over cores)", instances),
                self.endpoint("MemoryUtilization", "Average", "memory %", instances)]

    def endpoint_scale(self) -> cloudwatch.IMetric:
        """Instances in service (each reports CPU once a minute), or the share of the serverless concurrency in use."""
        if self.config.serverless:
            return self.endpoint("ServerlessConcurrentExecutionsUtilization", "Average", "concurrency in use (share)")
        return self.endpoint("CPUUtilization", "SampleCount", "instances", "/aws/sagemaker/Endpoints", ONE_MINUTE)

    # --- pipelines --------------------------------------------------------------------------------

    def state_machine_arn(self, pipeline: str) -> str:
        return self.stack.format_arn(service="states", resource="stateMachine",
                                     resource_name=f"{self.config.resource_prefix}-{pipeline}",
                                     arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME)

    def executions(self, pipeline: str, name: str) -> cloudwatch.Metric:
        """``ExecutionsStarted``, ``ExecutionsSucceeded``, ``ExecutionsFailed``, ... of one pipeline."""
        return cloudwatch.Metric(namespace="AWS/States", metric_name=name, statistic="Sum", period=FIVE_MINUTES,
                                 dimensions_map={"StateMachineArn": self.state_machine_arn(pipeline)},
                                 label=f"{pipeline} {_words(name.removeprefix('Executions'))}")

    def abnormal_ends(self, pipeline: str) -> cloudwatch.MathExpression:
        """Executions of ``pipeline`` that failed, timed out or were aborted."""
        names = {f"e{i}": self.executions(pipeline, name) for i, name in enumerate(ABNORMAL_ENDS)}
        return cloudwatch.MathExpression(expression=" + ".join(f"FILL({key}, 0)" for key in names),
                                         using_metrics=names, label=f"{pipeline} failed, timed out or aborted",
                                         period=FIVE_MINUTES)

    def training_job_metric(self, name: str) -> cloudwatch.MathExpression:
        """``name`` (e.g. ``validation:recall@20``) as each of the pipeline's training jobs reported it."""
        jobs = f"{self.config.resource_prefix}-train-"
        search = (f"SEARCH('{{{TRAINING_NAMESPACE},Host}} MetricName=\"{name}\" \"{jobs}\"', 'Maximum', 3600)")
        # a dynamic label: one line per job, named by its host (``<job>/algo-1``)
        return cloudwatch.MathExpression(expression=search, label=f"{name} ${{PROP('Dim.Host')}}",
                                         period=cdk.Duration.hours(1), using_metrics={})

    # --- the serving container's request metrics ---------------------------------------------------

    def requests(self, name: str, service: str, statistic: str = "Sum", label: str | None = None) -> cloudwatch.Metric:
        """``Sessions``, ``RequestItems``, ``UnknownItems`` or ``UnknownItemShare`` of one ``Service``."""
        return cloudwatch.Metric(namespace=REQUEST_NAMESPACE, metric_name=name, dimensions_map={"Service": service},
                                 statistic=statistic, period=FIVE_MINUTES, label=label)

    def unknown_item_percent(self) -> cloudwatch.MathExpression:
        """Unknown items in percent of all items the endpoint was sent."""
        service = self.config.endpoint_name
        return cloudwatch.MathExpression(
            expression="100 * unknown / items", label="unknown items, % of items sent", period=FIVE_MINUTES,
            using_metrics={"unknown": self.requests("UnknownItems", service),
                           "items": self.requests("RequestItems", service)})


def _words(camel_case: str) -> str:
    """``TimedOut`` -> ``timed out``."""
    return re.sub(r"(?<!^)([A-Z])", r" \1", camel_case).lower()
