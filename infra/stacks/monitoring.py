"""Monitoring: the stage's dashboard, the alarms it adds, and its monthly budget.

Dashboard ``gru4rec-<stage>``: the API (requests, 4xx, 5xx, p50/p99 latency), the endpoint
(invocations, 4xx/5xx, model latency, CPU and memory, instances or serverless concurrency), the
training pipeline (executions, each job's Recall@20 and MRR@20, validation and test), the batch and
events pipelines (executions, sessions scored), the share of unknown items in requests, and the
state of every alarm of the stage.

Alarms added here, each notifying an existing topic of the stage: API 5xx answers and the endpoint's
4xx rate -> the endpoint's alarm topic (``gru4rec-<stage>-endpoint-alarms``); executions of a
pipeline that failed, timed out or were aborted -> that pipeline's failure topic. The topics are
addressed by their fixed names, so this stack exports nothing from the others and deploys after them.

Budget (``monthly_budget_usd`` set): an AWS Budgets cost budget of the resources tagged
``stage=<stage>``, notifying the endpoint's alarm topic at ``budget_actual_percent`` of actual and
``budget_forecast_percent`` of forecast spend. The ``stage`` tag counts only once it is activated as a
cost allocation tag in the Billing console.

Built with the CDK's own ``aws_cloudwatch`` L2 constructs rather than cdk-monitoring-constructs (a
further jsii dependency, not tried here): they express every widget and alarm below, including the
serverless endpoint's metrics, the container's request metrics and the training jobs' SEARCH.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.config import AppConfig
from infra.rollout import rollback_alarm_names
from infra.stacks.training import CHAMPION_PREFIX, REPORTED_METRICS, VALIDATION_PREFIX
from infra.stage_metrics import PIPELINES, StageMetrics

COST_TAG = "stage"
"""The tag app_builder puts on every resource, and the budget's filter (``user:stage$<stage>``)."""
ENDPOINT_ALARM_TOPIC = "endpoint-alarms"
PIPELINE_TOPICS = {"training": "training-failures", "batch": "batch-failures", "events": "batch-failures"}
WIDTH = 24


class MonitoringStack(cdk.Stack):
    """Dashboard, alarms and budget of one stage; ``alarms`` by name less ``gru4rec-<stage>-``, ``budget`` (None when
    off)."""

    def __init__(self, scope: Construct, construct_id: str, config: AppConfig, api_name: str, **kwargs) -> None:
        super().__init__(
            scope, construct_id, description=f"GRU4Rec {config.stage}: dashboard, alarms, budget", **kwargs
        )
        self.config = config
        self.metrics = StageMetrics(self, config, api_name)
        self._topics: dict[str, sns.ITopic] = {}
        self.alarms = self._alarms()
        self.budget = self._budget() if config.monthly_budget_usd else None
        self.dashboard = self._dashboard()
        cdk.CfnOutput(self, "DashboardName", value=self.dashboard.dashboard_name,
                      description="CloudWatch dashboard of this stage")

    def topic(self, leaf: str) -> sns.ITopic:
        """One of the stage's topics, by its fixed name ``gru4rec-<stage>-<leaf>``."""
        if leaf not in self._topics:
            arn = self.format_arn(service="sns", resource=self.config.topic_name(leaf),
                                  arn_format=cdk.ArnFormat.NO_RESOURCE_NAME)
            self._topics[leaf] = sns.Topic.from_topic_arn(self, f"Topic-{leaf}", arn)
        return self._topics[leaf]

    # --- alarms -------------------------------------------------------------------------------------

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        config, metrics = self.config, self.metrics
        prefix = config.resource_prefix
        alarms = {
            "api-5xx": metrics.api("5XXError").create_alarm(
                self,
                "Api5xxAlarm",
                alarm_name=f"{prefix}-api-5xx",
                threshold=config.api_5xx_alarm_threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"The API answered at least {config.api_5xx_alarm_threshold} 5xx in 5 minutes",
            ),
            "endpoint-4xx-rate": metrics.endpoint_4xx_percent().create_alarm(
                self,
                "Endpoint4xxRateAlarm",
                alarm_name=f"{prefix}-endpoint-4xx-rate",
                threshold=config.endpoint_4xx_alarm_percent,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"More than {config.endpoint_4xx_alarm_percent:g}% of the endpoint's invocations "
                "answered 4xx (bad requests) in 2 of 3 periods of 5 minutes",
            ),
        }
        endpoint_topic = self.topic(ENDPOINT_ALARM_TOPIC)
        for alarm in alarms.values():
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(endpoint_topic))
        for pipeline in PIPELINES:
            alarm = metrics.abnormal_ends(pipeline).create_alarm(
                self, f"{pipeline.capitalize()}FailuresAlarm", alarm_name=f"{prefix}-{pipeline}-failures",
                threshold=1, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"Executions of {prefix}-{pipeline} failed, timed out or were aborted")
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic(PIPELINE_TOPICS[pipeline])))
            alarms[f"{pipeline}-failures"] = alarm
        return alarms

    # --- budget -------------------------------------------------------------------------------------

    def _budget(self) -> budgets.CfnBudget:
        """A monthly cost budget on the ``stage`` tag; the topic's policy lets AWS Budgets publish
        (``infra.stacks.endpoint``), and the stage's key lets it encrypt (``infra.stacks.storage``)."""
        config = self.config
        subscriber = budgets.CfnBudget.SubscriberProperty(
            subscription_type="SNS", address=self.topic(ENDPOINT_ALARM_TOPIC).topic_arn)
        notifications = [
            budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind,
                    comparison_operator="GREATER_THAN",
                    threshold=percent,
                    threshold_type="PERCENTAGE",
                ),
                subscribers=[subscriber],
            )
            for kind, percent in (
                ("ACTUAL", config.budget_actual_percent),
                ("FORECASTED", config.budget_forecast_percent),
            )
        ]
        # CostFilters' tag form is "user:<key>$<value>":
        # https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-budgets-budget-budgetdata.html
        return budgets.CfnBudget(self, "MonthlyBudget", notifications_with_subscribers=notifications,
                                 budget=budgets.CfnBudget.BudgetDataProperty(
                                     budget_name=f"{config.resource_prefix}-monthly", budget_type="COST",
                                     time_unit="MONTHLY",
                                     budget_limit=budgets.CfnBudget.SpendProperty(
                                         amount=config.monthly_budget_usd, unit="USD"),
                                     cost_filters={"TagKeyValue": [f"user:{COST_TAG}${config.stage}"]}))

    # --- dashboard ----------------------------------------------------------------------------------

    def _dashboard(self) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self.config.resource_prefix,
                                         default_interval=cdk.Duration.hours(24))
        for row in (self._alarm_row(), self._api_row(), self._endpoint_row(), self._pipeline_row(),
                    self._training_row(), self._requests_row()):
            dashboard.add_widgets(*row)
        for alarm in self.alarms.values():
            dashboard.node.add_dependency(alarm)
        return dashboard

    def _alarm_row(self) -> list[cloudwatch.IWidget]:
        # every alarm by its name's ARN (the endpoint's are another stack's; this stack's could be GetAtt,
        # but the dashboard then depends on them through DependsOn only: see _dashboard)
        names = [f"{self.config.resource_prefix}-{key}" for key in self.alarms] + rollback_alarm_names(self.config)
        shown = [cloudwatch.Alarm.from_alarm_name(self, f"Shown-{name}", name) for name in names]
        widgets: list[cloudwatch.IWidget] = [cloudwatch.AlarmStatusWidget(
            title="Alarms", alarms=shown, height=6,
            width=WIDTH // 2 if self.budget else WIDTH)]
        if self.budget:
            config = self.config
            widgets.append(
                cloudwatch.TextWidget(
                    width=WIDTH // 2,
                    height=6,
                    markdown=(
                        f"### Budget {config.resource_prefix}-monthly\n"
                        f"{config.monthly_budget_usd:g} USD a month on the resources tagged "
                        f"`{COST_TAG}={config.stage}`; "
                        f"notifies `{config.topic_name(ENDPOINT_ALARM_TOPIC)}` above {config.budget_actual_percent:g}% "
                        f"actual and {config.budget_forecast_percent:g}% forecast spend (AWS Budgets, not a CloudWatch "
                        "alarm)."
                    ),
                )
            )
        return widgets

    def _api_row(self) -> list[cloudwatch.IWidget]:
        api = self.metrics.api
        return [
            _graph("API requests and errors", [api("Count", label="requests")],
                   right=[api("4XXError", label="4xx"), api("5XXError", label="5xx")]),
            _graph("API latency (ms)", [api("Latency", "p50", "p50"), api("Latency", "p99", "p99")]),
        ]

    def _endpoint_row(self) -> list[cloudwatch.IWidget]:
        endpoint = self.metrics.endpoint
        return [
            _graph(
                "Endpoint invocations and errors",
                [endpoint("Invocations", label="invocations")],
                right=[
                    endpoint("Invocation4XXErrors", label="4xx"),
                    endpoint("Invocation5XXErrors", label="5xx"),
                    endpoint("InvocationModelErrors", label="model errors"),
                ],
                width=WIDTH // 3,
            ),
            # ModelLatency is reported in microseconds
            _graph(
                "Model latency (µs)",
                [endpoint("ModelLatency", "p50", "p50"), endpoint("ModelLatency", "p99", "p99")],
                width=WIDTH // 3,
            ),
            _graph(
                "Endpoint resources" + (" (serverless)" if self.config.serverless else ""),
                self.metrics.endpoint_resources(),
                right=[self.metrics.endpoint_scale()],
                width=WIDTH // 3,
            ),
        ]

    def _pipeline_row(self) -> list[cloudwatch.IWidget]:
        executions = self.metrics.executions
        return [
            _graph(f"{pipeline.capitalize()} pipeline executions",
                   [executions(pipeline, name) for name in ("ExecutionsStarted", "ExecutionsSucceeded")],
                   right=[self.metrics.abnormal_ends(pipeline)], width=WIDTH // 3)
            for pipeline in PIPELINES
        ]

    def _training_row(self) -> list[cloudwatch.IWidget]:
        job_metric = self.metrics.training_job_metric
        return [
            _graph(f"Training jobs: {name} (one line per job)",
                   [job_metric(VALIDATION_PREFIX + name), job_metric(name), job_metric(CHAMPION_PREFIX + name)],
                   annotations=[cloudwatch.HorizontalAnnotation(value=self.config.recall_threshold, label="gate")]
                   if name == REPORTED_METRICS[0] else [])
            for name in REPORTED_METRICS
        ]

    def _requests_row(self) -> list[cloudwatch.IWidget]:
        requests = self.metrics.requests
        endpoint, batch = self.config.endpoint_name, self.config.batch_metrics_service
        return [
            _graph("Unknown items in endpoint requests (%)", [self.metrics.unknown_item_percent()],
                   right=[requests("UnknownItemShare", endpoint, "Average", "mean share per request")]),
            _graph("Sessions scored", [requests("Sessions", batch, label="batch and events pipelines")],
                   right=[requests("Sessions", endpoint, label="endpoint")]),
        ]


def _graph(
    title: str,
    left: list[cloudwatch.IMetric],
    right: list[cloudwatch.IMetric] | None = None,
    annotations: list[cloudwatch.HorizontalAnnotation] | None = None,
    width: int = WIDTH // 2,
) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=left, right=right or [], left_annotations=annotations or [],
                                  width=width, height=6)
