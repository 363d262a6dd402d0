"""The archive the Endpoint stack's model is built from: the model the endpoint serves, else the first model.

A CloudFormation custom resource (``Custom::LiveModelData``, ``infra.stacks.live_model_data``) calls this function
when the stack creates it and whenever its properties change; its properties hold everything the stack's model is
built from except the archive, so a stack update that replaces the model re-reads the live model first
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requesttypes-update.html: an Update request
is sent when the template's properties of the custom resource change, and only then). Between such updates
``Fn::GetAtt`` keeps the value of the last read, and the model keeps its archive whatever the pipeline has put live.

Properties: ``EndpointName``, ``FirstModelData`` (the first model's archive, for an endpoint that does not exist
yet) and ``Model`` (the rest of the model, read by nobody here). The function reads DescribeEndpoint -> the
configuration's live variant -> DescribeModel and answers ``{"ModelDataUrl": ...}``; Delete reads nothing. It
answers CloudFormation itself, a PUT of the response object to the request's presigned ``ResponseURL``
(https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-responses.html). Only the Python standard
library and boto3 (in the Lambda runtime) are used.
"""
from __future__ import annotations

import json
import urllib.request

import boto3
from botocore.exceptions import ClientError

# the variant that serves the live model (infra.layout.LIVE_VARIANT; during an A/B test the challenger is the other)
LIVE_VARIANT = "AllTraffic"
# "Could not find endpoint ...": DescribeEndpoint's answer for an endpoint that does not exist
MISSING_ENDPOINT = "Could not find endpoint"
# "The total size of the response body can't exceed 4096 bytes" (crpg-ref-responses.html): the reason's share
MAX_REASON = 2048


def handler(event: dict, context=None, sagemaker=None, send=None) -> dict:
    """Answer one Create, Update or Delete request; the response object is also returned (for tests)."""
    properties = event.get("ResourceProperties", {})
    physical_id = event.get("PhysicalResourceId") or f"{properties.get('EndpointName', 'endpoint')}-live-model-data"
    try:
        data = {} if event["RequestType"] == "Delete" else {"ModelDataUrl": live_model_data(
            sagemaker or boto3.client("sagemaker"), properties["EndpointName"], properties["FirstModelData"])}
        response = _response(event, physical_id, "SUCCESS", data=data)
    except Exception as error:  # every failure goes back to CloudFormation, which otherwise waits for an hour
        reason = f"reading the live model failed: {error}"
        if context is not None:
            reason += f" (log stream {context.log_stream_name})"
        response = _response(event, physical_id, "FAILED", reason=reason[:MAX_REASON])
    (send or _put)(event["ResponseURL"], response)
    return response


def live_model_data(sagemaker, endpoint_name: str, first_model_data: str) -> str:
    """The archive of the model the endpoint's live variant serves; ``first_model_data`` while there is no endpoint."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if MISSING_ENDPOINT in error.response.get("Error", {}).get("Message", ""):
            return first_model_data
        raise
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    names = [v["ModelName"] for v in config["ProductionVariants"] if v["VariantName"] == LIVE_VARIANT]
    if not names:
        variants = ", ".join(v["VariantName"] for v in config["ProductionVariants"])
        raise ValueError(f"endpoint configuration {endpoint['EndpointConfigName']} has no {LIVE_VARIANT} variant "
                         f"(it has {variants})")
    model = sagemaker.describe_model(ModelName=names[0])
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    if "ModelDataUrl" not in container:
        raise ValueError(f"model {names[0]} names no ModelDataUrl")
    return container["ModelDataUrl"]


def _response(event: dict, physical_id: str, status: str, data: dict | None = None, reason: str = "") -> dict:
    response = {"Status": status, "PhysicalResourceId": physical_id, "StackId": event["StackId"],
                "RequestId": event["RequestId"], "LogicalResourceId": event["LogicalResourceId"], "Data": data or {}}
    if reason:
        response["Reason"] = reason
    return response


def _put(url: str, response: dict) -> None:
    """The response, as the presigned URL expects it: a PUT with an empty content type."""
    body = json.dumps(response).encode()
    request = urllib.request.Request(url, data=body, method="PUT",
                                     headers={"Content-Type": "", "Content-Length": str(len(body))})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (CloudFormation's https URL)
        answer.read()
