"""`infra.ops ab promote VARIANT`: end an A/B test (context ``ab_test``), keeping one variant's model.

While a test runs, the endpoint has two production variants: ``AllTraffic`` (the live model) and
``Challenger``. Promoting ``Challenger`` first rolls ``AllTraffic`` to the challenger's model through
the guarded rollout the training pipeline uses (its guardrails read from the pipeline's definition;
SageMaker's guarded updates keep the variants' names, so both variants stay in this step) and rolls
back on the stage's alarms, leaving the test running. Once ``AllTraffic`` serves it, the endpoint drops
the ``Challenger`` variant (an update that changes the variants, which SageMaker runs without
guardrails; the model it keeps is the one the guarded step has put live): the live model is what the endpoint
serves, so nothing else records it. Promoting ``AllTraffic`` only drops the challenger.
Then remove ``ab_test`` from the context and deploy, so that CloudFormation's configuration matches.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from infra.layout import CHALLENGER_VARIANT, LIVE_VARIANT
from infra.ops.deployment import Deployment
from infra.ops.errors import OpsError
from infra.ops.live_model import ENDPOINT_FINAL, rollout_settings
from infra.ops.training import wait_until_final

VARIANTS = (LIVE_VARIANT, CHALLENGER_VARIANT)
VARIANT_KEYS = ("VariantName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight")


@dataclass(frozen=True)
class Promotion:
    variant: str
    model_name: str
    model_data: str
    config_name: str


def promote(session, deployment: Deployment, variant: str, now: datetime | None = None,
            sleep: Callable[[float], None] = time.sleep, poll_seconds: float = 30.0,
            report: Callable[[str], None] = print) -> Promotion:
    """End the test on ``variant``'s model; OpsError when no test runs, the endpoint is busy, or the alarms
    rolled the guarded step back (the test then goes on)."""
    if variant not in VARIANTS:
        raise OpsError(f"variant {variant!r}: one of {', '.join(VARIANTS)}")
    sagemaker = session.client("sagemaker")
    endpoint = deployment.endpoint_name
    described = sagemaker.describe_endpoint(EndpointName=endpoint)
    if described["EndpointStatus"] != "InService":
        raise OpsError(f"endpoint {endpoint} is {described['EndpointStatus']}: another update is running; "
                       "promote once it is InService")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    if sorted(variants) != sorted(VARIANTS):
        raise OpsError(f"no A/B test runs on endpoint {endpoint}: its variants are {', '.join(variants)} "
                       f"(a test has {' and '.join(VARIANTS)}; context key ab_test starts one)")
    stamp = f"{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"
    wait = lambda: _wait(sagemaker, endpoint, poll_seconds, sleep, report)  # noqa: E731
    kept = variants[variant]
    model_name = kept["ModelName"]
    model_data = sagemaker.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelDataUrl"]
    if variant == CHALLENGER_VARIANT:
        model_name = f"gru4rec-{deployment.stage}-promote-{stamp}"
        _copy_model(sagemaker, kept["ModelName"], model_name)
        guarded = f"gru4rec-{deployment.stage}-promote-{stamp}"
        _create_config(sagemaker, config, guarded, [{**variants[LIVE_VARIANT], "ModelName": model_name},
                                                     variants[CHALLENGER_VARIANT]])
        definition = json.loads(session.client("stepfunctions").describe_state_machine(
            stateMachineArn=deployment.training_state_machine_arn)["definition"])
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=guarded, **rollout_settings(definition))
        _check_ended(wait(), guarded, endpoint, "the guarded rollout of the challenger's model did not finish",
                     "the A/B test goes on")
    final = f"gru4rec-{deployment.stage}-ab-ended-{stamp}"
    _create_config(sagemaker, config, final,
                   [{**variants[LIVE_VARIANT], "ModelName": model_name, "InitialVariantWeight": 1}])
    sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=final)
    _check_ended(wait(), final, endpoint, f"dropping the {CHALLENGER_VARIANT} variant did not finish",
                 f"{LIVE_VARIANT} serves the promoted model")
    return Promotion(variant, model_name, model_data, final)


def _wait(sagemaker, endpoint: str, poll_seconds: float, sleep, report) -> dict:
    return wait_until_final(lambda: sagemaker.describe_endpoint(EndpointName=endpoint), "EndpointStatus",
                            ENDPOINT_FINAL, endpoint, poll_seconds, sleep=sleep, report=report)


def _check_ended(ended: dict, config_name: str, endpoint: str, problem: str, state: str) -> None:
    if ended["EndpointStatus"] != "InService" or ended["EndpointConfigName"] != config_name:
        reason = ended.get("FailureReason", "SageMaker gave no reason")
        raise OpsError(f"{problem}: endpoint {endpoint} is {ended['EndpointStatus']} with configuration "
                       f"{ended['EndpointConfigName']} ({reason}); {state}")


def _copy_model(sagemaker, source: str, name: str) -> None:
    """A model ``name`` like ``source`` (its container, role, isolation and the stage's tags)."""
    model = sagemaker.describe_model(ModelName=source)
    tags = [tag for tag in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]
            if tag["Key"] in ("project", "stage")]
    sagemaker.create_model(ModelName=name, ExecutionRoleArn=model["ExecutionRoleArn"],
                           PrimaryContainer=dict(model["PrimaryContainer"]),
                           EnableNetworkIsolation=model.get("EnableNetworkIsolation", False),
                           Tags=tags + [{"Key": "pipeline", "Value": "ab-promote"}])


def _create_config(sagemaker, current: dict, name: str, variants: list[dict]) -> None:
    """An endpoint config ``name`` like ``current`` (data capture, key) with ``variants``."""
    copied = {key: current[key] for key in ("DataCaptureConfig", "KmsKeyId") if current.get(key)}
    sagemaker.create_endpoint_config(EndpointConfigName=name, **copied, ProductionVariants=[
        {**{key: variant[key] for key in VARIANT_KEYS if key in variant}, "ModelName": variant["ModelName"]}
        for variant in variants])
