"""The endpoint of an A/B test (context ab_test, ab_weights): two production variants, no guardrails while it runs."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import synthesize

CHALLENGER = "s3://shop-bucket/models/job-2/output/model.tar.gz"


@pytest.fixture(scope="module")
def ab(tmp_path_factory, dummy_model_artifact):
    return synthesize(
        tmp_path_factory.mktemp("cdk_out_ab"),
        {"initial_model_artifact": str(dummy_model_artifact), "ab_test": CHALLENGER, "ab_weights": "80,20"},
    )


def _resources(template: dict, kind: str) -> dict[str, dict]:
    return {key: value for key, value in template["Resources"].items() if value["Type"] == kind}


def test_two_variants_split_the_traffic_each_with_its_model(ab):
    endpoint = ab.template_dict("endpoint")
    assert ab.nag_error is None
    models = _resources(endpoint, "AWS::SageMaker::Model")
    assert sorted(models) == ["ChallengerModel", "Model"]
    assert models["ChallengerModel"]["Properties"]["PrimaryContainer"]["ModelDataUrl"] == CHALLENGER
    assert (
        models["ChallengerModel"]["Properties"]["PrimaryContainer"]["Image"]
        == models["Model"]["Properties"]["PrimaryContainer"]["Image"]
    )
    (config,) = _resources(endpoint, "AWS::SageMaker::EndpointConfig").values()
    variants = {v["VariantName"]: v for v in config["Properties"]["ProductionVariants"]}
    assert (variants["AllTraffic"]["InitialVariantWeight"], variants["Challenger"]["InitialVariantWeight"]) == (80, 20)
    assert variants["AllTraffic"]["ModelName"] == {"Fn::GetAtt": ["Model", "ModelName"]}
    assert variants["Challenger"]["ModelName"] == {"Fn::GetAtt": ["ChallengerModel", "ModelName"]}
    assert variants["Challenger"]["InstanceType"] == variants["AllTraffic"]["InstanceType"]
    assert config["Properties"]["DataCaptureConfig"]["EnableCapture"] is True


def test_no_guardrails_while_the_variants_change(ab, synth):
    """SageMaker's guarded updates keep the variants' names: starting a test is not one."""
    (endpoint,) = _resources(ab.template_dict("endpoint"), "AWS::SageMaker::Endpoint").values()
    assert "DeploymentConfig" not in endpoint["Properties"]
    (plain,) = _resources(synth.template_dict("endpoint"), "AWS::SageMaker::Endpoint").values()
    assert "DeploymentConfig" in plain["Properties"], "negative control: the guarded stage"


def test_the_captures_table_knows_both_variants(ab):
    tables = _resources(ab.template_dict("batch"), "AWS::Glue::Table")
    (captures,) = [
        t["Properties"]["TableInput"] for t in tables.values() if t["Properties"]["TableInput"]["Name"] == "captures"
    ]
    assert captures["Parameters"]["projection.variant.values"] == "AllTraffic,Challenger"
    # SageMaker's layout: <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/
    assert "/capture/gru4rec-dev/${variant}/${day}/${hour}/" in json.dumps(
        captures["Parameters"]["storage.location.template"]
    )
    assert (captures["Parameters"]["projection.day.format"], captures["Parameters"]["projection.hour.digits"]) == (
        "yyyy/MM/dd",
        "2",
    )
