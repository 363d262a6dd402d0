"""Endpoint stack: the live model read from the endpoint, endpoint config, endpoint, autoscaling, alarms, model role."""
import json
from pathlib import Path

import pytest

from tests.support.policy_documents import AppPolicies


@pytest.fixture(scope="module")
def endpoint(synth) -> dict:
    return synth.template_dict("endpoint")


def _one(endpoint: dict, resource_type: str) -> tuple[str, dict]:
    """The stack's one resource of ``resource_type``, the first model's registration and the live model's read
    (custom resources with a function, role, policy and log group of their own) aside."""
    (logical_id, resource), = [(k, v) for k, v in endpoint["Resources"].items() if v["Type"] == resource_type
                               and (resource_type.startswith("Custom::")
                                    or not k.startswith(("FirstModelVersion", "AWS679f53fac", "LiveModelData")))]
    return logical_id, resource


def _statements(endpoint: dict) -> list[dict]:
    _, policy = _one(endpoint, "AWS::IAM::Policy")
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _as_list(value):
    return value if isinstance(value, list) else [value]


def test_the_model_archive_is_what_a_custom_resource_read_from_the_endpoint(endpoint):
    """No SSM pointer: the archive is ``Custom::LiveModelData``'s answer, and no SSM-typed stack parameter (which
    CloudFormation resolves at every deploy) nor dynamic reference is left."""
    read_id, read = _one(endpoint, "Custom::LiveModelData")
    _, model = _one(endpoint, "AWS::SageMaker::Model")
    assert model["Properties"]["PrimaryContainer"]["ModelDataUrl"] == {"Fn::GetAtt": [read_id, "ModelDataUrl"]}
    assert read["Properties"]["EndpointName"] == "gru4rec-dev"
    first = read["Properties"]["FirstModelData"]["Fn::Join"][1]
    assert first[0] == "s3://" and first[-1] == "/initial-models/initial-1/model.tar.gz"
    resolved_at_every_deploy = [p["Default"] for p in endpoint.get("Parameters", {}).values()
                                if p["Type"].startswith("AWS::SSM::Parameter::Value")]
    assert resolved_at_every_deploy == ["/cdk-bootstrap/hnb659fds/version"]
    assert "resolve:ssm" not in json.dumps(endpoint)
    assert "ModelName" not in model["Properties"], "CloudFormation names each replacement model"


def _create_only_properties(resource_type: str) -> set[str]:
    """The properties whose change replaces a resource, from CloudFormation's resource schema as cfn-lint ships it."""
    import cfnlint

    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    digest = json.loads((schemas / "providers" / "us-east-1.json").read_text())[resource_type]
    schema = json.loads((schemas / "resources" / f"{digest}.json").read_text())
    return {path.removeprefix("/properties/") for path in schema["createOnlyProperties"]}


def test_the_read_is_repeated_whenever_the_model_could_be_replaced(endpoint):
    """CloudFormation sends the custom resource an Update only when its properties change: they hold every
    property of the model whose change replaces it (the resource schema's create-only ones), the archive aside, so
    a change that replaces the model re-reads the live model first. Tags are updated in place."""
    _, read = _one(endpoint, "Custom::LiveModelData")
    _, model = _one(endpoint, "AWS::SageMaker::Model")
    replacing = {k: v for k, v in model["Properties"].items() if k in _create_only_properties("AWS::SageMaker::Model")}
    assert set(model["Properties"]) - set(replacing) == {"Tags"}
    container = {k: v for k, v in replacing["PrimaryContainer"].items() if k != "ModelDataUrl"}
    assert read["Properties"]["Model"] == {**replacing, "PrimaryContainer": container}


def test_the_read_may_describe_the_endpoint_and_its_models_only(endpoint):
    """Negative control of the SSM pointer: nothing in the stack reads or writes a parameter."""
    (policy,) = [r for k, r in endpoint["Resources"].items()
                 if r["Type"] == "AWS::IAM::Policy" and k.startswith("LiveModelData")]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in _as_list(s["Action"])}
    assert actions == {"sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeModel",
                       "kms:Decrypt", "kms:GenerateDataKey", "logs:CreateLogStream", "logs:PutLogEvents"}
    assert not [r for r in endpoint["Resources"].values() if r["Type"] == "AWS::SSM::Parameter"]
    assert "ssm:" not in json.dumps(endpoint["Resources"])


def test_every_cloudformation_update_is_a_guarded_rollout_keeping_the_fleet_size(synth, endpoint):
    _, resource = _one(endpoint, "AWS::SageMaker::Endpoint")
    properties = resource["Properties"]
    assert properties["RetainAllVariantProperties"] is True
    assert properties["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DataCaptureConfig"}]
    assert properties["RetainDeploymentConfig"] is False
    guardrails = properties["DeploymentConfig"]
    assert guardrails["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    alarm_ids = {name for name, r in endpoint["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    names = {endpoint["Resources"][name]["Properties"]["AlarmName"] for name in alarm_ids}
    assert {a["AlarmName"] for a in guardrails["AutoRollbackConfiguration"]["Alarms"]} == names
    assert alarm_ids <= set(resource["DependsOn"]), "the alarms a rollout names exist before the endpoint"


@pytest.mark.parametrize("context, routing", [
    ({"rollout": "all_at_once"}, {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 600}),
    ({"rollout": "linear", "rollout_traffic_percent": 25, "rollout_wait_minutes": 5},
     {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}, "WaitIntervalInSeconds": 300}),
    ({"rollout": "canary", "rollout_traffic_percent": 20, "rollout_wait_minutes": 0},
     {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20}, "WaitIntervalInSeconds": 0}),
])
def test_the_rollout_follows_the_context(dummy_model_artifact, context, routing):
    from infra.config import AppConfig
    from infra.rollout import deployment_config

    config = AppConfig.from_mapping({**context, "initial_model_artifact": str(dummy_model_artifact)})
    policy = deployment_config(config)["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == routing
    assert policy["TerminationWaitInSeconds"] == routing["WaitIntervalInSeconds"]


def test_without_autoscaling_there_is_no_scalable_target(tmp_path, dummy_model_artifact):
    """The first of the two deploys that change a live stage's instance type (docs/deploy.md)."""
    from tests.infra.conftest import synthesize

    result = synthesize(tmp_path, {"initial_model_artifact": str(dummy_model_artifact), "endpoint_autoscaling": False})
    types = {r["Type"] for r in result.template_dict("endpoint")["Resources"].values()}
    assert "AWS::SageMaker::Endpoint" in types
    assert not {"AWS::ApplicationAutoScaling::ScalableTarget", "AWS::ApplicationAutoScaling::ScalingPolicy"} & types


def test_model_data_is_a_model_data_url(endpoint):
    """ModelDataUrl, which serverless endpoints and Batch Transform take as well; ModelDataSource they refuse."""
    _, model = _one(endpoint, "AWS::SageMaker::Model")
    assert "ModelDataSource" not in model["Properties"]["PrimaryContainer"]


def test_model_runs_without_a_network(endpoint):
    _, model = _one(endpoint, "AWS::SageMaker::Model")
    assert model["Properties"]["EnableNetworkIsolation"] is True


def test_stack_owns_the_endpoints_log_group_encrypted_and_with_retention(synth, endpoint):
    group_id, group = _one(endpoint, "AWS::Logs::LogGroup")
    assert group["Properties"]["LogGroupName"] == "/aws/sagemaker/Endpoints/gru4rec-dev"
    assert "Key" in group["Properties"]["KmsKeyId"]["Fn::ImportValue"]
    assert group["Properties"]["RetentionInDays"] == synth.config.log_retention_days
    _, resource = _one(endpoint, "AWS::SageMaker::Endpoint")
    assert group_id in resource["DependsOn"], "the group exists before the endpoint's first instance logs"


def test_model_runs_the_serve_image(synth, endpoint):
    _, model = _one(endpoint, "AWS::SageMaker::Model")
    image_tag = model["Properties"]["PrimaryContainer"]["Image"]["Fn::Join"][1][-1]
    assert synth.stacks["image"].serve_image_uri.endswith(image_tag) and image_tag.startswith(":serve-")


def test_model_waits_for_its_role_policy(endpoint):
    policy_id, _ = _one(endpoint, "AWS::IAM::Policy")
    _, model = _one(endpoint, "AWS::SageMaker::Model")
    assert model["DependsOn"] == [policy_id]


def test_endpoint_config_encrypts_captures_and_sizes_from_the_context(synth, endpoint):
    _, config = _one(endpoint, "AWS::SageMaker::EndpointConfig")
    properties = config["Properties"]
    assert "Key" in properties["KmsKeyId"]["Fn::ImportValue"] and "EndpointConfigName" not in properties
    capture = properties["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == synth.config.data_capture_percent
    assert capture["KmsKeyId"] == properties["KmsKeyId"]
    assert capture["DestinationS3Uri"]["Fn::Join"][1][-1] == "/capture"
    assert {option["CaptureMode"] for option in capture["CaptureOptions"]} == {"Input", "Output"}
    variant, = properties["ProductionVariants"]
    assert variant["VariantName"] == "AllTraffic"
    assert variant["InstanceType"] == synth.config.endpoint_instance_type
    assert variant["InitialInstanceCount"] == synth.config.endpoint_initial_instance_count
    assert variant["ModelName"] == {"Fn::GetAtt": ["Model", "ModelName"]}


def test_endpoint_has_the_stage_name(endpoint):
    _, resource = _one(endpoint, "AWS::SageMaker::Endpoint")
    assert resource["Properties"]["EndpointName"] == "gru4rec-dev"
    assert resource["Properties"]["EndpointConfigName"] == {"Fn::GetAtt": ["EndpointConfig", "EndpointConfigName"]}
    assert endpoint["Outputs"]["EndpointName"]["Value"] == {"Fn::GetAtt": ["Endpoint", "EndpointName"]}


def test_autoscaling_tracks_invocations_per_instance(synth, endpoint):
    target_id, target = _one(endpoint, "AWS::ApplicationAutoScaling::ScalableTarget")
    properties = target["Properties"]
    assert properties["ResourceId"] == "endpoint/gru4rec-dev/variant/AllTraffic"
    assert properties["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (properties["MinCapacity"], properties["MaxCapacity"]) == (
        synth.config.endpoint_initial_instance_count, synth.config.endpoint_max_instance_count)
    assert properties["RoleARN"]["Fn::Join"][1][-1].endswith(
        "/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")
    assert "Endpoint" in target["DependsOn"]
    _, policy = _one(endpoint, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["TargetValue"] == synth.config.endpoint_invocations_per_instance


def test_alarms_on_server_errors_and_latency_notify_the_encrypted_topic(synth, endpoint):
    topic_id, topic = _one(endpoint, "AWS::SNS::Topic")
    assert "Fn::ImportValue" in topic["Properties"]["KmsMasterKeyId"]
    _, subscription = _one(endpoint, "AWS::SNS::Subscription")
    assert subscription["Properties"]["Endpoint"] == synth.config.notification_email
    by_name = {a["Properties"]["AlarmName"]: a["Properties"]
               for a in endpoint["Resources"].values() if a["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(by_name) == {"gru4rec-dev-5xx", "gru4rec-dev-model-latency", "gru4rec-dev-model-errors"}
    assert by_name["gru4rec-dev-model-errors"]["AlarmActions"] == [{"Ref": topic_id}]
    alarms = {a["MetricName"]: a for name, a in by_name.items() if name != "gru4rec-dev-model-errors"}
    assert set(alarms) == {"Invocation5XXErrors", "ModelLatency"}
    for alarm in alarms.values():
        assert alarm["Namespace"] == "AWS/SageMaker"
        assert alarm["Dimensions"] == [{"Name": "EndpointName", "Value": "gru4rec-dev"},
                                       {"Name": "VariantName", "Value": "AllTraffic"}]
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    assert alarms["ModelLatency"]["Threshold"] == synth.config.model_latency_alarm_ms * 1000  # microseconds


def test_the_model_errors_alarm_leaves_out_the_clients_4xx(endpoint):
    """InvocationModelErrors counts 4xx too (SageMaker's metrics page): the alarm reads it less Invocation4XXErrors,
    per minute, a minute without either as 0; a model error of any other kind (timeouts included) still counts."""
    (alarm,) = [a["Properties"] for a in endpoint["Resources"].values()
                if a["Type"] == "AWS::CloudWatch::Alarm" and a["Properties"]["AlarmName"] == "gru4rec-dev-model-errors"]
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    metrics = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert expression["Expression"] == "FILL(modelErrors, 0) - FILL(clientErrors, 0)"
    assert {name: stat["Metric"]["MetricName"] for name, stat in metrics.items()} == {
        "modelErrors": "InvocationModelErrors", "clientErrors": "Invocation4XXErrors"}
    for stat in metrics.values():
        assert (stat["Stat"], stat["Period"]) == ("Sum", 60)
        assert stat["Metric"]["Dimensions"] == [{"Name": "EndpointName", "Value": "gru4rec-dev"},
                                                {"Name": "VariantName", "Value": "AllTraffic"}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"


def test_model_role_is_assumed_only_by_sagemaker(endpoint):
    _, role = _one(endpoint, "AWS::IAM::Role")
    statement, = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]


def test_endpoint_model_role_reaches_model_objects_only(synth):
    """Every policy attached to the endpoint's model role, resolved: S3 reads are the model artifacts
    (models/ and the first model's object), the one write is data capture; no session data at all."""
    documents = AppPolicies(synth.templates)
    endpoint_stack = synth.stacks["endpoint"].stack_name
    role_id, _ = _one(synth.template_dict("endpoint"), "AWS::IAM::Role")
    attached = [name for stack, template in synth.templates.items()
                for name, resource in template["Resources"].items()
                if resource["Type"] == "AWS::IAM::Policy"
                and {"Ref": role_id} in resource["Properties"]["Roles"] and stack == endpoint_stack]
    assert len(attached) == 1
    (policy,) = [d for d in documents.documents() if d.stack == endpoint_stack and d.logical_id == attached[0]]
    bucket = documents.resolve(synth.stacks["storage"].stack_name,
                               {"Fn::GetAtt": [_data_bucket_id(synth), "Arn"]})
    first_model = f"{bucket}/initial-models/initial-1/model.tar.gz"
    s3 = {(action, resource) for statement in policy.document["Statement"]
          for action in _as_list(statement["Action"]) if action.startswith("s3:")
          for resource in _as_list(statement["Resource"])}
    assert s3 == {("s3:GetObject", f"{bucket}/models/*"), ("s3:GetObject", first_model),
                  ("s3:PutObject", f"{bucket}/capture/*")}


def test_model_role_pulls_only_this_repository_and_uses_only_the_stage_key(endpoint):
    for statement in _statements(endpoint):
        actions = set(_as_list(statement["Action"]))
        if statement["Resource"] == "*":
            assert actions == {"ecr:GetAuthorizationToken"}
        elif any(a.startswith("ecr:") for a in actions):
            assert actions == {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}
            assert "Repository" in statement["Resource"]["Fn::ImportValue"]
        elif any(a.startswith("kms:") for a in actions):
            assert "Key" in statement["Resource"]["Fn::ImportValue"]
        elif any(a.startswith("logs:") for a in actions):
            assert json.dumps(statement["Resource"]).endswith(':log-group:/aws/sagemaker/Endpoints/gru4rec-dev:*"]]}')
        elif actions == {"cloudwatch:DescribeAlarms"}:
            # the rollback alarms only: "Ensure that your IAM execution role has permission to perform the
            # cloudwatch:DescribeAlarms action on the auto-rollback alarms" (deployment-guardrails-configuration)
            names = [json.dumps(r).rsplit(":alarm:", 1)[1].split('"')[0] for r in _as_list(statement["Resource"])]
            assert sorted(names) == ["gru4rec-dev-5xx", "gru4rec-dev-model-errors", "gru4rec-dev-model-latency"]
        else:
            assert all(a.startswith("s3:") for a in actions)


def test_model_role_may_let_sagemaker_grant_the_key_for_volumes(endpoint):
    grant = [s for s in _statements(endpoint) if s.get("Sid") == "GrantKeyToSageMakerVolumes"]
    describe = [s for s in _statements(endpoint) if s.get("Sid") == "DescribeVolumeKey"]
    assert [s["Action"] for s in grant] == ["kms:CreateGrant"]
    assert grant[0]["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    assert [s["Action"] for s in describe] == ["kms:DescribeKey"] and "Condition" not in describe[0]


def _data_bucket_id(synth) -> str:
    (name,) = [k for k, v in synth.template_dict("storage")["Resources"].items()
               if v["Type"] == "AWS::S3::Bucket" and k.startswith("Data")]
    return name


def test_the_first_model_is_registered_approved_as_the_endpoint_serves_it(endpoint):
    (version,) = [resource for logical_id, resource in endpoint["Resources"].items()
                  if resource["Type"] == "Custom::AWS" and logical_id.startswith("FirstModelVersion")]
    create = version["Properties"]["Create"]["Fn::Join"][1]
    call = "".join(part if isinstance(part, str) else "<ref>" for part in create)
    assert '"action":"createModelPackage"' in call and '"ModelApprovalStatus":"Approved"' in call
    assert '"rolled-out-by":"cdk-deploy"' in call, "its approval event must not roll it out again"
    assert "/initial-models/initial-1/model.tar.gz" in call and ":serve-" in call
    assert "Update" not in version["Properties"] and "Delete" not in version["Properties"], "registered once, kept"
