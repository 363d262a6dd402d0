"""Storage stack: key, buckets, lifecycle, EventBridge without a custom resource, the live-model pointer."""
import json

import aws_cdk as cdk
from aws_cdk.assertions import Match

from infra.config import AppConfig
from infra.layout import BATCH_MODELS_EXPIRATION_DAYS
from infra.stacks.storage import StorageStack
from tests.infra.conftest import cdk_json_context, environment_agnostic


def _bucket(template: dict, logical_prefix: str) -> tuple[str, dict]:
    (logical_id, resource), = [(k, v) for k, v in template["Resources"].items()
                               if v["Type"] == "AWS::S3::Bucket" and k.startswith(logical_prefix)]
    return logical_id, resource


def test_key_rotates_and_is_kept(synth):
    synth.template("storage").has_resource("AWS::KMS::Key", {
        "Properties": Match.object_like({"EnableKeyRotation": True}),
        "DeletionPolicy": "Retain",
    })
    synth.template("storage").has_resource_properties("AWS::KMS::Alias", {"AliasName": "alias/gru4rec-dev"})


def test_cloudwatch_logs_may_use_the_key_only_for_this_stages_log_groups(synth):
    key, = synth.template("storage").find_resources("AWS::KMS::Key").values()
    (statement,) = [
        s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsEncryptsStageLogGroups"
    ]
    patterns = [
        part["Fn::Join"][1][-1] for part in statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:logs:arn"]
    ]
    assert patterns == [":log-group:/gru4rec/dev/*", ":log-group:/aws/vendedlogs/states/gru4rec-dev-*",
                        ":log-group:/aws/sagemaker/Endpoints/gru4rec-dev", ":log-group:aws-waf-logs-gru4rec-dev"]
    assert "kms:DescribeKey" not in statement["Action"], "DescribeKey carries no encryption context"


def _key_statements(synth) -> list[dict]:
    key, = synth.template("storage").find_resources("AWS::KMS::Key").values()
    return key["Properties"]["KeyPolicy"]["Statement"]


def test_alarms_may_use_the_key_only_for_this_accounts_alarms_and_the_stages_topics(synth):
    """The conditions AWS documents for CloudWatch publishing to an encrypted topic: the alarm's ARN and the topic's."""
    statement, = [s for s in _key_statements(synth) if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    alarms = statement["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1]
    assert alarms[1:] == [{"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":",
                          {"Ref": "AWS::AccountId"}, ":alarm:*"]
    topics = statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:sns:topicArn"]["Fn::Join"][1]
    assert topics[-2:] == [{"Ref": "AWS::AccountId"}, ":gru4rec-dev-*"]


def test_no_service_principal_uses_the_key_without_a_condition(synth):
    """EventBridge publishes through a role (its KMS requests carry no source to condition on)."""
    services = [s for s in _key_statements(synth) if "Service" in s.get("Principal", {})]
    assert all("Condition" in s for s in services)
    assert not [s for s in services if s["Principal"]["Service"] == "events.amazonaws.com"]


def test_data_bucket_is_encrypted_with_the_key_versioned_private_and_logged(synth):
    template = synth.template_dict("storage")
    key_id, = synth.template("storage").find_resources("AWS::KMS::Key")
    log_bucket_id, _ = _bucket(template, "AccessLogs")
    _, data = _bucket(template, "Data")
    properties = data["Properties"]
    encryption, = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption == {"BucketKeyEnabled": True, "ServerSideEncryptionByDefault": {
        "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]}}}
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert properties["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": log_bucket_id},
        "LogFilePrefix": "data-bucket/",
    }
    assert data["DeletionPolicy"] == "Retain"


def test_access_log_bucket_uses_s3_managed_encryption_as_log_delivery_requires(synth):
    _, log_bucket = _bucket(synth.template_dict("storage"), "AccessLogs")
    encryption, = log_bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert log_bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}


def test_both_buckets_refuse_requests_without_tls(synth):
    policies = synth.template("storage").find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        denials = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert {"Bool": {"aws:SecureTransport": "false"}} in [s["Condition"] for s in denials]


def test_sessions_captures_checkpoints_and_old_versions_expire(synth):
    _, data = _bucket(synth.template_dict("storage"), "Data")
    rules = {rule["Id"]: rule for rule in data["Properties"]["LifecycleConfiguration"]["Rules"]}
    config = synth.config
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules.values() if "ExpirationInDays" in rule}
    assert expiring == {"sessions/scored/": config.scored_expiration_days,
                        "sessions/incoming/": config.incoming_expiration_days,
                        "capture/": config.capture_expiration_days,
                        "checkpoints/": config.checkpoint_expiration_days,
                        "batch-models/": BATCH_MODELS_EXPIRATION_DAYS, "batch-manifests/": BATCH_MODELS_EXPIRATION_DAYS,
                        "batch-shards/": BATCH_MODELS_EXPIRATION_DAYS,
                        "events/incoming/": config.events_expiration_days,
                        "sessions/grouped/": config.grouped_expiration_days,
                        "athena/": config.athena_results_expiration_days}
    assert (config.events_expiration_days, config.grouped_expiration_days, config.athena_results_expiration_days) == (
        30, 7, 7)
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": synth.config.noncurrent_version_expiration_days}
    assert "Prefix" not in rules["ExpireNoncurrentVersions"]
    # expired objects leave delete markers; once their noncurrent versions are gone S3 removes the markers too
    assert rules["RemoveExpiredDeleteMarkers"] == {"Id": "RemoveExpiredDeleteMarkers", "Status": "Enabled",
                                                   "ExpiredObjectDeleteMarker": True}


def test_eventbridge_notifications_are_native_not_a_custom_resource(synth):
    _, data = _bucket(synth.template_dict("storage"), "Data")
    assert data["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    types = {resource["Type"] for resource in synth.template_dict("storage")["Resources"].values()}
    assert "Custom::S3BucketNotifications" not in types


def _first_model_asset_key(synth, dummy_model_artifact) -> str:
    assets = json.loads((synth.outdir / "Gru4Rec-Dev-Storage.assets.json").read_text())["files"]
    model_asset, = [a for a in assets.values() if a["source"]["path"] == str(dummy_model_artifact)]
    assert model_asset["source"]["packaging"] == "file"
    destination, = model_asset["destinations"].values()
    return destination["objectKey"]


def test_the_first_model_is_copied_to_a_tar_gz_key(synth, dummy_model_artifact):
    """ModelDataUrl must name a .tar.gz object (API_ContainerDefinition); the asset's key ends in .gz only."""
    template = synth.template_dict("storage")
    asset_key = _first_model_asset_key(synth, dummy_model_artifact)
    assert not asset_key.endswith(".tar.gz")
    (copy,) = [calls for calls in _sdk_calls(template).values() if calls["Create"]["service"] == "S3"]
    assert copy["Create"] == copy["Update"], "a new initial_model_version copies its archive"
    call = copy["Create"]
    assert (call["service"], call["action"]) == ("S3", "copyObject")
    assert call["parameters"]["Key"] == "initial-models/initial-1/model.tar.gz"
    assert call["parameters"]["CopySource"] == f"cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/{asset_key}"


def _flat(value) -> str:
    """A template's Fn::Join of strings and references as text, references as <LogicalId>."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        return "".join(_flat(part) for part in value["Fn::Join"][1])
    if "Fn::Sub" in value:
        return value["Fn::Sub"].replace("${", "<").replace("}", ">")
    return "<" + value["Ref"] + ">"


def _sdk_calls(template: dict) -> dict[str, dict]:
    """The AwsCustomResource resources of a template by logical id: {"Create": call, "Update": ..., "Delete": ...}."""
    return {logical_id: {event: json.loads(_flat(resource["Properties"][event]))
                         for event in ("Create", "Update", "Delete") if event in resource["Properties"]}
            for logical_id, resource in template["Resources"].items() if resource["Type"] == "Custom::AWS"}


def test_no_live_model_parameter_exists_and_nothing_calls_ssm(synth):
    """The registry and the endpoint are the record of models: no SSM parameter, no dynamic reference, no SSM call
    in any stack of the app (the tuned settings of the training pipeline are not the live model's)."""
    for template in synth.templates.values():
        text = json.dumps(template)
        assert "{{resolve:ssm:" not in text
        assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"]
        for leaf in ("current-model-data", "current-model-name", "initial-model-data"):
            assert leaf not in text
    calls = [json.dumps(r["Properties"]) for template in synth.templates.values()
             for r in template["Resources"].values() if r["Type"] == "Custom::AWS"]
    assert calls and not [call for call in calls if '\\"service\\":\\"SSM\\"' in call]
    assert [call for call in calls if '\\"service\\":\\"SageMaker\\"' in call], "the test sees a call's service"


def test_the_live_model_parameters_would_be_seen(synth):
    """Negative control of the test above: it finds a parameter, and a pointer's name, where one is."""
    template = json.loads(json.dumps(synth.template_dict("storage")))
    template["Resources"]["Pointer"] = {"Type": "AWS::SSM::Parameter", "Properties": {
        "Name": "/gru4rec/dev/current-model-data", "Type": "String", "Value": "s3://b/k.tar.gz"}}
    assert [r for r in template["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"]
    assert "current-model-data" in json.dumps(template)


def _storage_template(tmp_path, dummy_model_artifact, **context) -> dict:
    config = AppConfig.from_mapping({**context, "initial_model_artifact": str(dummy_model_artifact)})
    app = cdk.App(context={**cdk_json_context(), "aws:cdk:disable-asset-staging": True}, outdir=str(tmp_path))
    with environment_agnostic():
        stack = StorageStack(app, "Storage", config)
    cdk.Tags.of(app).add("cost-centre", " ".join(f"{key}={value}" for key, value in context.items()))
    return app.synth().get_stack_by_name(stack.stack_name).template


def test_a_new_first_model_copies_its_archive(tmp_path, dummy_model_artifact):
    """A new ``initial_model_version`` copies the new archive; earlier copies stay (a registry version names them)."""
    before = _storage_template(tmp_path / "a", dummy_model_artifact, initial_model_version="initial-1")
    after = _storage_template(tmp_path / "b", dummy_model_artifact, initial_model_version="initial-2")
    copies = [calls["Update"]["parameters"]["Key"] for template in (before, after)
              for calls in _sdk_calls(template).values() if calls["Create"]["service"] == "S3"]
    assert copies == ["initial-models/initial-1/model.tar.gz", "initial-models/initial-2/model.tar.gz"]


def test_data_bucket_name_and_arn_are_published(synth):
    outputs = synth.template_dict("storage")["Outputs"]
    data_id, _ = _bucket(synth.template_dict("storage"), "Data")
    assert outputs["DataBucketName"]["Value"] == {"Ref": data_id}
    exports = {o["Export"]["Name"]: o["Value"] for o in outputs.values() if "Export" in o}
    assert exports["gru4rec-dev-data-bucket-arn"] == {"Fn::GetAtt": [data_id, "Arn"]}


def test_each_prefix_expires_after_its_own_setting(tmp_path, dummy_model_artifact):
    """Distinct day counts, so that a rule reading another prefix's setting shows."""
    days = {"incoming_expiration_days": 3, "scored_expiration_days": 5, "capture_expiration_days": 7,
            "checkpoint_expiration_days": 11, "events_expiration_days": 13, "grouped_expiration_days": 17,
            "athena_results_expiration_days": 19}
    config = AppConfig.from_mapping({**days, "initial_model_artifact": str(dummy_model_artifact)})
    app = cdk.App(context={**cdk_json_context(), "aws:cdk:disable-asset-staging": True}, outdir=str(tmp_path))
    with environment_agnostic():
        stack = StorageStack(app, "Storage", config)
    template = app.synth().get_stack_by_name(stack.stack_name).template
    _, data = _bucket(template, "Data")
    expiring = {rule["Prefix"]: rule["ExpirationInDays"]
                for rule in data["Properties"]["LifecycleConfiguration"]["Rules"] if "ExpirationInDays" in rule}
    assert expiring == {"sessions/incoming/": 3, "sessions/scored/": 5, "capture/": 7, "checkpoints/": 11,
                        "batch-models/": BATCH_MODELS_EXPIRATION_DAYS, "batch-manifests/": BATCH_MODELS_EXPIRATION_DAYS,
                        "batch-shards/": BATCH_MODELS_EXPIRATION_DAYS, "events/incoming/": 13,
                        "sessions/grouped/": 17, "athena/": 19}
