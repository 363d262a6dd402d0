"""AWS's documented rules that no emulator, linter or cdk-nag enforces, as checks on a synthesized app.

Each :class:`Rule` names the page that states it and checks an :class:`AppView` (every template of one app,
intrinsics resolved as :class:`~tests.support.policy_documents.AppPolicies` resolves them, state machine
definitions parsed); it returns one line per breach. SageMaker's limits on names and guardrails are read from
botocore's service model (botocore validates neither lengths nor patterns nor maxima).
"""
from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import botocore.session

from tests.support.pipelines import evaluate
from tests.support.policy_documents import ACCOUNT, REGION, AppPolicies

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
SDK = "arn:aws:states:::aws-sdk:"
OPTIMIZED = "arn:aws:states:::"
# Families whose instances carry local NVMe storage (a "d" attribute, or one of these), per the SageMaker
# storage page cited by the rule; written out here, apart from the app's own list
NVME_FAMILIES = {"g5", "g6", "g6e", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"}
ALARM_ARN = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{{}}"


@dataclass(frozen=True)
class Rule:
    name: str
    page: str
    check: Callable[[AppView], list[str]]


@dataclass(frozen=True)
class Machine:
    """One state machine: its stack, name, role ARN and states (definition resolved)."""

    stack: str
    name: str
    role: str
    states: dict[str, dict]

    def calls(self, action: str) -> Iterator[tuple[str, dict]]:
        """(state name, Arguments) of every task calling ``action`` (``sagemaker:createModel``, ...): an SDK
        integration, or an optimized one, .sync or not."""
        for name, state in self.states.items():
            resource = state.get("Resource", "")
            if resource in (f"{SDK}{action}", f"{OPTIMIZED}{action}", f"{OPTIMIZED}{action}.sync"):
                yield name, state.get("Arguments", {})


class _Resolver(AppPolicies):
    """AppPolicies with the stack in the name of every role that has no name of its own: CloudFormation names
    such roles <stack>-<logical id>-<suffix>, so two stacks' ``StateMachineRole`` are two roles."""

    def _name(self, stack: str, logical_id: str, name_property: str) -> str:
        resource = self._resource(stack, logical_id)
        if resource["Type"] == "AWS::IAM::Role" and "RoleName" not in resource.get("Properties", {}):
            return f"{stack.lower()}-{logical_id.lower()}"
        return super()._name(stack, logical_id, name_property)


class AppView:
    """The templates of one app (stack name -> template dict), read as AWS would."""

    def __init__(self, templates: dict[str, dict]):
        self.templates = templates
        self.policies = _Resolver(templates)

    def resources(self, kind: str) -> Iterator[tuple[str, str, dict]]:
        """(stack, logical id, properties resolved) of every resource of type ``kind``."""
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == kind:
                    yield stack, logical_id, self.policies.resolve(stack, resource.get("Properties", {}))

    @cached_property
    def machines(self) -> list[Machine]:
        found = []
        for stack, _, properties in self.resources("AWS::StepFunctions::StateMachine"):
            definition = json.loads(properties["DefinitionString"])
            found.append(Machine(stack, properties["StateMachineName"], properties["RoleArn"], definition["States"]))
        return found

    @cached_property
    def identity_statements(self) -> dict[str, list[dict]]:
        """Role name -> the Allow statements of every identity policy attached to it."""
        by_role: dict[str, list[dict]] = {}
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                properties = resource.get("Properties", {})
                if resource["Type"] == "AWS::IAM::Policy":
                    roles = self.policies.resolve(stack, properties.get("Roles", []))
                    document = self.policies.resolve(stack, properties["PolicyDocument"])
                elif resource["Type"] == "AWS::IAM::Role":
                    roles = [self.policies.resolve(stack, {"Ref": logical_id})]
                    document = {"Statement": [s for p in self.policies.resolve(stack, properties.get("Policies", []))
                                              for s in p["PolicyDocument"]["Statement"]]}
                else:
                    continue
                for role in roles:
                    by_role.setdefault(role, []).extend(
                        s for s in _as_list(document["Statement"]) if s["Effect"] == "Allow"
                    )
        return by_role

    def role_statements(self, role_arn: str) -> list[dict]:
        return self.identity_statements.get(role_arn.rsplit("/", 1)[-1], [])

    def allows(self, role_arn: str, action: str, resource: str) -> bool:
        """Whether an Allow statement of the role names ``action`` on ``resource`` (conditions aside)."""
        return any(_matches(statement.get("Action", []), action) and _matches(statement.get("Resource", []), resource)
                   for statement in self.role_statements(role_arn))

    def listable_prefixes(self, role_arn: str, bucket_arn: str) -> list[str]:
        """The ``s3:prefix`` patterns under which the role may list ``bucket_arn`` ('*' without a condition)."""
        patterns = []
        for statement in self.role_statements(role_arn):
            if _matches(statement.get("Action", []), "s3:ListBucket") and _matches(
                statement.get("Resource", []), bucket_arn
            ):
                condition = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", "*")
                patterns += _as_list(condition)
        return patterns


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _matches(patterns: Any, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), pattern.lower()) for pattern in _as_list(patterns))


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


# --- ModelDataSource exclusions ---------------------------------------------------------------------

def model_data_source_exclusions(app: AppView) -> list[str]:
    """No ModelDataSource in a model that Batch Transform runs or a serverless endpoint serves."""
    found = []
    for machine in app.machines:
        transforms = any(True for _ in machine.calls("sagemaker:createTransformJob"))
        serverless = any(
            "ServerlessConfig" in variant
            for _, arguments in machine.calls("sagemaker:createEndpointConfig")
            for variant in arguments.get("ProductionVariants", [])
        )
        for state, arguments in machine.calls("sagemaker:createModel"):
            if "ModelDataSource" in arguments.get("PrimaryContainer", {}) and (transforms or serverless):
                use = "Batch Transform" if transforms else "a serverless endpoint"
                found.append(f"{machine.name} / {state}: ModelDataSource in a model for {use}")
    for stack, logical_id, model in _serverless_models(app):
        if "ModelDataSource" in model.get("PrimaryContainer", {}):
            found.append(f"{stack}/{logical_id}: ModelDataSource in a model of a serverless endpoint")
    return found


def _serverless_models(app: AppView) -> Iterator[tuple[str, str, dict]]:
    """The CloudFormation models named by a serverless variant of an endpoint config of the same stack (a
    ``GetAtt`` of ``ModelName`` resolves to ``<logical id>-modelname``, as AppPolicies spells attributes)."""
    for stack, _, config in app.resources("AWS::SageMaker::EndpointConfig"):
        names = {v["ModelName"] for v in config["ProductionVariants"] if "ServerlessConfig" in v}
        for model_stack, logical_id, model in app.resources("AWS::SageMaker::Model"):
            if model_stack == stack and f"{logical_id.lower()}-modelname" in names:
                yield model_stack, logical_id, model


# --- serverless exclusions --------------------------------------------------------------------------

def serverless_exclusions(app: AppView) -> list[str]:
    """A serverless variant's config has no data capture and no volume key; its models no network isolation and
    no VPC, and their container is told it serves at most 4 MB payloads; provisioned concurrency within maximum."""
    found = []
    configs = [(f"{s}/{i}", c) for s, i, c in app.resources("AWS::SageMaker::EndpointConfig")]
    configs += [
        (f"{m.name} / {state}", a) for m in app.machines for state, a in m.calls("sagemaker:createEndpointConfig")
    ]
    for where, config in configs:
        if not any("ServerlessConfig" in v for v in config.get("ProductionVariants", [])):
            continue
        found += [f"{where}: {key} on a serverless endpoint" for key in ("DataCaptureConfig", "KmsKeyId", "VpcConfig")
                  if key in config]
        for variant in config["ProductionVariants"]:
            serverless = variant.get("ServerlessConfig", {})
            if serverless.get("ProvisionedConcurrency", 0) > serverless.get("MaxConcurrency", 0):
                found.append(f"{where}: provisioned concurrency above the maximum concurrency")
    models = [(f"{s}/{i}", m) for s, i, m in _serverless_models(app)]
    models += [(f"{m.name} / {state}", a) for m in app.machines
               if any("ServerlessConfig" in v for _, c in m.calls("sagemaker:createEndpointConfig")
                      for v in c.get("ProductionVariants", []))
               for state, a in m.calls("sagemaker:createModel")]
    for where, model in models:
        if model.get("EnableNetworkIsolation"):
            found.append(f"{where}: network isolation on a serverless endpoint's model")
        if "VpcConfig" in model:
            found.append(f"{where}: VpcConfig on a serverless endpoint's model")
        if model.get("PrimaryContainer", {}).get("Environment", {}).get("SAGEMAKER_SERVERLESS") != "true":
            found.append(f"{where}: the container is not told it serves a serverless endpoint (4 MB payloads)")
    return found


# --- NVMe instance types ------------------------------------------------------------------------------

def has_nvme(instance_type: str) -> bool:
    family = instance_type.split(".")[1]
    match = re.fullmatch(r"[a-z]+\d+(?P<attributes>[a-z-]*)", family)
    return family in NVME_FAMILIES or bool(match and "d" in match.group("attributes"))


def nvme_without_volume_keys(app: AppView) -> list[str]:
    """No volume key where the instance type has local NVMe storage (training, transform, endpoint)."""
    found = []
    for machine in app.machines:
        for state, arguments in machine.calls("sagemaker:createTrainingJob"):
            found += _volume_key_problem(
                f"{machine.name} / {state}", arguments.get("ResourceConfig", {}), "VolumeKmsKeyId"
            )
        for state, arguments in machine.calls("sagemaker:createTransformJob"):
            found += _volume_key_problem(
                f"{machine.name} / {state}", arguments.get("TransformResources", {}), "VolumeKmsKeyId"
            )
        for state, arguments in machine.calls("sagemaker:createEndpointConfig"):
            found += _endpoint_key_problem(f"{machine.name} / {state}", arguments)
    for stack, logical_id, config in app.resources("AWS::SageMaker::EndpointConfig"):
        found += _endpoint_key_problem(f"{stack}/{logical_id}", config)
    return found


def _volume_key_problem(where: str, resources: dict, key: str) -> list[str]:
    instance_type = resources.get("InstanceType", "")
    return [f"{where}: {key} with {instance_type}"] if key in resources and has_nvme(instance_type) else []


def _endpoint_key_problem(where: str, config: dict) -> list[str]:
    types = [v["InstanceType"] for v in config.get("ProductionVariants", []) if "InstanceType" in v]
    return [f"{where}: KmsKeyId with {t}" for t in types if "KmsKeyId" in config and has_nvme(t)]


# --- names ------------------------------------------------------------------------------------------

NAMED_CALLS = {
    "sagemaker:createTrainingJob": ("TrainingJobName", "TrainingJobName"),
    "sagemaker:createTransformJob": ("TransformJobName", "TransformJobName"),
    "sagemaker:createModel": ("ModelName", "ModelName"),
    "sagemaker:createEndpointConfig": ("EndpointConfigName", "EndpointConfigName"),
}


def name_limits(app: AppView) -> list[str]:
    """Every SageMaker name a pipeline makes (suffixes included) within the API's length and pattern."""
    found = []
    for machine in app.machines:
        for variables in _name_variables(machine):
            for action, (argument, shape) in NAMED_CALLS.items():
                for state, arguments in machine.calls(action):
                    if argument in arguments:
                        name = (
                            evaluate(arguments[argument], variables)
                            if arguments[argument].startswith("{%")
                            else arguments[argument]
                        )
                        found += [f"{machine.name} / {state}: {p}" for p in sagemaker_name_problems(shape, name)]
    for _, _, endpoint in app.resources("AWS::SageMaker::Endpoint"):
        found += sagemaker_name_problems("EndpointName", endpoint["EndpointName"])
    return found


def _name_variables(machine: Machine) -> list[dict]:
    """Every value ``$jobName`` takes: as the machine's first state assigns it, then as a later state re-assigns it
    (the refit's ``<gated job>-refit``), with ``$gatedJob`` the first one."""
    first = machine.states.get("Name the job") or machine.states.get("Name the run") or {}
    expression = first.get("Assign", {}).get("jobName")
    if not expression:
        return [{}]
    context = {
        "Execution": {"StartTime": "2026-12-31T23:59:59.999Z", "Id": f"arn:aws:states:::execution:{machine.name}:x"}
    }
    job = evaluate(expression, {}, {"context": context})
    # a rollout of a registered version reads $jobName from the version (a name a training state made, checked here)
    later = [state["Assign"]["jobName"] for state in machine.states.values()
             if state is not first and "jobName" in state.get("Assign", {})
             and "$states.result" not in state["Assign"]["jobName"]]
    names = [job] + [evaluate(e, {"jobName": job, "gatedJob": job}) for e in later]
    return [{"jobName": name, "gatedJob": job} for name in names]


def sagemaker_name_problems(shape: str, name: str) -> list[str]:
    limits = SAGEMAKER.shape_for(shape).metadata
    problems = []
    if len(name) > limits["max"]:
        problems.append(f"{shape} {name!r} is {len(name)} characters, more than {limits['max']}")
    if not re.fullmatch(limits["pattern"], name):
        problems.append(f"{shape} {name!r} does not match {limits['pattern']}")
    return problems


# --- publishers of topics ----------------------------------------------------------------------------

PUBLISHERS = {"AWS::CloudWatch::Alarm": "cloudwatch.amazonaws.com", "AWS::Budgets::Budget": "budgets.amazonaws.com"}


def topic_publishers(app: AppView) -> Iterator[tuple[str, str, str]]:
    """(where, topic ARN, service principal) of every alarm action and budget notification."""
    for stack, logical_id, alarm in app.resources("AWS::CloudWatch::Alarm"):
        for action in alarm.get("AlarmActions", []) + alarm.get("OKActions", []):
            if action.startswith("arn:aws:sns:"):
                yield f"{stack}/{logical_id}", action, PUBLISHERS["AWS::CloudWatch::Alarm"]
    for stack, logical_id, budget in app.resources("AWS::Budgets::Budget"):
        for notification in budget.get("NotificationsWithSubscribers", []):
            for subscriber in notification["Subscribers"]:
                if subscriber["SubscriptionType"] == "SNS":
                    yield f"{stack}/{logical_id}", subscriber["Address"], PUBLISHERS["AWS::Budgets::Budget"]


def role_publishers(app: AppView) -> Iterator[tuple[str, str, str]]:
    """(where, topic ARN, role ARN) of every EventBridge target and state machine task that publishes with a role."""
    for stack, logical_id, rule in app.resources("AWS::Events::Rule"):
        for target in rule.get("Targets", []):
            if target["Arn"].startswith("arn:aws:sns:"):
                yield f"{stack}/{logical_id}", target["Arn"], target.get("RoleArn", "")
    for machine in app.machines:
        for state, arguments in machine.calls("sns:publish"):
            yield f"{machine.name} / {state}", arguments["TopicArn"], machine.role


def publishers_let_in(app: AppView) -> list[str]:
    """A topic with a policy of its own names each publishing service; its key lets the service make data keys.
    A publisher acting through a role (EventBridge targets, state machines) needs sns:Publish and the key's data
    keys in that role (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html)."""
    topics = {f"arn:aws:sns:{REGION}:{ACCOUNT}:{properties['TopicName']}": (stack, properties)
              for stack, _, properties in app.resources("AWS::SNS::Topic") if "TopicName" in properties}
    policies = {topic: properties["PolicyDocument"] for _, _, properties in app.resources("AWS::SNS::TopicPolicy")
                for topic in properties["Topics"]}
    keys = {f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical_id.lower()}": properties["KeyPolicy"]
            for _, logical_id, properties in app.resources("AWS::KMS::Key")}
    found = []
    for where, topic, service in topic_publishers(app):
        if topic in policies and not _service_allowed(policies[topic], service, "sns:Publish", topic):
            found.append(f"{where}: the policy of {topic} does not let {service} publish")
        key = topics.get(topic, (None, {}))[1].get("KmsMasterKeyId")
        if key in keys and not all(_service_allowed(keys[key], service, action, "*")
                                   for action in ("kms:GenerateDataKey", "kms:Decrypt")):
            found.append(f"{where}: the key of {topic} does not let {service} make data keys")
    for where, topic, role in role_publishers(app):
        key = topics.get(topic, (None, {}))[1].get("KmsMasterKeyId")
        needed = [("sns:Publish", topic)] + ([("kms:GenerateDataKey", key), ("kms:Decrypt", key)] if key else [])
        found += [f"{where}: {role or 'no role'} may not {action} on {resource}" for action, resource in needed
                  if not app.allows(role, action, resource)]
    return found


def _service_allowed(document: dict, service: str, action: str, resource: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and service in _as_list(statement.get("Principal", {}).get("Service", []))
        and _matches(statement["Action"], action)
        and (resource == "*" or _matches(statement["Resource"], resource))
        for statement in _as_list(document["Statement"])
    )


# --- guardrails ---------------------------------------------------------------------------------------

def deployment_configs(app: AppView) -> Iterator[tuple[str, dict, list[str]]]:
    """(where, DeploymentConfig, roles that must read its alarms) of the endpoint (none while an A/B test changes its
    variants: tests/infra/stacks/test_endpoint_ab.py) and of every UpdateEndpoint call."""
    models = {f"{logical_id.lower()}-modelname": model["ExecutionRoleArn"]
              for _, logical_id, model in app.resources("AWS::SageMaker::Model")}
    configs = {f"{logical_id.lower()}-endpointconfigname": config
               for _, logical_id, config in app.resources("AWS::SageMaker::EndpointConfig")}
    for stack, logical_id, endpoint in app.resources("AWS::SageMaker::Endpoint"):
        if "DeploymentConfig" not in endpoint:
            continue
        config = configs[endpoint["EndpointConfigName"]]
        roles = [models[v["ModelName"]] for v in config["ProductionVariants"]]
        yield f"{stack}/{logical_id}", endpoint["DeploymentConfig"], roles
    for machine in app.machines:
        roles = [a["ExecutionRoleArn"] for _, a in machine.calls("sagemaker:createModel")]
        for state, arguments in machine.calls("sagemaker:updateEndpoint"):
            if "DeploymentConfig" in arguments:
                yield f"{machine.name} / {state}", arguments["DeploymentConfig"], roles + [machine.role]


def alarms_readable(app: AppView) -> list[str]:
    """The endpoint's execution role, and each caller that updates the endpoint, may DescribeAlarms the rollback
    alarms."""
    found = []
    for where, config, roles in deployment_configs(app):
        for alarm in config.get("AutoRollbackConfiguration", {}).get("Alarms", []):
            arn = ALARM_ARN.format(alarm["AlarmName"])
            found += [f"{where}: {role} may not DescribeAlarms {alarm['AlarmName']}" for role in roles
                      if not app.allows(role, "cloudwatch:DescribeAlarms", arn)]
    return found


def guardrail_limits(app: AppView) -> list[str]:
    """Blue/green limits: a canary at most 50% and a linear step 10-50% of capacity, waits and timeout in range,
    the timeout longer than the waits, 1-10 alarms."""
    found = []
    for where, config, _ in deployment_configs(app):
        found += [f"{where}: {problem}" for problem in _blue_green_problems(config)]
    return found


def _range_problem(shape: str, member: str, value: int) -> str | None:
    limits = SAGEMAKER.shape_for(shape).members[member].metadata
    if not limits.get("min", value) <= value <= limits.get("max", value):
        return f"{member} {value} outside {limits.get('min')}-{limits.get('max')}"
    return None


def _blue_green_problems(config: dict) -> list[str]:
    policy = config["BlueGreenUpdatePolicy"]
    routing = policy["TrafficRoutingConfiguration"]
    problems = [
        _range_problem("TrafficRoutingConfig", "WaitIntervalInSeconds", routing["WaitIntervalInSeconds"]),
        _range_problem("BlueGreenUpdatePolicy", "TerminationWaitInSeconds", policy.get("TerminationWaitInSeconds", 0)),
        _range_problem(
            "BlueGreenUpdatePolicy",
            "MaximumExecutionTimeoutInSeconds",
            policy.get("MaximumExecutionTimeoutInSeconds", 3600),
        ),
        _range_problem(
            "AutoRollbackConfig", "Alarms", len(config.get("AutoRollbackConfiguration", {}).get("Alarms", []))
        ),
    ]
    steps = 1
    for size_key, (low, high), shifts in (
        ("CanarySize", (1, 50), lambda v: 2),
        ("LinearStepSize", (10, 50), lambda v: math.ceil(100 / v)),
    ):
        if size_key in routing and routing[size_key]["Type"] == "CAPACITY_PERCENT":
            value = routing[size_key]["Value"]
            if not low <= value <= high:
                problems.append(f"{size_key} {value}% outside {low}-{high}%")
            steps = shifts(value)
    waited = steps * routing["WaitIntervalInSeconds"] + policy.get("TerminationWaitInSeconds", 0)
    if policy.get("MaximumExecutionTimeoutInSeconds", 3600) <= waited:
        problems.append(f"MaximumExecutionTimeoutInSeconds not above the {waited} s the rollout waits")
    return [problem for problem in problems if problem]


# --- what each role reads ------------------------------------------------------------------------------

def reads_are_granted(app: AppView) -> list[str]:
    """Each training job's role may list every channel's prefix (the champion's, the live model, included) and get
    its objects; each model's role may get its archive (the first model's copy, a pipeline's model)."""
    found = []
    for machine in app.machines:
        for state, arguments in machine.calls("sagemaker:createTrainingJob"):
            for uri in _channel_uris(machine, arguments):
                found += [
                    f"{machine.name} / {state}: {p}"
                    for p in _read_problems(app, arguments["RoleArn"], uri, listed=True)
                ]
        for state, arguments in machine.calls("sagemaker:createTransformJob"):
            source = arguments["TransformInput"]["DataSource"]["S3DataSource"]
            if source["S3DataType"] == "S3Prefix":
                role = _transform_model_role(machine)
                uri = _sample(source["S3Uri"], machine)
                found += [f"{machine.name} / {state}: {p}" for p in _read_problems(app, role, uri, listed=True)]
        for state, arguments in machine.calls("sagemaker:createModel"):
            for uri in _model_uris(app, machine):
                found += [f"{machine.name} / {state}: {p}" for p in
                          _read_problems(app, arguments["ExecutionRoleArn"], uri, listed=False)]
    for stack, logical_id, model in app.resources("AWS::SageMaker::Model"):
        for uri in _initial_model_uris(app):
            found += [
                f"{stack}/{logical_id}: {p}" for p in _read_problems(app, model["ExecutionRoleArn"], uri, listed=False)
            ]
    return found


SAMPLE_VARIABLES = {"run": "run-1", "jobName": "job-1", "key": "sessions/incoming/a.jsonl"}


def _sample(expression: str, machine: Machine) -> str:
    """A ``{% %}`` URI with the run's variables at sample values (the bucket as the machine's first state sets it)."""
    if not expression.startswith("{%"):
        return expression
    first = machine.states.get("Name the job") or machine.states.get("Name the run") or {}
    return evaluate(expression, {**SAMPLE_VARIABLES, "bucket": first.get("Assign", {}).get("bucket")})


def _channel_uris(machine: Machine, arguments: dict) -> list[str]:
    """The S3 URIs of a training job's channels: the first state's channel variables and the live model (champion)."""
    assigned = machine.states["Name the job"]["Assign"]
    uris = [value["DataSource"]["S3DataSource"]["S3Uri"] for value in assigned.values()
            if isinstance(value, dict) and "ChannelName" in value]
    if "$champion" in json.dumps(arguments.get("InputDataConfig", "")):
        uris.append(f"s3://{assigned['bucket']}/models/job-1/output/model.tar.gz")
    return uris


def _model_uris(app: AppView, machine: Machine) -> list[str]:
    """The archives a pipeline's model may name: a pipeline's model under models/ and the first model's copy."""
    bucket = (
        (machine.states.get("Name the job") or machine.states.get("Name the run") or {}).get("Assign", {}).get("bucket")
    )
    return [f"s3://{bucket}/models/job-1/output/model.tar.gz"] + _initial_model_uris(app)


def _initial_model_uris(app: AppView) -> list[str]:
    """The first model's copy, which the Endpoint stack's live-model read answers before the endpoint exists."""
    return [p["FirstModelData"] for _, _, p in app.resources("Custom::LiveModelData")]


def _transform_model_role(machine: Machine) -> str:
    (role,) = {a["ExecutionRoleArn"] for _, a in machine.calls("sagemaker:createModel")}
    return role


def _read_problems(app: AppView, role: str, uri: str, listed: bool) -> list[str]:
    bucket, key = _split_s3(uri)
    problems = []
    if listed and not any(fnmatch.fnmatchcase(key, pattern) for pattern in
                          app.listable_prefixes(role, f"arn:aws:s3:::{bucket}")):
        problems.append(f"{role.rsplit('/', 1)[-1]} may not list {bucket} under {key}")
    sample = key + ("object" if key.endswith("/") else "")
    if not app.allows(role, "s3:GetObject", f"arn:aws:s3:::{bucket}/{sample}"):
        problems.append(f"{role.rsplit('/', 1)[-1]} may not get s3://{bucket}/{sample}")
    return problems


# --- dynamic references --------------------------------------------------------------------------------

DYNAMIC_SSM = re.compile(r"\{\{resolve:ssm:([^}:]+)(?::\d+)?\}\}")


def ssm_references_resolve(app: AppView) -> list[str]:
    """No ``{{resolve:ssm:NAME}}`` of a parameter its own stack creates: CloudFormation resolves the reference while
    it builds the change set, before the stack's resources exist, so a first deploy fails."""
    found = []
    for stack, template in app.templates.items():
        created = {
            r["Properties"].get("Name") for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"
        }
        for name in DYNAMIC_SSM.findall(json.dumps(template["Resources"])):
            if name in created:
                found.append(f"{stack}: resolves {name}, a parameter the same stack creates")
    return found


# WAF's log destinations: "Your log group name must start with aws-waf-logs-" (the same for a bucket or a
# Firehose stream): https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html
WAF_LOG_PREFIX = "aws-waf-logs-"
_WAF_DESTINATION_NAME = re.compile(
    r"arn:[^:]+:(?:logs:[^:]*:[^:]*:log-group:([^:]+)(?::\*)?|s3:::([^/]+)|firehose:[^:]*:[^:]*:deliverystream/(.+))"
)
COGNITO_IDENTITY = "cognito-identity.amazonaws.com"


def waf_log_destinations(app: AppView) -> list[str]:
    """Every WAF logging destination is named with WAF's prefix (a log group, bucket or Firehose stream)."""
    found = []
    for stack, logical_id, properties in app.resources("AWS::WAFv2::LoggingConfiguration"):
        for destination in properties["LogDestinationConfigs"]:
            match = _WAF_DESTINATION_NAME.fullmatch(destination)
            name = next((group for group in match.groups() if group), "") if match else ""
            if not name.startswith(WAF_LOG_PREFIX):
                found.append(f"{stack}/{logical_id}: logs to {destination}, whose name does not start {WAF_LOG_PREFIX}")
    return found


def _pool_roles(app: AppView) -> Iterator[tuple[str, str, str, str]]:
    """(stack, identity pool id, "authenticated" or "unauthenticated", role ARN) of every role attachment."""
    for stack, _, properties in app.resources("AWS::Cognito::IdentityPoolRoleAttachment"):
        for kind, role in properties.get("Roles", {}).items():
            yield stack, properties["IdentityPoolId"], kind, role


def _trust_documents(app: AppView) -> dict[str, dict]:
    """Role ARN -> its trust policy, resolved."""
    return {app.policies.resolve(stack, {"Fn::GetAtt": [logical_id, "Arn"]}): properties["AssumeRolePolicyDocument"]
            for stack, logical_id, properties in app.resources("AWS::IAM::Role")}


def pool_roles_trust_their_pool(app: AppView) -> list[str]:
    """An identity pool's role trusts cognito-identity only for its own pool (``aud``) and its kind of identity
    (``amr``): without both, an OpenID token of any pool, or a guest's, could assume it."""
    trusts, found = _trust_documents(app), []
    for stack, pool, kind, role in _pool_roles(app):
        wanted = {
            "StringEquals": {f"{COGNITO_IDENTITY}:aud": pool},
            "ForAnyValue:StringLike": {f"{COGNITO_IDENTITY}:amr": kind},
        }
        statements = [s for s in _as_list(trusts[role]["Statement"])
                      if s.get("Principal", {}).get("Federated") == COGNITO_IDENTITY and s["Effect"] == "Allow"]
        if not statements or any(s.get("Condition") != wanted for s in statements):
            found.append(f"{stack}: {role} ({kind} role of {pool}) trusts {COGNITO_IDENTITY} without {wanted}")
    return found


def guests_can_call_the_api(app: AppView) -> list[str]:
    """A guest role granted execute-api sits in a pool that allows the basic flow: in the enhanced flow Cognito
    intersects a guest's role with AmazonCognitoUnAuthedIdentitiesSessionPolicy, whose actions include no
    execute-api one, so every call would be refused."""
    classic = {app.policies.resolve(stack, {"Ref": logical_id}): properties.get("AllowClassicFlow") is True
               for stack, logical_id, properties in app.resources("AWS::Cognito::IdentityPool")}
    found = []
    for stack, pool, kind, role in _pool_roles(app):
        grants = [
            a for s in app.role_statements(role) for a in _as_list(s.get("Action", [])) if a.startswith("execute-api:")
        ]
        if kind == "unauthenticated" and grants and not classic[pool]:
            found.append(f"{stack}: guest role {role} of {pool} is granted {grants}, which the enhanced flow's session "
                         "policy withholds, and the pool does not allow the basic flow")
    return found


RULES = [
    Rule(
        "ModelDataSource exclusions",
        "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ContainerDefinition.html",
        model_data_source_exclusions,
    ),
    Rule(
        "serverless exclusions",
        "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html",
        serverless_exclusions,
    ),
    Rule(
        "NVMe types take no volume key",
        "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ResourceConfig.html",
        nvme_without_volume_keys,
    ),
    Rule(
        "name lengths and patterns",
        "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html",
        name_limits,
    ),
    Rule(
        "publishing services let in by topic and key policies",
        "https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html",
        publishers_let_in,
    ),
    Rule(
        "DescribeAlarms on the rollback alarms",
        "https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html",
        alarms_readable,
    ),
    Rule(
        "ListBucket and GetObject cover every channel and model",
        "https://docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html",
        reads_are_granted,
    ),
    Rule(
        "guardrail limits",
        "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_BlueGreenUpdatePolicy.html",
        guardrail_limits,
    ),
    Rule(
        "ssm dynamic references name existing parameters",
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/dynamic-references-ssm.html",
        ssm_references_resolve,
    ),
    Rule(
        "WAF log destinations named aws-waf-logs-",
        "https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html",
        waf_log_destinations,
    ),
    Rule(
        "identity pool roles trust their own pool and identity kind",
        "https://docs.aws.amazon.com/cognito/latest/developerguide/role-trust-and-permissions.html",
        pool_roles_trust_their_pool,
    ),
    Rule(
        "guests reach execute-api only through the basic flow",
        "https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonCognitoUnAuthedIdentitiesSessionPolicy.html",
        guests_can_call_the_api,
    ),
]
