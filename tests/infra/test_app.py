"""The whole app: stack names and outputs the operator CLI reads, cdk-nag, cfn-lint, IAM actions."""
import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks
from cfnlint.api import ManualArgs, lint

from infra.config import AppConfig
from infra.lint_notes import RoleDependsOnNote
from infra.stacks.storage import StorageStack
from tests.infra.conftest import cdk_json_context, environment_agnostic

# stack key -> (stack name, the outputs the operator CLI reads)
CONTRACT = {
    "storage": ("Gru4Rec-Dev-Storage", {"DataBucketName"}),
    "image": ("Gru4Rec-Dev-Image", {"RepositoryUri"}),
    "endpoint": ("Gru4Rec-Dev-Endpoint", {"EndpointName"}),
    "api": ("Gru4Rec-Dev-Api", {"ApiUrl", "ApiKeyId"}),
    "training": ("Gru4Rec-Dev-Training", {"TrainingStateMachineArn"}),
    "batch": ("Gru4Rec-Dev-Batch", {"BatchStateMachineArn"}),
}
# every cdk-nag acknowledgement of the storage, image, endpoint and API stacks (construct path -> rule ids);
# the reasons are in the code
LOG_GROUP = "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:{}"
LOG_STREAMS = LOG_GROUP + ":log-stream:*"
ACKNOWLEDGED = {
    "/Gru4Rec-Dev-Storage/AccessLogs": {"AwsSolutions-S1"},
    "/Gru4Rec-Dev-Storage/AWS679f53fac002430cb0da5b7982bd2287": {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    },
    "/Gru4Rec-Dev-Image/ImageCopyPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        f"AwsSolutions-IAM5[Resource::{LOG_STREAMS.format('/aws/lambda/Gru4Rec-Dev-Image-*')}]",
    },
    "/Gru4Rec-Dev-Endpoint/ModelPolicy": {
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-IAM5[Resource::gru4rec-dev-data-bucket-arn/models/*]",
        "AwsSolutions-IAM5[Resource::gru4rec-dev-data-bucket-arn/capture/*]",
        f"AwsSolutions-IAM5[Resource::{LOG_GROUP.format('/aws/sagemaker/Endpoints/gru4rec-dev')}:*]",
    },
    "/Gru4Rec-Dev-Endpoint/AWS679f53fac002430cb0da5b7982bd2287": {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
    },
    "/Gru4Rec-Dev-Endpoint/FirstModelVersion/Register": {
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model-package/gru4rec-dev/*]",
    },
    "/Gru4Rec-Dev-Endpoint/LiveModelData/Policy": {
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
        "<LiveModelDataLogsC4B8B9DF>:log-stream:*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint-config/*]",
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:model/*]",
    },
    "/Gru4Rec-Dev-Api/Api": {
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
    },
    "/Gru4Rec-Dev-Api/Api/DeploymentStage.dev": {"AwsSolutions-APIG3"},
    "/Gru4Rec-Dev-Api/Api/Default/recommendations/POST": {"AwsSolutions-COG4"},
}
LINT_REGIONS = ["us-east-1", "eu-west-1"]


def test_stack_names_and_outputs_follow_the_agreed_contract(synth):
    for key, (name, outputs) in CONTRACT.items():
        template = synth.template_dict(key)
        assert synth.stacks[key].stack_name == name
        assert outputs <= set(template.get("Outputs", {})), f"{name} lacks outputs {outputs - set(template['Outputs'])}"


def test_cdk_nag_finds_nothing_unacknowledged(synth):
    report = synth.outdir / "validation-report.json"
    details = report.read_text() if report.exists() else ""
    assert synth.nag_error is None, f"{synth.nag_error}\n{details}"


def test_acknowledgements_are_exactly_the_listed_ones_each_with_a_reason(synth):
    mine = {"Gru4Rec-Dev-Storage", "Gru4Rec-Dev-Image", "Gru4Rec-Dev-Endpoint", "Gru4Rec-Dev-Api"}
    acknowledged = {path: rules for path, rules in synth.acknowledged_rules().items() if path.split("/")[1] in mine}
    assert {path: set(rules) for path, rules in acknowledged.items()} == ACKNOWLEDGED
    assert all(len(reason) > 30 for rules in acknowledged.values() for reason in rules.values())


def test_cdk_nag_is_wired_to_fail_on_findings_and_to_honour_acknowledgements(tmp_path):
    """Negative control for the mechanism the app relies on: a bucket without SSL enforcement."""
    def synth_bucket(outdir, acknowledge: bool) -> None:
        app = cdk.App(outdir=str(outdir))
        stack = cdk.Stack(app, "Control")
        bucket = s3.Bucket(stack, "Bucket", enforce_ssl=False)
        cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(id="AwsSolutions-S1", reason="not the point here"))
        if acknowledge:
            cdk.Validations.of(bucket).acknowledge(cdk.Acknowledgment(id="AwsSolutions-S10", reason="control case"))
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
        app.synth()

    with pytest.raises(RuntimeError, match="(?s)ValidationFailed.*AwsSolutions-S10"):
        synth_bucket(tmp_path / "failing", acknowledge=False)
    assert "AwsSolutions-S10" in (tmp_path / "failing" / "validation-report.json").read_text()
    synth_bucket(tmp_path / "passing", acknowledge=True)


def test_cfn_lint_finds_no_errors_or_warnings(synth):
    findings = []
    for name, template in synth.templates.items():
        matches = lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS))
        findings += [f"{name}: {match}" for match in matches]
    assert findings == []


def test_cfn_lint_ignores_are_few_and_justified(synth):
    """The only ignore is W3005 on functions and state machines that DependsOn the role they reference by GetAtt."""
    ignored = 0
    for name, template in synth.templates.items():
        for logical_id, resource in template["Resources"].items():
            note = resource.get("Metadata", {}).get("cfn-lint")
            if note is None:
                continue
            ignored += 1
            assert note == {"config": {"ignore_checks": ["W3005"]}}, f"{name}/{logical_id}"
            assert resource["Type"] in RoleDependsOnNote.RESOURCE_TYPES
            role = resource["Properties"].get("Role", resource["Properties"].get("RoleArn"))
            assert role["Fn::GetAtt"][0] in resource["DependsOn"], f"{name}/{logical_id}: the reason does not hold"
    assert ignored >= 1


def _identity_policy_documents(template):
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield logical_id, properties["PolicyDocument"]
        if resource["Type"] == "AWS::IAM::Role":
            for policy in properties.get("Policies", []):
                yield logical_id, policy["PolicyDocument"]


def test_no_iam_policy_in_any_stack_grants_a_wildcard_action(synth):
    wildcards = []
    for name, template in synth.templates.items():
        for logical_id, document in _identity_policy_documents(template):
            for statement in document["Statement"]:
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                wildcards += [f"{name}/{logical_id}: {action}" for action in actions if "*" in action]
                assert "NotAction" not in statement, f"{name}/{logical_id} uses NotAction"
    assert wildcards == []


def test_first_model_asset_hash_is_fixed_by_its_version_not_its_content(tmp_path):
    """Rebuilding model.tar.gz must not change the storage template; a new initial_model_version does."""
    def storage_template(content: bytes, version: str) -> dict:
        artifact = tmp_path / f"{len(content)}-{version}.tar.gz"
        artifact.write_bytes(content)
        config = AppConfig.from_mapping({"initial_model_artifact": str(artifact), "initial_model_version": version})
        app = cdk.App(context={**cdk_json_context(), "aws:cdk:disable-asset-staging": True},
                      outdir=str(tmp_path / f"out-{len(content)}-{version}"))
        with environment_agnostic():
            stack = StorageStack(app, "Storage", config)
        return app.synth().get_stack_by_name(stack.stack_name).template

    first = storage_template(b"first build", "initial-1")
    assert storage_template(b"a rebuilt, different archive", "initial-1") == first
    assert storage_template(b"first build", "initial-2") != first
