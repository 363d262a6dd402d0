"""Storage stack: key, buckets, lifecycle, EventBridge without a custom resource, the live-model pointer."""
import json

from aws_cdk.assertions import Match


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
    statement, = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "CloudWatchLogsEncryptsStageLogGroups"]
    patterns = [part["Fn::Join"][1][-1] for part in statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]]
    assert patterns == [":log-group:/gru4rec/dev/*", ":log-group:/aws/vendedlogs/states/gru4rec-dev-*"]


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
    assert properties["LoggingConfiguration"] == {"DestinationBucketName": {"Ref": log_bucket_id}, "LogFilePrefix": "data-bucket/"}
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


def test_scored_sessions_and_old_versions_expire(synth):
    _, data = _bucket(synth.template_dict("storage"), "Data")
    rules = {rule["Id"]: rule for rule in data["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireScoredSessions"]["Prefix"] == "sessions/scored/"
    assert rules["ExpireScoredSessions"]["ExpirationInDays"] == synth.config.scored_expiration_days
    assert rules["ExpireNoncurrentVersions"]["NoncurrentVersionExpiration"] == {
        "NoncurrentDays": synth.config.noncurrent_version_expiration_days}
    assert "Prefix" not in rules["ExpireNoncurrentVersions"]


def test_eventbridge_notifications_are_native_not_a_custom_resource(synth):
    _, data = _bucket(synth.template_dict("storage"), "Data")
    assert data["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    types = {resource["Type"] for resource in synth.template_dict("storage")["Resources"].values()}
    assert not any(t.startswith("Custom::") or t == "AWS::Lambda::Function" for t in types)


def test_current_model_data_starts_at_the_first_model_asset(synth, dummy_model_artifact):
    parameter, = synth.template("storage").find_resources("AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Name"] == "/gru4rec/dev/current-model-data"
    assets = json.loads((synth.outdir / "Gru4Rec-Dev-Storage.assets.json").read_text())["files"]
    model_asset, = [a for a in assets.values() if a["displayName"] == "InitialModel"]
    assert model_asset["source"] == {"path": str(dummy_model_artifact), "packaging": "file"}
    destination, = model_asset["destinations"].values()
    assert parameter["Properties"]["Value"] == {
        "Fn::Sub": f"s3://cdk-hnb659fds-assets-${{AWS::AccountId}}-${{AWS::Region}}/{destination['objectKey']}"}


def test_data_bucket_name_and_arn_are_published(synth):
    outputs = synth.template_dict("storage")["Outputs"]
    data_id, _ = _bucket(synth.template_dict("storage"), "Data")
    assert outputs["DataBucketName"]["Value"] == {"Ref": data_id}
    exports = {o["Export"]["Name"]: o["Value"] for o in outputs.values() if "Export" in o}
    assert exports["gru4rec-dev-data-bucket-arn"] == {"Fn::GetAtt": [data_id, "Arn"]}
