"""endpoint_mode=serverless: a serverless variant everywhere the endpoint's configuration is written,
without what Serverless Inference does not support, and a stage that lints, passes cdk-nag and deploys."""
from __future__ import annotations

import json

import pytest
from cfnlint.api import ManualArgs, lint

from tests.infra.conftest import synthesize
from tests.infra.test_app import LINT_REGIONS
from tests.infra.test_deploy_rehearsal import rehearse
from tests.support.pipelines import definition, policy_statements, resources

SERVERLESS = {"endpoint_mode": "serverless", "serverless_memory_mb": 3072, "serverless_max_concurrency": 8,
              "serverless_provisioned_concurrency": 2}
EXPECTED_SERVERLESS_CONFIG = {"MemorySizeInMB": 3072, "MaxConcurrency": 8, "ProvisionedConcurrency": 2}


@pytest.fixture(scope="module")
def serverless(tmp_path_factory, dummy_model_artifact):
    return synthesize(tmp_path_factory.mktemp("serverless"),
                      {"initial_model_artifact": str(dummy_model_artifact), **SERVERLESS})


def _one(template: dict, resource_type: str) -> dict:
    (resource,) = resources(template, resource_type).values()
    return resource["Properties"]


def test_the_endpoint_config_is_a_serverless_variant_without_capture_or_volume_key(serverless):
    properties = _one(serverless.template_dict("endpoint"), "AWS::SageMaker::EndpointConfig")
    (variant,) = properties["ProductionVariants"]
    assert variant["ServerlessConfig"] == EXPECTED_SERVERLESS_CONFIG
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "DataCaptureConfig" not in properties and "KmsKeyId" not in properties


def test_the_model_runs_without_network_isolation_and_is_told_it_is_serverless(serverless, synth):
    model = _one(serverless.template_dict("endpoint"), "AWS::SageMaker::Model")
    assert model["EnableNetworkIsolation"] is False
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_SERVERLESS": "true",
        "METRICS_SERVICE": "gru4rec-dev",
    }
    instance_model = _one(synth.template_dict("endpoint"), "AWS::SageMaker::Model")
    assert instance_model["EnableNetworkIsolation"] is True
    assert instance_model["PrimaryContainer"]["Environment"] == {"METRICS_SERVICE": "gru4rec-dev"}


def test_the_serverless_models_role_may_not_write_captures(serverless, synth):
    def capture_writes(result) -> list[dict]:
        return [statement for statement in policy_statements(result.template_dict("endpoint"))
                if statement.get("Sid") == "WriteDataCapture"]

    assert capture_writes(serverless) == [] and len(capture_writes(synth)) == 1


def test_no_autoscaling_target_on_a_serverless_endpoint(serverless, synth):
    assert resources(serverless.template_dict("endpoint"), "AWS::ApplicationAutoScaling::ScalableTarget") == {}
    assert len(resources(synth.template_dict("endpoint"), "AWS::ApplicationAutoScaling::ScalableTarget")) == 1


def test_the_training_pipeline_deploys_serverless_models_the_same_way(serverless):
    states = definition(serverless.template_dict("training"))["States"]
    model = states["Create model"]["Arguments"]
    assert model["EnableNetworkIsolation"] is False
    assert model["PrimaryContainer"]["Environment"] == {
        "SAGEMAKER_SERVERLESS": "true",
        "METRICS_SERVICE": "gru4rec-dev",
    }
    config = states["Create endpoint config"]["Arguments"]
    (variant,) = config["ProductionVariants"]
    assert variant["ServerlessConfig"] == EXPECTED_SERVERLESS_CONFIG and "InstanceType" not in variant
    assert "DataCaptureConfig" not in config and "KmsKeyId" not in config


def test_the_instance_mode_keeps_its_instances_capture_and_isolation(synth):
    states = definition(synth.template_dict("training"))["States"]
    config = states["Create endpoint config"]["Arguments"]
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == synth.config.endpoint_instance_type and "ServerlessConfig" not in variant
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    assert states["Create model"]["Arguments"]["EnableNetworkIsolation"] is True


def test_the_batch_models_keep_network_isolation(serverless):
    states = definition(serverless.template_dict("batch"))["States"]
    (model,) = [state["Arguments"] for state in states.values()
                if state.get("Resource", "").endswith("sagemaker:createModel")]
    assert model["EnableNetworkIsolation"] is True
    assert model["PrimaryContainer"]["Environment"] == {"METRICS_SERVICE": "gru4rec-dev-batch"}  # not told serverless


def test_serverless_stage_passes_cdk_nag_and_cfn_lint(serverless):
    assert serverless.nag_error is None
    findings = [f"{name}: {match}" for name, template in serverless.templates.items()
                for match in lint(json.dumps(template), config=ManualArgs(regions=LINT_REGIONS))]
    assert findings == []


def test_serverless_stage_reaches_create_complete_in_the_rehearsal(serverless):
    with rehearse(serverless) as record:
        statuses = {name: status for name, (status, _events) in record["stacks"].items()}
        sagemaker = record["session"].client("sagemaker")
        (listed,) = sagemaker.list_endpoint_configs()["EndpointConfigs"]
        endpoint_config = sagemaker.describe_endpoint_config(EndpointConfigName=listed["EndpointConfigName"])
    assert set(statuses.values()) == {"CREATE_COMPLETE"}, statuses
    (variant,) = endpoint_config["ProductionVariants"]
    assert variant["ServerlessConfig"] == EXPECTED_SERVERLESS_CONFIG
