"""The Monitoring stack: the dashboard names the metrics the other parts really publish, the alarms notify
topics the stage has, the budget comes and goes with ``monthly_budget_usd``, and its settings are checked."""
from __future__ import annotations

import json
import re

import pytest
from cfnlint.api import ManualArgs, lint

from inference import request_metrics
from infra.config import AppConfig, ConfigError
from tests.infra.conftest import synthesize
from tests.infra.test_app import LINT_REGIONS
from tests.support.pipelines import definition, marker, resources
from tests.support.policy_documents import AppPolicies
from tests.support.policy_lint import parliament_findings

BUDGET_CONTEXT = {"monthly_budget_usd": "50", "budget_actual_percent": 75, "endpoint_mode": "serverless",
                  "endpoint_4xx_alarm_percent": 2.5, "api_5xx_alarm_threshold": 3}


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory, dummy_model_artifact):
    """A serverless stage with a budget and its own alarm thresholds."""
    return synthesize(tmp_path_factory.mktemp("budgeted"),
                      {"initial_model_artifact": str(dummy_model_artifact), **BUDGET_CONTEXT})


def dashboard_body(result) -> str:
    (dashboard,) = resources(result.template_dict("monitoring"), "AWS::CloudWatch::Dashboard").values()
    return marker(dashboard["Properties"]["DashboardBody"])


def graphed(result) -> list[list]:
    """Every metric line of the dashboard's graphs: [namespace, name, dim, value, ..., {options}] or [{expression}]."""
    body = json.loads(dashboard_body(result))
    return [
        line for widget in body["widgets"] if widget["type"] == "metric" for line in widget["properties"]["metrics"]
    ]


def metric_names(result) -> set[tuple[str, str]]:
    """(namespace, metric) of every metric line that names one (a metric used only by an expression has ``visible:
    false``)."""
    return {(line[0], line[1]) for line in graphed(result) if isinstance(line[0], str) and line[0] != "."}


def dimensions_of(result, namespace: str, metric: str) -> list[dict]:
    found = []
    for line in graphed(result):
        if line[:2] == [namespace, metric]:
            fields = [field for field in line[2:] if isinstance(field, str)]
            found.append(dict(zip(fields[::2], fields[1::2])))
    return found


def expressions(result) -> list[str]:
    return [line[0]["expression"] for line in graphed(result) if isinstance(line[0], dict) and "expression" in line[0]]


def alarms(result) -> dict[str, dict]:
    """Alarm name -> properties."""
    return {body["Properties"]["AlarmName"]: body["Properties"]
            for body in resources(result.template_dict("monitoring"), "AWS::CloudWatch::Alarm").values()}


def topic_names(result) -> set[str]:
    return {body["Properties"]["TopicName"] for template in result.templates.values()
            for body in resources(template, "AWS::SNS::Topic").values()}


# --- the dashboard --------------------------------------------------------------------------------

def test_one_dashboard_named_after_the_stage(synth):
    (dashboard,) = resources(synth.template_dict("monitoring"), "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "gru4rec-dev"
    assert "DashboardName" in synth.template_dict("monitoring")["Outputs"]


def test_the_api_and_endpoint_graphs(synth):
    names = metric_names(synth)
    assert {("AWS/ApiGateway", name) for name in ("Count", "4XXError", "5XXError", "Latency")} <= names
    api = synth.stacks["api"].resolve(synth.stacks["api"].api.rest_api_name)
    assert dimensions_of(synth, "AWS/ApiGateway", "5XXError") == [{"ApiName": api, "Stage": "dev"}]
    latency = [line[-1]["stat"] for line in graphed(synth) if line[:2] == ["AWS/ApiGateway", "Latency"]]
    assert sorted(latency) == ["p50", "p99"]
    endpoint = {"EndpointName": "gru4rec-dev", "VariantName": "AllTraffic"}
    for name in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "ModelLatency"):
        assert endpoint in dimensions_of(synth, "AWS/SageMaker", name), name
    for name in ("CPUUtilization", "MemoryUtilization"):
        assert endpoint in dimensions_of(synth, "/aws/sagemaker/Endpoints", name), name
    instances = [line[-1] for line in graphed(synth) if line[:2] == ["/aws/sagemaker/Endpoints", "CPUUtilization"]
                 and line[-1].get("stat") == "SampleCount"]
    assert instances and instances[0]["period"] == 60


def test_a_serverless_stage_graphs_the_metrics_serverless_endpoints_publish(budgeted):
    names = metric_names(budgeted)
    assert ("AWS/SageMaker", "ServerlessConcurrentExecutionsUtilization") in names
    assert ("AWS/SageMaker", "MemoryUtilization") in names
    assert not {name for name in names if name[0] == "/aws/sagemaker/Endpoints"}


def test_every_state_machine_of_the_app_is_graphed(synth):
    """Every pipeline; the one-state trigger machines (new data, an approved model version) only start the training
    pipeline, whose executions are graphed."""
    machines = {body["Properties"]["StateMachineName"] for template in synth.templates.values()
                for body in resources(template, "AWS::StepFunctions::StateMachine").values()
                if not body["Properties"]["StateMachineName"].endswith("-trigger")}
    graphed_machines = {re.sub(r".*:stateMachine:", "", dims["StateMachineArn"])
                        for dims in dimensions_of(synth, "AWS/States", "ExecutionsStarted")}
    assert graphed_machines == machines
    assert {name for _, name in metric_names(synth) if name.startswith("Executions")} >= {
        "ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}


def test_each_training_jobs_metrics_are_searched_by_the_names_the_job_defines(synth):
    """The SEARCH expressions name exactly the metrics of the training job's MetricDefinitions."""
    states = definition(synth.template_dict("training"))["States"]
    defined = {metric["Name"] for metric in states["Train"]["Arguments"]["AlgorithmSpecification"]["MetricDefinitions"]}
    searched = set()
    for expression in expressions(synth):
        match = re.fullmatch(r"SEARCH\('\{/aws/sagemaker/TrainingJobs,Host\} MetricName=\"([^\"]+)\" "
                             r"\"gru4rec-dev-train-\"', 'Maximum', 3600\)", expression)
        if match:
            searched.add(match.group(1))
    assert searched == defined == {"recall@20", "mrr@20", "validation:recall@20", "validation:mrr@20",
                                   "champion:validation:recall@20", "champion:validation:mrr@20"}


def test_request_metrics_are_read_by_the_service_the_models_tell_the_container(synth):
    """The dashboard's GRU4Rec metrics are the ones the container writes, for the METRICS_SERVICE its models get."""
    record = request_metrics.request_record([], [], "s", "v")
    written = {metric["Name"] for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]} | {"UnknownItemShare"}
    read = {name for namespace, name in metric_names(synth) if namespace == request_metrics.NAMESPACE}
    assert read == written
    (model,) = resources(synth.template_dict("endpoint"), "AWS::SageMaker::Model").values()
    endpoint_service = model["Properties"]["PrimaryContainer"]["Environment"][request_metrics.SERVICE_VARIABLE]
    batch_models = [definition(synth.template_dict("batch"), pipeline)["States"]["Create model"]
                    for pipeline in ("batch", "events")]
    batch_services = {state["Arguments"]["PrimaryContainer"]["Environment"][request_metrics.SERVICE_VARIABLE]
                      for state in batch_models}
    trained = definition(synth.template_dict("training"))["States"]["Create model"]["Arguments"]["PrimaryContainer"]
    assert trained["Environment"][request_metrics.SERVICE_VARIABLE] == endpoint_service == "gru4rec-dev"
    assert batch_services == {"gru4rec-dev-batch"}
    assert {"Service": endpoint_service} in dimensions_of(synth, "GRU4Rec", "UnknownItemShare")
    assert {"Service": "gru4rec-dev-batch"} in dimensions_of(synth, "GRU4Rec", "Sessions")
    assert "100 * unknown / items" in expressions(synth)


# --- alarms ---------------------------------------------------------------------------------------

def test_the_alarms_and_where_they_notify(synth):
    found = alarms(synth)
    actions = {name: [marker(action).rsplit(":", 1)[-1] for action in properties["AlarmActions"]]
               for name, properties in found.items()}
    assert actions == {
        "gru4rec-dev-api-5xx": ["gru4rec-dev-endpoint-alarms"],
        "gru4rec-dev-endpoint-4xx-rate": ["gru4rec-dev-endpoint-alarms"],
        "gru4rec-dev-training-failures": ["gru4rec-dev-training-failures"],
        "gru4rec-dev-batch-failures": ["gru4rec-dev-batch-failures"],
        "gru4rec-dev-events-failures": ["gru4rec-dev-batch-failures"],
    }
    assert {topic for targets in actions.values() for topic in targets} <= topic_names(synth)


def test_alarm_thresholds_come_from_the_context(synth, budgeted):
    assert alarms(synth)["gru4rec-dev-api-5xx"]["Threshold"] == 1
    assert alarms(synth)["gru4rec-dev-endpoint-4xx-rate"]["Threshold"] == 5
    assert alarms(budgeted)["gru4rec-dev-api-5xx"]["Threshold"] == 3
    assert alarms(budgeted)["gru4rec-dev-endpoint-4xx-rate"]["Threshold"] == 2.5


def test_the_4xx_rate_is_4xx_over_invocations_in_percent(synth):
    metrics = {query["Id"]: query for query in alarms(synth)["gru4rec-dev-endpoint-4xx-rate"]["Metrics"]}
    (expression,) = [query for query in metrics.values() if "Expression" in query]
    assert expression["Expression"] == "100 * errors / invocations" and expression["ReturnData"] is True
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "Invocation4XXErrors"
    assert metrics["invocations"]["MetricStat"]["Metric"]["MetricName"] == "Invocations"
    assert {metrics[key]["MetricStat"]["Stat"] for key in ("errors", "invocations")} == {"Sum"}


def test_a_pipeline_alarm_counts_failed_timed_out_and_aborted_executions(synth):
    queries = alarms(synth)["gru4rec-dev-events-failures"]["Metrics"]
    counted = {query["MetricStat"]["Metric"]["MetricName"] for query in queries if "MetricStat" in query}
    assert counted == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    arns = {marker(dimension["Value"]) for query in queries if "MetricStat" in query
            for dimension in query["MetricStat"]["Metric"]["Dimensions"]}
    assert {arn.rsplit(":", 1)[-1] for arn in arns} == {"gru4rec-dev-events"}


def test_every_alarm_of_the_stage_is_on_the_dashboard(synth):
    body = json.loads(dashboard_body(synth))
    (widget,) = [widget for widget in body["widgets"] if widget["type"] == "alarm"]
    shown = [arn.rsplit(":alarm:", 1)[-1] for arn in widget["properties"]["alarms"]]
    endpoint_alarms = {body["Properties"]["AlarmName"] for body in
                       resources(synth.template_dict("endpoint"), "AWS::CloudWatch::Alarm").values()}
    assert sorted(shown) == sorted(set(alarms(synth)) | endpoint_alarms)
    # shown by name, so the dashboard waits for this stack's alarms through DependsOn
    monitoring = synth.template_dict("monitoring")
    (dashboard,) = resources(monitoring, "AWS::CloudWatch::Dashboard").values()
    assert set(dashboard["DependsOn"]) == set(resources(monitoring, "AWS::CloudWatch::Alarm"))


# --- the budget -----------------------------------------------------------------------------------

def budgets_statements(result, stack: str, resource_type: str, path: tuple[str, ...]) -> list[dict]:
    found = []
    for body in resources(result.template_dict(stack), resource_type).values():
        document = body["Properties"]
        for key in path:
            document = document[key]
        found += [statement for statement in document["Statement"]
                  if isinstance(statement.get("Principal"), dict)
                  and statement["Principal"].get("Service") == "budgets.amazonaws.com"]
    return found


def test_no_budget_and_no_grant_to_budgets_without_a_budget(synth):
    assert synth.config.monthly_budget_usd is None
    assert resources(synth.template_dict("monitoring"), "AWS::Budgets::Budget") == {}
    assert budgets_statements(synth, "endpoint", "AWS::SNS::TopicPolicy", ("PolicyDocument",)) == []
    assert budgets_statements(synth, "storage", "AWS::KMS::Key", ("KeyPolicy",)) == []


def test_the_budget_is_the_stages_tagged_cost_with_two_notifications(budgeted):
    (budget,) = resources(budgeted.template_dict("monitoring"), "AWS::Budgets::Budget").values()
    data = budget["Properties"]["Budget"]
    assert (data["BudgetType"], data["TimeUnit"], data["BudgetLimit"]) == (
        "COST",
        "MONTHLY",
        {"Amount": 50, "Unit": "USD"},
    )
    # the tag every resource of the stage carries, as a cost allocation tag
    (key,) = resources(budgeted.template_dict("storage"), "AWS::KMS::Key").values()
    assert {"Key": "stage", "Value": "dev"} in key["Properties"]["Tags"]
    assert data["CostFilters"] == {"TagKeyValue": ["user:stage$dev"]}
    notifications = {(entry["Notification"]["NotificationType"], entry["Notification"]["Threshold"],
                      entry["Notification"]["ThresholdType"]): [(subscriber["SubscriptionType"],
                                                                 marker(subscriber["Address"]).rsplit(":", 1)[-1])
                                                                for subscriber in entry["Subscribers"]]
                     for entry in budget["Properties"]["NotificationsWithSubscribers"]}
    assert notifications == {("ACTUAL", 75, "PERCENTAGE"): [("SNS", "gru4rec-dev-endpoint-alarms")],
                             ("FORECASTED", 100, "PERCENTAGE"): [("SNS", "gru4rec-dev-endpoint-alarms")]}


def test_budgets_may_publish_to_the_topic_and_use_its_key(budgeted):
    (topic_grant,) = budgets_statements(budgeted, "endpoint", "AWS::SNS::TopicPolicy", ("PolicyDocument",))
    assert topic_grant["Effect"] == "Allow" and topic_grant["Action"] == "sns:Publish"
    assert marker(topic_grant["Condition"]["ArnLike"]["aws:SourceArn"]) == "arn:aws:budgets::<AWS::AccountId>:*"
    assert topic_grant["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    (key_grant,) = budgets_statements(budgeted, "storage", "AWS::KMS::Key", ("KeyPolicy",))
    assert sorted(key_grant["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    (topic_arn,) = key_grant["Condition"]["StringEquals"].values()
    assert marker(topic_arn).rsplit(":", 1)[-1] == "gru4rec-dev-endpoint-alarms"
    budget_text = dashboard_body(budgeted)
    assert "Budget gru4rec-dev-monthly" in budget_text and "75% actual" in budget_text


def test_parliament_finds_nothing_in_the_policies_that_let_budgets_publish(budgeted):
    granting = [policy for policy in AppPolicies(budgeted.templates).documents()
                if "budgets.amazonaws.com" in json.dumps(policy.document)]
    assert {policy.stack for policy in granting} == {"Gru4Rec-Dev-Storage", "Gru4Rec-Dev-Endpoint"}
    assert [line for policy in granting for line in parliament_findings(policy)] == []


def test_the_budgeted_serverless_stage_passes_cdk_nag_and_cfn_lint(budgeted):
    assert budgeted.nag_error is None
    findings = []
    for name, template in budgeted.templates.items():
        findings += [
            f"{name}: {match}" for match in lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS))
        ]
    assert findings == []


# --- settings -------------------------------------------------------------------------------------

def test_budget_settings_are_converted(artifact_path):
    assert AppConfig.from_mapping({"initial_model_artifact": artifact_path}).monthly_budget_usd is None
    assert (
        AppConfig.from_mapping({"initial_model_artifact": artifact_path, "monthly_budget_usd": ""}).monthly_budget_usd
        is None
    )
    assert (
        AppConfig.from_mapping({"initial_model_artifact": artifact_path, "monthly_budget_usd": "50"}).monthly_budget_usd
        == 50.0
    )


@pytest.mark.parametrize(
    "key, value",
    [
        ("monthly_budget_usd", 0),
        ("monthly_budget_usd", "-5"),
        ("monthly_budget_usd", "fifty"),
        ("monthly_budget_usd", "nan"),
        ("budget_actual_percent", 0),
        ("budget_forecast_percent", 5000),
        ("api_5xx_alarm_threshold", 0),
        ("api_5xx_alarm_threshold", "1.5"),
        ("endpoint_4xx_alarm_percent", 0),
        ("endpoint_4xx_alarm_percent", 101),
    ],
)
def test_bad_monitoring_settings_name_their_key(artifact_path, key, value):
    with pytest.raises(ConfigError, match=f"context key '{key}'"):
        AppConfig.from_mapping({"initial_model_artifact": artifact_path, key: value})


@pytest.fixture
def artifact_path(dummy_model_artifact) -> str:
    return str(dummy_model_artifact)
