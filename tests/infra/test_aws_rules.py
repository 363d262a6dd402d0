"""AWS's documented rules (tests/support/aws_rules.py), cfn-lint, cdk-nag and parliament, held on every variant.

The variants (tests/infra/conftest.py ``VARIANTS``): the default stage; serverless with provisioned
concurrency; GPU training with NVMe transform and endpoint types; retraining on a schedule and on new data
with a budget; a prod stage with ``api_key`` auth, a linear rollout and ``valid_days=0``; an A/B test with the daily
attribution; a storefront with guest
identities, CORS and the web firewall; a storefront with a Cognito user pool authorizer. Each is synthesized
once per session. Every rule has a negative control: the fault it exists for, planted back into a synthesized
variant, is reported.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable

import pytest
from cfnlint.api import ManualArgs, lint

from tests.infra.conftest import VARIANTS
from tests.support.aws_rules import RULES, AppView, Machine, _pool_roles, has_nvme
from tests.support.policy_documents import AppPolicies
from tests.support.policy_lint import logs_arn_problems, parliament_findings

LINT_REGIONS = ["us-east-1", "eu-west-1"]
# the default stage is linted, nagged and audited by test_app.py and test_policies.py already
CHECKED_HERE = [name for name in VARIANTS if name != "default"]
_PAGE = re.compile(r"https://docs\.aws\.amazon\.com/\S+\.html")


@pytest.fixture(scope="module")
def views() -> dict[str, AppView]:
    return {}


def _view(variants, views: dict[str, AppView], name: str) -> AppView:
    if name not in views:
        views[name] = AppView(variants[name].templates)
    return views[name]


def test_every_rule_cites_the_aws_page_that_states_it():
    assert len(RULES) == 12
    for rule in RULES:
        assert _PAGE.fullmatch(rule.page), rule.name


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
def test_the_rule_holds_on_the_variant(rule, variant, variants, views):
    assert rule.check(_view(variants, views, variant)) == [], f"{rule.name}: {rule.page}"


@pytest.mark.parametrize("variant", CHECKED_HERE)
def test_the_variant_passes_cdk_nag(variant, variants):
    assert variants[variant].nag_error is None


@pytest.mark.parametrize("variant", CHECKED_HERE)
def test_the_variant_passes_cfn_lint(variant, variants):
    """Every template that differs from the default stage's (test_app.py lints those)."""
    default = variants["default"].templates
    differing = {name: t for name, t in variants[variant].templates.items() if default.get(name) != t}
    assert differing, "a variant that changes no template"
    findings = [f"{name}: {match}" for name, template in differing.items()
                for match in lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS))]
    assert findings == []


@pytest.mark.parametrize("variant", CHECKED_HERE)
def test_the_variant_passes_parliament_and_the_logs_arn_rule(variant, variants):
    documents = [d for d in AppPolicies(variants[variant].templates).documents() if d.kind != "trust"]
    assert [line for d in documents for line in parliament_findings(d) + logs_arn_problems(d)] == []


def test_the_variants_are_what_they_say(variants, views):
    """Each variant has what its rules are meant to meet (else a rule could hold for want of a subject)."""
    serverless = _view(variants, views, "serverless")
    (_, _, config), = serverless.resources("AWS::SageMaker::EndpointConfig")
    assert config["ProductionVariants"][0]["ServerlessConfig"]["ProvisionedConcurrency"] == 2
    gpu = _view(variants, views, "gpu_nvme")
    transforms = [
        a["TransformResources"]["InstanceType"]
        for m in gpu.machines
        for _, a in m.calls("sagemaker:createTransformJob")
    ]
    assert transforms and all(has_nvme(t) for t in transforms)
    retraining = _view(variants, views, "retraining")
    assert list(retraining.resources("AWS::Budgets::Budget")) and list(retraining.resources("AWS::Scheduler::Schedule"))
    assert any(m.name.endswith("-training-trigger") for m in retraining.machines)
    prod = _view(variants, views, "prod")
    (_, _, endpoint), = prod.resources("AWS::SageMaker::Endpoint")
    assert endpoint["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "LINEAR"
    assert list(prod.resources("AWS::ApiGateway::UsagePlan"))
    guests = _view(variants, views, "storefront_guests")
    assert list(guests.resources("AWS::WAFv2::LoggingConfiguration"))
    assert [kind for _, _, kind, _ in _pool_roles(guests)] == ["authenticated", "unauthenticated"]
    users = _view(variants, views, "storefront_users")
    (_, _, authorizer), = users.resources("AWS::ApiGateway::Authorizer")
    assert authorizer["Type"] == "COGNITO_USER_POOLS"


# --- negative controls: each fault as it was, planted back ---------------------------------------------

def _planted(variants, variant: str, template_fault: Callable[[dict], None] | None = None,
             machine_fault: Callable[[list[Machine]], None] | None = None) -> AppView:
    """The variant's templates with ``template_fault`` applied (stack name -> template), or its state machines
    with ``machine_fault`` applied."""
    templates = copy.deepcopy(variants[variant].templates)
    if template_fault:
        template_fault(templates)
    view = AppView(templates)
    if machine_fault:
        machine_fault(view.machines)
    return view


def _machine(machines: list[Machine], suffix: str) -> Machine:
    (found,) = [m for m in machines if m.name.endswith(suffix)]
    return found


def _check(rule_name: str, view: AppView) -> list[str]:
    (rule,) = [rule for rule in RULES if rule.name == rule_name]
    return rule.check(view)


def _drop_statement(templates: dict, resource_type: str, sid: str) -> None:
    """Remove the statement ``sid`` from every document of ``resource_type`` (AWS::IAM::Policy,
    AWS::SNS::TopicPolicy)."""
    dropped = 0
    for template in templates.values():
        for resource in template["Resources"].values():
            if resource["Type"] == resource_type:
                statements = resource["Properties"]["PolicyDocument"]["Statement"]
                kept = [s for s in statements if s.get("Sid") != sid]
                dropped += len(statements) - len(kept)
                resource["Properties"]["PolicyDocument"]["Statement"] = kept
    assert dropped, f"no statement {sid} to drop"


def _as_model_data_source(machines: list[Machine], suffix: str) -> None:
    for _, arguments in _machine(machines, suffix).calls("sagemaker:createModel"):
        container = arguments["PrimaryContainer"]
        container["ModelDataSource"] = {
            "S3DataSource": {
                "S3Uri": container.pop("ModelDataUrl"),
                "S3DataType": "S3Object",
                "CompressionType": "Gzip",
            }
        }


@pytest.mark.parametrize("pipeline", ["-batch", "-events"])
def test_model_data_source_in_a_transform_pipeline_is_reported(variants, pipeline):
    view = _planted(variants, "default", machine_fault=lambda machines: _as_model_data_source(machines, pipeline))
    assert [line for line in _check("ModelDataSource exclusions", view) if "Batch Transform" in line]


def test_model_data_source_in_a_serverless_endpoints_models_is_reported(variants):
    def fault(templates):
        for template in templates.values():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::SageMaker::Model":
                    container = resource["Properties"]["PrimaryContainer"]
                    container["ModelDataSource"] = {
                        "S3DataSource": {
                            "S3Uri": container.pop("ModelDataUrl"),
                            "S3DataType": "S3Object",
                            "CompressionType": "Gzip",
                        }
                    }

    view = _planted(variants, "serverless", template_fault=fault,
                    machine_fault=lambda machines: _as_model_data_source(machines, "-training"))
    found = _check("ModelDataSource exclusions", view)
    assert any("Create model" in line and "serverless" in line for line in found)
    assert any("Gru4Rec-Dev-Endpoint" in line for line in found)


def test_data_capture_and_isolation_on_a_serverless_endpoint_are_reported(variants):
    def fault(templates):
        for template in templates.values():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::SageMaker::EndpointConfig":
                    resource["Properties"]["DataCaptureConfig"] = {"EnableCapture": True}
                if resource["Type"] == "AWS::SageMaker::Model":
                    resource["Properties"]["EnableNetworkIsolation"] = True

    found = _check("serverless exclusions", _planted(variants, "serverless", template_fault=fault))
    assert any("DataCaptureConfig" in line for line in found)
    assert any("network isolation" in line for line in found)


def test_a_serverless_model_not_told_of_its_payload_limit_is_reported(variants):
    def fault(machines):
        for _, arguments in _machine(machines, "-training").calls("sagemaker:createModel"):
            arguments["PrimaryContainer"]["Environment"].pop("SAGEMAKER_SERVERLESS")

    assert any(
        "4 MB" in line
        for line in _check("serverless exclusions", _planted(variants, "serverless", machine_fault=fault))
    )


def test_a_volume_key_on_an_nvme_type_is_reported(variants):
    def fault(machines):
        for _, arguments in _machine(machines, "-batch").calls("sagemaker:createTransformJob"):
            arguments["TransformResources"]["VolumeKmsKeyId"] = "arn:aws:kms:us-east-1:123456789012:key/k"

    found = _check("NVMe types take no volume key", _planted(variants, "gpu_nvme", machine_fault=fault))
    assert found == ["gru4rec-dev-batch / Transform: VolumeKmsKeyId with ml.g4dn.xlarge"]


def test_the_nvme_list_knows_the_documented_families():
    assert [has_nvme(t) for t in ("ml.g4dn.xlarge", "ml.m5d.large", "ml.g5.xlarge", "ml.p4d.24xlarge",
                                  "ml.m5.xlarge", "ml.c5.xlarge", "ml.g4.xlarge")] == [True] * 4 + [False] * 3


def test_a_name_longer_than_sagemaker_allows_is_reported(variants):
    """A suffix that pushes the refit job's name past 63 characters: the job, and the model and endpoint config
    named after it once the refit re-assigns $jobName."""
    def fault(machines):
        state = _machine(machines, "-training").states["Refit on the whole window"]
        state["Arguments"]["TrainingJobName"] = "{% $gatedJob & '-refit-on-the-whole-window' %}"
        state["Assign"]["jobName"] = state["Arguments"]["TrainingJobName"]

    found = _check("name lengths and patterns", _planted(variants, "default", machine_fault=fault))
    # every state naming something after $jobName is checked with each value it takes (Train included)
    assert {line.split(":")[0] for line in found} == {
        "gru4rec-dev-training / Train",
        "gru4rec-dev-training / Refit on the whole window",
        "gru4rec-dev-training / Create model",
        "gru4rec-dev-training / Create endpoint config",
    }
    assert all("more than 63" in line for line in found)


def test_a_name_that_breaks_sagemakers_pattern_is_reported(variants):
    def fault(machines):
        _machine(machines, "-batch").states["Name the job"]["Assign"]["jobName"] = "{% 'gru4rec_dev_batch' %}"

    found = _check("name lengths and patterns", _planted(variants, "default", machine_fault=fault))
    assert found and all("does not match" in line for line in found)


def test_a_topic_policy_with_only_the_tls_deny_is_reported(variants):
    """The alarm and failure topics as they were: a policy of their own that names no publishing service."""
    view = _planted(
        variants, "retraining", template_fault=lambda t: _drop_statement(t, "AWS::SNS::TopicPolicy", "AlarmsPublish")
    )
    found = _check("publishing services let in by topic and key policies", view)
    topics = {line.split("the policy of ")[1].split(" ")[0] for line in found}
    assert {topic.rsplit(":", 1)[1] for topic in topics} == {
        "gru4rec-dev-endpoint-alarms", "gru4rec-dev-batch-failures", "gru4rec-dev-training-failures"}


def test_a_publisher_role_without_publish_is_reported(variants):
    """EventBridge publishes abnormal ends with a role of its own: without sns:Publish nothing arrives."""
    view = _planted(
        variants, "default", template_fault=lambda t: _drop_statement(t, "AWS::IAM::Policy", "PublishFailures")
    )
    found = _check("publishing services let in by topic and key policies", view)
    assert len(found) == 3 and all("AbnormalEnds" in line and "may not sns:Publish" in line for line in found)


def test_a_key_that_does_not_let_budgets_in_is_reported(variants):
    def fault(templates):
        for template in templates.values():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::KMS::Key":
                    statements = resource["Properties"]["KeyPolicy"]["Statement"]
                    resource["Properties"]["KeyPolicy"]["Statement"] = [
                        s for s in statements if s.get("Sid") != "BudgetsPublishToStageTopic"]

    found = _check(
        "publishing services let in by topic and key policies", _planted(variants, "retraining", template_fault=fault)
    )
    assert found and all("budgets.amazonaws.com make data keys" in line for line in found)


def test_rollback_alarms_the_roles_cannot_read_are_reported(variants):
    """The endpoint's execution role and the training pipeline as they were: no cloudwatch:DescribeAlarms."""
    view = _planted(
        variants, "prod", template_fault=lambda t: _drop_statement(t, "AWS::IAM::Policy", "ReadRollbackAlarms")
    )
    found = _check("DescribeAlarms on the rollback alarms", view)
    assert any(line.startswith("Gru4Rec-Prod-Endpoint/") and "endpoint-modelrole" in line for line in found)
    assert any(
        line.startswith("gru4rec-prod-training / Update endpoint") and "training-statemachinerole" in line
        for line in found
    )


def test_a_champion_channel_the_training_role_cannot_list_is_reported(variants):
    """The training role as it was: ListBucket under training/ and checkpoints/ only, the live model under models/."""
    def fault(templates):
        for template in templates.values():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::IAM::Policy":
                    for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                        if statement.get("Sid") == "ListTrainingData":
                            statement["Condition"]["StringLike"]["s3:prefix"].remove("models/*")

    found = _check(
        "ListBucket and GetObject cover every channel and model", _planted(variants, "default", template_fault=fault)
    )
    assert found and all("may not list" in line and "under models/" in line for line in found)
    assert {line.split(":")[0] for line in found} == {"gru4rec-dev-training / Train"}


def test_a_model_archive_the_role_cannot_read_is_reported(variants):
    """The first model's copy that the endpoint's role could not get: the endpoint would not start."""
    def fault(templates):
        for template in templates.values():
            for resource in template["Resources"].values():
                if resource["Type"] == "AWS::IAM::Policy":
                    for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                        if statement.get("Sid") == "ReadModelArtifacts":
                            statement["Resource"] = [
                                r for r in statement["Resource"] if "initial-models/" not in json.dumps(r)
                            ]

    found = _check(
        "ListBucket and GetObject cover every channel and model", _planted(variants, "default", template_fault=fault)
    )
    assert any("initial-models/initial-1/model.tar.gz" in line and "may not get" in line for line in found)


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda routing, policy: routing["LinearStepSize"].update(Value=60), "LinearStepSize 60% outside 10-50%"),
        (
            lambda routing, policy: routing.update(WaitIntervalInSeconds=3601),
            "WaitIntervalInSeconds 3601 outside 0-3600",
        ),
        (
            lambda routing, policy: policy.update(MaximumExecutionTimeoutInSeconds=3000),
            "not above the 3600 s the rollout waits",
        ),
    ],
)
def test_guardrails_beyond_sagemakers_limits_are_reported(variants, change, problem):
    def fault(machines):
        for _, arguments in _machine(machines, "-training").calls("sagemaker:updateEndpoint"):
            policy = arguments["DeploymentConfig"]["BlueGreenUpdatePolicy"]
            change(policy["TrafficRoutingConfiguration"], policy)

    found = _check("guardrail limits", _planted(variants, "prod", machine_fault=fault))
    assert any(problem in line for line in found), found
    assert all(line.startswith("gru4rec-prod-training / Update endpoint: ") for line in found)


def test_a_pointer_resolving_a_parameter_of_its_own_stack_is_reported(variants):
    """A live-model pointer as stages once had it: an AWS::SSM::Parameter resolving a seed the same stack creates."""
    def fault(templates):
        storage = templates["Gru4Rec-Dev-Storage"]["Resources"]
        storage["InitialModelData"] = {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": "/gru4rec/dev/initial-model-data", "Type": "String", "Value": "s3://bucket/model.tar.gz"}}
        storage["CurrentModelData"] = {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": "/gru4rec/dev/current-model-data", "Type": "String",
            "Value": "{{resolve:ssm:/gru4rec/dev/initial-model-data}}"}}

    found = _check(
        "ssm dynamic references name existing parameters", _planted(variants, "default", template_fault=fault)
    )
    assert found == [
        "Gru4Rec-Dev-Storage: resolves /gru4rec/dev/initial-model-data, a parameter the same stack creates"
    ]


def _resources_of(templates: dict, resource_type: str) -> list[dict]:
    found = [r for t in templates.values() for r in t["Resources"].values() if r["Type"] == resource_type]
    assert found, f"no {resource_type}"
    return found


def test_a_waf_log_group_without_the_prefix_is_reported(variants):
    def fault(templates):
        for group in _resources_of(templates, "AWS::Logs::LogGroup"):
            if str(group["Properties"]["LogGroupName"]).startswith("aws-waf-logs-"):
                group["Properties"]["LogGroupName"] = "/gru4rec/dev/waf"

    found = _check("WAF log destinations named aws-waf-logs-", _planted(variants, "storefront_guests", fault))
    assert len(found) == 1 and "log-group:/gru4rec/dev/waf" in found[0]


@pytest.mark.parametrize("fault", ["no_audience", "any_identity"])
def test_a_pool_role_trusting_beyond_its_pool_and_kind_is_reported(variants, fault):
    def plant(templates):
        for role in _resources_of(templates, "AWS::IAM::Role"):
            for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
                condition = statement.get("Condition", {})
                if (
                    condition.get("ForAnyValue:StringLike", {}).get("cognito-identity.amazonaws.com:amr")
                    == "unauthenticated"
                ):
                    if fault == "no_audience":
                        del condition["StringEquals"]
                    else:
                        condition["ForAnyValue:StringLike"]["cognito-identity.amazonaws.com:amr"] = "*"

    found = _check(
        "identity pool roles trust their own pool and identity kind", _planted(variants, "storefront_guests", plant)
    )
    assert len(found) == 1 and "unauthenticated role" in found[0]


def test_a_guest_role_in_an_enhanced_flow_only_pool_is_reported(variants):
    def fault(templates):
        for pool in _resources_of(templates, "AWS::Cognito::IdentityPool"):
            pool["Properties"]["AllowClassicFlow"] = False

    found = _check(
        "guests reach execute-api only through the basic flow", _planted(variants, "storefront_guests", fault)
    )
    assert len(found) == 1 and "execute-api:Invoke" in found[0]
