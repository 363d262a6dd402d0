"""Deploy rehearsal: every synthesized stack is created in moto's CloudFormation, in the order of
the cloud assembly's dependencies, as `cdk deploy --all` would, and must reach CREATE_COMPLETE.

Before the stacks: the bootstrap version parameter in SSM and the file assets in the bootstrap
bucket (as `cdk deploy` publishes them). Cross-stack references go through moto's exports.

What moto 5.2.5 cannot create is declared below and printed; the test checks that the
declarations match exactly what the templates hold, so nothing is dropped unnoticed. The Endpoint
stack's ``Custom::LiveModelData`` is answered by its own function's read (infra/functions/live_model_data)
in moto, the way CloudFormation calls a custom resource: when it is created, and again only when its
properties change (:class:`LiveModelReads`).

The last tests deploy a second time, as ``cdk deploy --all`` after the training pipeline has rolled
the endpoint (simulated by moving moto's endpoint to the pipeline's configuration): unchanged templates,
then templates changed where they could reach the live model.
"""
from __future__ import annotations

import copy
import io
import json
import re
import zipfile
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.cloudformation.parsing import NULL_MODELS, get_model_map

from infra.functions.live_model_data.index import live_model_data
from infra.ops import training
from infra.ops.deployment import PARTS, load_deployment, stack_name
from infra.stacks.live_model_data import RESOURCE_TYPE as LIVE_MODEL_DATA

# moto warns about each type it skips; they are declared and printed below instead
pytestmark = [
    pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning"),
]

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
BOOTSTRAP_VERSION = "30"
STAND_IN = {"Type": "AWS::CloudFormation::WaitConditionHandle"}

# Resources replaced by a WaitConditionHandle under the same logical id (so Refs and DependsOn
# still resolve), by stack and type, with the reason.
STAND_INS = {
    ("storage", "Custom::AWS"): (
        "the CDK's AwsCustomResource Lambda makes one SDK call (copy the first model to its .tar.gz key); the "
        "rehearsal makes the same Create call with boto3 (run_sdk_calls)"
    ),
    ("endpoint", "Custom::AWS"): (
        "the CDK's AwsCustomResource Lambda registers the first model as the group's first version; the rehearsal "
        "makes the same Create call with boto3 (run_sdk_calls)"
    ),
    ("endpoint", "Custom::LiveModelData"): (
        "the stack's function reads the live model's archive from the endpoint; the rehearsal runs the same read "
        "in moto and puts its answer where the template reads it (LiveModelReads)"
    ),
    ("image", "Custom::CDKECRDeployment"): (
        "cdk-ecr-deployment's Lambda copies the built images into the stage's repository; moto "
        "would have to run that Lambda in Docker, and no image is built here"
    ),
}

# Resource types whose Tags are removed before creating them (the resource itself is created).
TAGS_DROPPED = {
    "AWS::KMS::Key": "moto 5.2.5 tags a CloudFormation-made key by TagKey/TagValue: KeyError",
}

# Resource types moto's CloudFormation accepts but does not create (it skips them with a
# warning), by stack: the rehearsal says nothing about these. The SNS subscriptions are the
# e-mail subscriptions of the failure and alarm topics (the tests set notification_email).
NOT_CREATED_BY_MOTO = {
    "storage": {"AWS::S3::BucketPolicy", "AWS::SageMaker::ModelPackageGroup"},
    "image": set(),
    "endpoint": {
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::Subscription",
        "AWS::SNS::TopicPolicy",
    },
    "api": {
        "AWS::ApiGateway::Account",
        "AWS::ApiGateway::ApiKey",
        "AWS::ApiGateway::GatewayResponse",
        "AWS::ApiGateway::Model",
        "AWS::ApiGateway::RequestValidator",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey",
    },
    "training": {"AWS::SNS::Subscription", "AWS::SNS::TopicPolicy"},
    # moto 5.2.5's CloudFormation has no Athena workgroup or Glue database/table: the events pipeline's
    # catalog and workgroup are checked in tests/infra/stacks/test_event_sessions.py, its state machine here
    "batch": {
        "AWS::Athena::WorkGroup",
        "AWS::Glue::Database",
        "AWS::Glue::Table",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::Subscription",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
    },
    # the dashboard is created; moto 5.2.5's CloudFormation has no CloudWatch alarm, nor an AWS Budgets budget
    # (AWS::Budgets::Budget, present only with monthly_budget_usd set, which this rehearsal's context leaves unset):
    # both are checked in tests/infra/stacks/test_monitoring.py
    "monitoring": {"AWS::CloudWatch::Alarm"},
}


def needs_stand_in(resource_type: str) -> bool:
    """Custom resources: moto would invoke their Lambda, which needs Docker."""
    return resource_type.startswith("Custom::") or resource_type == (
        "AWS::CloudFormation::CustomResource"
    )


def deployment_order(manifest: dict) -> list[str]:
    """Stack artifact ids, each after the stacks it depends on."""
    stacks = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join(path + (name,))}"
        if name in order:
            return
        for dependency in stacks[name].get("dependencies", []):
            if dependency in stacks:
                visit(dependency, path + (name,))
        order.append(name)

    for name in stacks:
        visit(name, ())
    return order


def with_stand_ins(template: dict, stack_key: str, replaced: list, untagged: list) -> dict:
    """A copy of the template with the declared stand-ins and tag removals applied."""
    patched = copy.deepcopy(template)
    for logical_id, resource in patched["Resources"].items():
        kind = resource["Type"]
        if needs_stand_in(kind):
            replaced.append((stack_key, logical_id, kind))
            if (stack_key, kind) in STAND_INS:
                patched["Resources"][logical_id] = {
                    **STAND_IN,
                    **({"DependsOn": resource["DependsOn"]} if "DependsOn" in resource else {}),
                }
        elif kind in TAGS_DROPPED and "Tags" in resource.get("Properties", {}):
            untagged.append((stack_key, logical_id, kind))
            del resource["Properties"]["Tags"]
    return patched


def substitute(text: str) -> str:
    return (
        text.replace("${AWS::AccountId}", ACCOUNT)
        .replace("${AWS::Region}", REGION)
        .replace("${AWS::Partition}", "aws")
    )


def asset_bytes(source: Path, packaging: str) -> bytes:
    """A file asset as `cdk deploy` publishes it: the file, or a directory zipped."""
    if packaging == "zip" and source.is_dir():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(source).as_posix())
        return buffer.getvalue()
    return source.read_bytes()


def publish_file_assets(s3, outdir: Path, asset_manifest: dict) -> list[str]:
    """Upload the manifest's file assets to their (bootstrap) buckets; returns their S3 URIs."""
    published = []
    for asset in asset_manifest.get("files", {}).values():
        source = asset["source"]
        body = asset_bytes(outdir / source["path"], source.get("packaging", "file"))
        for destination in asset["destinations"].values():
            bucket, key = substitute(destination["bucketName"]), destination["objectKey"]
            if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            published.append(f"s3://{bucket}/{key}")
    return published


class LiveModelReads:
    """CloudFormation's rule for a custom resource, which moto would run in Docker: the provider is called when the
    resource is created, and on a stack update only when its properties changed
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-update.html); in between,
    ``Fn::GetAtt`` keeps the last answer. Each ``Custom::LiveModelData`` is answered by the function's own read
    (``live_model_data``) against moto, and its ``Fn::GetAtt`` replaced by the answer."""

    def __init__(self, session):
        self.session = session
        self.deployed: dict[tuple[str, str], tuple[dict, str]] = {}
        self.reads: list[tuple[str, str]] = []

    def apply(self, stack: str, template: dict) -> dict:
        answers = {}
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != LIVE_MODEL_DATA:
                continue
            last = self.deployed.get((stack, logical_id))
            properties = resource["Properties"]
            answer = last[1] if last and last[0] == properties else self._read(stack, properties)
            self.deployed[(stack, logical_id)] = (copy.deepcopy(properties), answer)
            answers[logical_id] = answer
        return _with_answers(copy.deepcopy(template), answers)

    def _read(self, stack: str, properties: dict) -> str:
        cloudformation = self.session.client("cloudformation")
        try:
            outputs = cloudformation.describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
        except cloudformation.exceptions.ClientError:
            outputs = []
        # moto names the endpoint after the stack (it ignores EndpointName): the stack's output says which
        endpoint = next((o["OutputValue"] for o in outputs if o["OutputKey"] == "EndpointName"),
                        properties["EndpointName"])
        answer = live_model_data(self.session.client("sagemaker"), endpoint,
                                 resolve_text(self.session, stack, properties["FirstModelData"]))
        self.reads.append((stack, answer))
        return answer


def _with_answers(node, answers: dict[str, str]):
    """``node`` with each ``{"Fn::GetAtt": [id, "ModelDataUrl"]}`` of an answered resource replaced by the answer."""
    if isinstance(node, dict):
        target = node.get("Fn::GetAtt")
        if isinstance(target, list) and target[0] in answers:
            return answers[target[0]]
        return {key: _with_answers(value, answers) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_answers(value, answers) for value in node]
    return node


def create_model_package_groups(session, stack: str, template: dict) -> None:
    """moto's CloudFormation skips AWS::SageMaker::ModelPackageGroup (NOT_CREATED_BY_MOTO): create each group by its
    name, so that a later stack's registration of the first model finds it."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::SageMaker::ModelPackageGroup":
            session.client("sagemaker").create_model_package_group(
                ModelPackageGroupName=resource["Properties"]["ModelPackageGroupName"])


PSEUDO = {"AWS::URLSuffix": "amazonaws.com", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}


def resolve_text(session, stack: str, value) -> str:
    """A template value of strings, joins, imports and references as moto's deployment resolves it (references:
    the physical ids of ``stack``'s resources, once it exists)."""
    cloudformation = session.client("cloudformation")
    try:
        physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in cloudformation
                    .list_stack_resources(StackName=stack)["StackResourceSummaries"]}
    except cloudformation.exceptions.ClientError:
        physical = {}
    exports = {export["Name"]: export["Value"] for export in cloudformation.list_exports()["Exports"]}

    def text(value) -> str:
        if isinstance(value, str):
            return value
        if "Fn::Join" in value:
            return "".join(text(part) for part in value["Fn::Join"][1])
        if "Fn::Sub" in value:
            return substitute(value["Fn::Sub"])
        if "Fn::ImportValue" in value:
            return exports[text(value["Fn::ImportValue"])]
        if "Fn::Select" in value:
            index, items = value["Fn::Select"]
            return text(items["Fn::Split"][1]).split(items["Fn::Split"][0])[index]
        return PSEUDO.get(value["Ref"]) or physical[value["Ref"]]

    return text(value)


def run_sdk_calls(session, stack: str, template: dict) -> list[str]:
    """Make each ``Custom::AWS`` resource's Create call in moto, as the AwsCustomResource Lambda would once the
    stack's other resources exist; references resolve to moto's physical ids. Returns "service.action" per call."""
    made = []
    for resource in template["Resources"].values():
        if resource["Type"] == "Custom::AWS":
            call = json.loads(resolve_text(session, stack, resource["Properties"]["Create"]))
            action = re.sub(r"(?<!^)(?=[A-Z])", "_", call["action"]).lower()
            getattr(session.client(call["service"].lower()), action)(**call["parameters"])
            made.append(f"{call['service']}.{call['action']}")
    return made


def stack_events(cloudformation, name: str) -> str:
    events = cloudformation.describe_stack_events(StackName=name)["StackEvents"]
    return "\n".join(
        f"  {e['LogicalResourceId']} {e['ResourceType']} {e['ResourceStatus']} "
        f"{e.get('ResourceStatusReason', '')}"
        for e in events
    )


@pytest.fixture(scope="module")
def rehearsal(synth):
    """The assembly deployed into moto, stack by stack; moto stays active for this module."""
    with rehearse(synth) as record:
        yield record


@contextmanager
def rehearse(synth):
    """Deploy ``synth``'s assembly into moto stack by stack; the record of what happened while moto is active."""
    with pytest.MonkeyPatch.context() as env, mock_aws():
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_PROFILE", raising=False)
        session = boto3.Session(region_name=REGION)
        bootstrap(session)
        yield deploy_assembly(session, synth)


def bootstrap(session) -> None:
    """What ``cdk bootstrap`` leaves that the templates check: the bootstrap version parameter."""
    session.client("ssm").put_parameter(
        Name="/cdk-bootstrap/hnb659fds/version", Value=BOOTSTRAP_VERSION, Type="String"
    )


def deploy_assembly(session, synth) -> dict:
    """Publish the file assets and create every stack of ``synth``'s assembly in (an active) moto, in order;
    the record of what happened."""
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    keys = {stack.stack_name: key for key, stack in synth.stacks.items()}
    record = {"order": deployment_order(manifest), "replaced": [], "untagged": [], "stacks": {}}
    s3, cloudformation = session.client("s3"), session.client("cloudformation")
    references = LiveModelReads(session)
    record["assets"], record["sdk_calls"] = [], []
    for name in record["order"]:
        artifact = manifest["artifacts"][name]
        for dependency in artifact.get("dependencies", []):
            if manifest["artifacts"][dependency]["type"] == "cdk:asset-manifest":
                asset_file = manifest["artifacts"][dependency]["properties"]["file"]
                assets = json.loads((synth.outdir / asset_file).read_text())
                record["assets"] += publish_file_assets(s3, synth.outdir, assets)
        template = with_stand_ins(
            references.apply(name, synth.templates[name]), keys[name], record["replaced"], record["untagged"]
        )
        cloudformation.create_stack(
            StackName=name,
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        if described["StackStatus"] == "CREATE_COMPLETE":
            create_model_package_groups(session, name, synth.templates[name])
            record["sdk_calls"] += run_sdk_calls(session, name, synth.templates[name])
        record["stacks"][name] = (described["StackStatus"], stack_events(cloudformation, name))
    record["session"] = session
    record["references"] = references
    record["keys"] = keys
    return record


def test_every_stack_is_created_in_dependency_order(rehearsal, synth):
    print("\norder:", " -> ".join(rehearsal["order"]))
    print("stand-ins (WaitConditionHandle, same logical id):")
    for stack_key, logical_id, kind in rehearsal["replaced"]:
        print(f"  {stack_key}: {logical_id} {kind}: {STAND_INS.get((stack_key, kind), '?')}")
    print("tags dropped:")
    for stack_key, logical_id, kind in rehearsal["untagged"]:
        print(f"  {stack_key}: {logical_id} {kind}: {TAGS_DROPPED[kind]}")
    assert set(rehearsal["order"]) == set(synth.templates)
    failed = {
        name: f"{status}\n{events}"
        for name, (status, events) in rehearsal["stacks"].items()
        if status != "CREATE_COMPLETE"
    }
    assert not failed, "\n".join(f"{name}: {problem}" for name, problem in failed.items())


def test_each_stack_comes_after_the_stacks_it_imports_from(rehearsal, synth):
    """Every Fn::ImportValue names an export of a stack created earlier."""
    exported_by: dict[str, str] = {}
    for name in rehearsal["order"]:
        for output in synth.templates[name].get("Outputs", {}).values():
            export = output.get("Export", {}).get("Name")
            if isinstance(export, str):
                exported_by[export] = name
    position = {name: index for index, name in enumerate(rehearsal["order"])}
    for name in rehearsal["order"]:
        for imported in _imports(synth.templates[name]):
            assert imported in exported_by, f"{name} imports {imported!r}, which nothing exports"
            assert position[exported_by[imported]] < position[name]


def _imports(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["Fn::ImportValue"]] if isinstance(node.get("Fn::ImportValue"), str) else []
        return found + [name for value in node.values() for name in _imports(value)]
    if isinstance(node, list):
        return [name for value in node for name in _imports(value)]
    return []


def test_the_stand_ins_are_exactly_what_moto_cannot_create(rehearsal, synth):
    needing = {
        (key, resource["Type"])
        for key, stack in synth.stacks.items()
        for resource in synth.templates[stack.stack_name]["Resources"].values()
        if needs_stand_in(resource["Type"])
    }
    assert set(STAND_INS) == needing
    assert {kind for _, _, kind in rehearsal["untagged"]} == set(TAGS_DROPPED)


def test_what_moto_skips_is_declared(rehearsal, synth):
    supported = set(get_model_map()) | set(NULL_MODELS)
    skipped = {
        key: {
            resource["Type"]
            for resource in synth.templates[stack.stack_name]["Resources"].values()
            if resource["Type"] not in supported and not needs_stand_in(resource["Type"])
        }
        for key, stack in synth.stacks.items()
    }
    print("\nnot created by moto (skipped):")
    for key, kinds in skipped.items():
        print(f"  {key}: {', '.join(sorted(kinds)) or '-'}")
    assert skipped == {key: NOT_CREATED_BY_MOTO[key] for key in synth.stacks}


# The outputs the operator CLI reads, by stack (the agreed interface)
CLI_OUTPUTS = {
    "Storage": {"DataBucketName"},
    "Image": {"RepositoryUri"},
    "Endpoint": {"EndpointName"},
    "Api": {"ApiUrl", "ApiKeyId"},
    "Training": {"TrainingStateMachineArn", "TrainWindowDays"},
    "Batch": {"BatchStateMachineArn"},
    "Monitoring": {"DashboardName"},
}


def test_every_stack_carries_the_outputs_the_cli_reads(synth):
    parts = _stack_parts(synth, synth.config.stage)
    unknown = [name for name, part in parts.items() if part is None]
    assert unknown == [], "stacks the operator CLI does not know by name"
    for name, part in parts.items():
        assert CLI_OUTPUTS[part] <= set(synth.templates[name].get("Outputs", {})), name


def test_the_operator_cli_finds_the_deployed_stage(rehearsal, synth):
    """The CLI's Deployment, read from moto's stacks, names resources that exist there (moto
    creates no API key or API stage, so the key is not looked up)."""
    session = rehearsal["session"]
    deployment = load_deployment(session, synth.config.stage)
    session.client("s3").head_bucket(Bucket=deployment.data_bucket)
    repository = deployment.repository_uri.rsplit("/", 1)[-1]
    session.client("ecr").describe_repositories(repositoryNames=[repository])
    session.client("sagemaker").describe_endpoint(EndpointName=deployment.endpoint_name)
    assert deployment.api_url.startswith("https://")
    for arn in (deployment.training_state_machine_arn, deployment.batch_state_machine_arn):
        session.client("stepfunctions").describe_state_machine(stateMachineArn=arn)


def _stack_parts(synth, stage: str) -> dict[str, str | None]:
    """Each synthesized stack name -> the CLI's part with that name (None: the CLI lacks it)."""
    by_name = {stack_name(stage, part): part for part in PARTS}
    return {name: by_name.get(name) for name in synth.templates}


def test_the_first_deploy_serves_the_first_model_and_writes_no_parameter(rehearsal, synth):
    """The first model's asset is copied to a .tar.gz key, the endpoint's model serves it (the live-model read finds
    no endpoint yet), the registry's first version names it, and no SSM parameter but the bootstrap's exists."""
    session = rehearsal["session"]
    ssm, s3 = session.client("ssm"), session.client("s3")
    assert sorted(rehearsal["sdk_calls"]) == ["S3.copyObject", "SageMaker.createModelPackage"]
    deployment = load_deployment(session, synth.config.stage)
    model_data = f"s3://{deployment.data_bucket}/initial-models/{synth.config.initial_model_version}/model.tar.gz"
    bucket, key = model_data.removeprefix("s3://").split("/", 1)
    (asset,) = [uri for uri in rehearsal["assets"] if uri.endswith(".gz")]
    asset_bucket, asset_key = asset.removeprefix("s3://").split("/", 1)
    assert (s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            == s3.get_object(Bucket=asset_bucket, Key=asset_key)["Body"].read())
    endpoint_stack = synth.stacks["endpoint"].stack_name
    assert (endpoint_stack, model_data) in rehearsal["references"].reads
    assert [p["Name"] for p in ssm.describe_parameters()["Parameters"]] == ["/cdk-bootstrap/hnb659fds/version"]
    # moto names the endpoint after the stack (it ignores EndpointName): the output says which
    assert _served_model_data(session, deployment.endpoint_name) == [model_data]
    (version,) = session.client("sagemaker").list_model_packages(
        ModelPackageGroupName=synth.config.model_package_group_name)["ModelPackageSummaryList"]
    described = session.client("sagemaker").describe_model_package(ModelPackageName=version["ModelPackageArn"])
    assert described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == model_data


def _served_model_data(session, endpoint_name: str) -> list[str]:
    """The model data of the models the endpoint's configuration names."""
    sagemaker = session.client("sagemaker")
    config = sagemaker.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    data = []
    for variant in sagemaker.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]:
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
        containers = [model["PrimaryContainer"]] if "PrimaryContainer" in model else model["Containers"]
        data += [c["ModelDataUrl"] for c in containers]
    return data


def test_a_one_off_job_copies_the_deployed_training_job(rehearsal, synth):
    """The one-off settings read from the real training definition, and a job started from
    them through boto3."""
    from infra.stacks.training import hyperparameter_defaults

    session, config = rehearsal["session"], synth.config
    deployment = load_deployment(session, config.stage)
    settings = training.read_one_off_settings(
        session.client("stepfunctions"), deployment.training_state_machine_arn
    )
    image_outputs = deployment.stacks["Image"].outputs
    assert settings.image_uri == image_outputs["TrainImageUri"]
    assert settings.instance_type == config.training_instance_type
    assert settings.spot is config.use_spot
    assert settings.network_isolation is True
    defaults = hyperparameter_defaults(config)
    assert settings.default_hyperparameters == defaults
    assert "recall@20" in {metric["Name"] for metric in settings.metric_definitions}
    session.client("iam").get_role(RoleName=settings.role_arn.rsplit("/", 1)[-1])

    job_name = training.start_one_off_training(
        session.client("sagemaker"),
        config.stage,
        deployment.data_bucket,
        settings,
        {"epochs": "1"},
        deployment.train_window_days,
    )
    job = session.client("sagemaker").describe_training_job(TrainingJobName=job_name)
    assert job["RoleArn"] == settings.role_arn
    assert job["AlgorithmSpecification"]["TrainingImage"] == image_outputs["TrainImageUri"]
    assert job["OutputDataConfig"]["S3OutputPath"] == f"s3://{deployment.data_bucket}/models/"
    assert job["HyperParameters"]["epochs"] == "1"
    assert job["EnableNetworkIsolation"] is True
    assert [c["ChannelName"] for c in job["InputDataConfig"]] == ["train", "test"]
    # the pipeline's data: the window of the last train_window_days days of training/events/, in FastFile mode
    assert deployment.train_window_days == config.train_window_days
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{deployment.data_bucket}/training/events/")
    assert job["AlgorithmSpecification"]["TrainingInputMode"] == "FastFile"
    window = {name: job["HyperParameters"][name] for name in ("window_start", "window_end")}
    assert window == training.training_window(config.train_window_days)


# --- a deploy after the pipeline has rolled the endpoint -------------------------------------------

def _sagemaker_state(session) -> dict:
    """Every model, endpoint config and endpoint, with what an update would change."""
    sagemaker = session.client("sagemaker")
    models = {m["ModelName"]: m["ModelArn"] for m in sagemaker.list_models()["Models"]}
    configs = {
        c["EndpointConfigName"]: c["EndpointConfigArn"] for c in sagemaker.list_endpoint_configs()["EndpointConfigs"]
    }
    endpoints = {e["EndpointName"]: (e["EndpointArn"], e["CreationTime"], e["LastModifiedTime"])
                 for e in sagemaker.list_endpoints()["Endpoints"]}
    return {"models": models, "configs": configs, "endpoints": endpoints}


def _deploy_again(rehearsal, templates: dict[str, dict]) -> None:
    """``cdk deploy --all`` once more: each stack updated in order with its (patched) template."""
    cloudformation = rehearsal["session"].client("cloudformation")
    for name in rehearsal["order"]:
        template = with_stand_ins(rehearsal["references"].apply(name, templates[name]), rehearsal["keys"][name], [], [])
        cloudformation.update_stack(StackName=name, TemplateBody=json.dumps(template),
                                    Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
        status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        assert status == "UPDATE_COMPLETE", f"{name}: {status}\n{stack_events(cloudformation, name)}"


def _changed_templates(synth) -> dict[str, dict]:
    """The templates with the changes that used to reach the live model: a new description of the Storage stack, a
    new first model for the Endpoint's read, new tags on the Endpoint's model, and a change of its container's
    environment (which replaces it) made where the stack makes it, in the model and in the read's inputs alike."""
    templates = copy.deepcopy(synth.templates)
    storage = templates[synth.stacks["storage"].stack_name]
    storage["Description"] += " (changed)"
    endpoint = templates[synth.stacks["endpoint"].stack_name]
    for resource in endpoint["Resources"].values():
        if resource["Type"] == "AWS::SageMaker::Model":
            resource["Properties"].setdefault("Tags", []).append({"Key": "cost-centre", "Value": "42"})
            resource["Properties"]["PrimaryContainer"]["Environment"]["LOG_LEVEL"] = "debug"
        if resource["Type"] == LIVE_MODEL_DATA:
            resource["Properties"]["Model"]["PrimaryContainer"]["Environment"]["LOG_LEVEL"] = "debug"
            parts = resource["Properties"]["FirstModelData"]["Fn::Join"][1]
            parts[-1] = parts[-1].replace("initial-1", "initial-2")
    return templates


def _roll(session, deployment, job: str, job_data: str) -> None:
    """What the training pipeline's rollout leaves: a model and endpoint config named after the job, the endpoint
    serving it (moto has no UpdateEndpoint: its endpoint is moved to the configuration)."""
    from moto.sagemaker.models import sagemaker_backends

    sagemaker = session.client("sagemaker")
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=deployment.endpoint_name)["EndpointConfigName"])
    served = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    sagemaker.create_model(ModelName=job, ExecutionRoleArn=served["ExecutionRoleArn"], PrimaryContainer={
        **served["PrimaryContainer"], "ModelDataUrl": job_data})
    variant = {k: v for k, v in config["ProductionVariants"][0].items()
               if k in ("VariantName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight")}
    sagemaker.create_endpoint_config(EndpointConfigName=job, ProductionVariants=[{**variant, "ModelName": job}])
    sagemaker_backends[ACCOUNT][REGION].endpoints[deployment.endpoint_name].endpoint_config_name = job


@pytest.fixture(scope="module")
def redeployed(rehearsal, synth):
    """Deploy; the pipeline rolls the endpoint to its model; deploy again unchanged; then deploy with changed
    templates. The state after each step."""
    session, config = rehearsal["session"], synth.config
    job = "gru4rec-dev-train-20261129-021710-0a1b2c3d"
    deployment = load_deployment(session, config.stage)
    job_data = f"s3://{deployment.data_bucket}/models/{job}/output/model.tar.gz"
    _roll(session, deployment, job, job_data)
    states = {"rolled": (_sagemaker_state(session), _served_model_data(session, deployment.endpoint_name))}
    reads = len(rehearsal["references"].reads)
    _deploy_again(rehearsal, synth.templates)
    states["unchanged"] = (_sagemaker_state(session), _served_model_data(session, deployment.endpoint_name))
    states["reads_unchanged"] = rehearsal["references"].reads[reads:]
    _deploy_again(rehearsal, _changed_templates(synth))
    states["reads_changed"] = rehearsal["references"].reads[reads:]
    states["changed"] = (_sagemaker_state(session), None)
    endpoint_stack = synth.stacks["endpoint"].stack_name
    owned = [r["PhysicalResourceId"].rsplit("/", 1)[-1] for r in session.client("cloudformation").list_stack_resources(
        StackName=endpoint_stack)["StackResourceSummaries"] if r["ResourceType"] == "AWS::SageMaker::Model"]
    sagemaker = session.client("sagemaker")
    states["stack_model_data"] = [sagemaker.describe_model(ModelName=name)["PrimaryContainer"]["ModelDataUrl"]
                                  for name in owned]
    states["job_data"], states["job"] = job_data, job
    return states


def test_a_deploy_after_a_pipeline_roll_changes_no_model_config_or_endpoint(redeployed):
    rolled, unchanged = redeployed["rolled"], redeployed["unchanged"]
    assert unchanged[0] == rolled[0]
    assert unchanged[1] == rolled[1] == [redeployed["job_data"]]
    assert redeployed["reads_unchanged"] == [], "unchanged properties: CloudFormation does not call the read again"


def test_a_template_change_to_storage_or_endpoint_never_changes_the_live_model(redeployed, synth):
    """A change that replaces the Endpoint stack's model re-reads the live model first: the new model is built
    from the pipeline's model (so an endpoint update it causes keeps serving it), never from the first model."""
    endpoint_stack = synth.stacks["endpoint"].stack_name
    assert redeployed["reads_changed"] == [(endpoint_stack, redeployed["job_data"])]
    assert redeployed["stack_model_data"] == [redeployed["job_data"]]
    assert redeployed["job"] in redeployed["changed"][0]["models"]


def test_the_reads_rule_would_catch_a_read_of_every_deploy(rehearsal, synth):
    """Negative control of LiveModelReads: a read whose properties changed is read again, one whose properties did
    not is not."""
    reads = LiveModelReads(rehearsal["session"])
    endpoint_stack = synth.stacks["endpoint"].stack_name
    template = synth.templates[endpoint_stack]
    reads.apply(endpoint_stack, template)
    reads.apply(endpoint_stack, template)
    assert len(reads.reads) == 1
    changed = copy.deepcopy(template)
    (resource,) = [r for r in changed["Resources"].values() if r["Type"] == LIVE_MODEL_DATA]
    resource["Properties"]["Model"]["EnableNetworkIsolation"] = False
    reads.apply(endpoint_stack, changed)
    assert len(reads.reads) == 2
