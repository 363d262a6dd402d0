"""How every SageMaker model of a stage is described: the serve image, gzip'd model data, no network.

One spelling for CloudFormation (the endpoint's model) and for the SageMaker API (the models the
pipelines create), so that they cannot drift apart.
"""
from __future__ import annotations

# Every model names its archive by ``ModelDataUrl``, a .tar.gz object (one spelling for the endpoint, the
# serverless endpoint, Batch Transform and the events pipeline): "Currently you cannot use ModelDataSource in
# conjunction with SageMaker batch transform, SageMaker serverless endpoints, SageMaker multi-model endpoints,
# and SageMaker Marketplace", while ModelDataUrl "must point to a single gzip compressed tar archive (.tar.gz
# suffix)" https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ContainerDefinition.html

# The container makes no AWS call of its own (it reads /opt/ml/model; SageMaker downloads the model
# and uploads captures and transform output outside it), so it runs without a network: "If you
# enable network isolation, the containers can't make any outbound network calls ... SageMaker
# still performs download and upload operations against Amazon S3 using your SageMaker execution role"
# https://docs.aws.amazon.com/sagemaker/latest/dg/mkt-algo-model-internet-free.html
NETWORK_ISOLATION = True

# Serverless Inference supports no network isolation and takes payloads of at most 4 MB ("Feature
# exclusions", https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html; "The maximum
# request and response payload size for serverless invocations is 4 MB",
# https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-invoke.html). The endpoint's models
# run without isolation in that mode and tell the container so, which then refuses bodies above 4 MB.
SERVERLESS_ENVIRONMENT = {"SAGEMAKER_SERVERLESS": "true"}

# The container writes one CloudWatch embedded-metric-format line per request (inference/request_metrics.py)
# with this variable's value as its ``Service`` dimension: the dashboard reads the metrics by it
METRICS_SERVICE_VARIABLE = "METRICS_SERVICE"


def endpoint_network_isolation(serverless: bool) -> bool:
    """``EnableNetworkIsolation`` of the endpoint's models: on, except where serverless endpoints refuse it."""
    return NETWORK_ISOLATION and not serverless


def primary_container(image_uri: str, model_data_uri: str, metrics_service: str, serverless: bool = False) -> dict:
    """``PrimaryContainer`` of CreateModel / AWS::SageMaker::Model: one model from a model.tar.gz object
    (``ModelDataUrl``, which every kind of model accepts);
    ``metrics_service``: the ``Service`` dimension of its request metrics (the endpoint's name, or the batch
    pipelines' ``metrics_service``); ``serverless``: a model of a serverless endpoint, whose container is told so."""
    container = {
        "Image": image_uri,
        "Mode": "SingleModel",
        "ModelDataUrl": model_data_uri,
    }
    container["Environment"] = {METRICS_SERVICE_VARIABLE: metrics_service,
                                 **(SERVERLESS_ENVIRONMENT if serverless else {})}
    return container
