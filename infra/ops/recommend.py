"""Ask the stage's API for recommendations: `POST {ApiUrl}recommendations`.

The request carries the stage's API key (when the API has one) in `x-api-key` and is signed
with SigV4 for `execute-api`, which the API's default IAM authorization requires.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inference.contracts import ClientError, parse_json_request
from infra.ops.deployment import Deployment
from infra.ops.errors import OpsError

if TYPE_CHECKING:  # boto3 takes a while to import: the commands that call AWS import it, --help does not
    import boto3

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Recommendations:
    items: list[tuple[str, float]]
    unknown_items: int


def api_key_value(apigateway, key_id: str) -> str:
    return apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"]


def request_body(items: list[str], k: int, exclude_seen: bool) -> dict:
    """The request document, checked with the container's own request contract before sending."""
    body = {"items": items, "k": k, "exclude_seen": exclude_seen}
    try:
        parse_json_request(json.dumps(body).encode())
    except ClientError as error:
        raise OpsError(f"the endpoint would refuse this request: {error.message}") from None
    return body


def signed_request(
    session: boto3.Session, url: str, body: bytes, api_key: str | None
) -> urllib.request.Request:
    """A POST request with JSON body, API key header and a SigV4 signature for execute-api."""
    from botocore.auth import SigV4Auth  # imported by the command that signs, not by --help
    from botocore.awsrequest import AWSRequest

    credentials = session.get_credentials()
    if credentials is None:
        raise OpsError("no AWS credentials found to sign the request (see `aws configure`)")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    unsigned = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(credentials.get_frozen_credentials(), "execute-api", session.region_name).add_auth(
        unsigned
    )
    return urllib.request.Request(url, data=body, headers=dict(unsigned.headers), method="POST")


def _error_text(payload: bytes) -> str:
    """The `error` (model server) or `message` (API Gateway) of an error answer."""
    try:
        document = json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace").strip()[:500]
    if isinstance(document, dict):
        return str(document.get("error") or document.get("message") or document)
    return str(document)


def parse_response(payload: bytes) -> Recommendations:
    try:
        document = json.loads(payload)
        items = [(r["item_id"], float(r["score"])) for r in document["recommendations"]]
        return Recommendations(items=items, unknown_items=int(document.get("unknown_items", 0)))
    except (ValueError, KeyError, TypeError) as error:
        raise OpsError(f"unexpected answer from the API ({error}): {payload[:300]!r}") from None


def recommend(
    session: boto3.Session,
    deployment: Deployment,
    items: list[str],
    k: int = 20,
    exclude_seen: bool = False,
) -> Recommendations:
    """Call the API once and return the ranked items."""
    body = json.dumps(request_body(items, k, exclude_seen)).encode()
    url = deployment.api_url + "recommendations"
    key_id = deployment.api_key_id
    api_key = api_key_value(session.client("apigateway"), key_id) if key_id else None
    request = signed_request(session, url, body, api_key)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return parse_response(response.read())
    except urllib.error.HTTPError as error:
        raise OpsError(f"the API answered {error.code}: {_error_text(error.read())}") from None
    except urllib.error.URLError as error:
        raise OpsError(f"could not reach {url}: {error.reason}") from None


def format_table(result: Recommendations) -> str:
    """Rank, item id and score, one line each, and the count of unknown items."""
    width = max([len("item_id")] + [len(item) for item, _ in result.items])
    lines = [f"{'rank':>4}  {'item_id':<{width}}  {'score':>10}"]
    lines += [
        f"{rank:>4}  {item:<{width}}  {score:>10.4f}"
        for rank, (item, score) in enumerate(result.items, start=1)
    ]
    lines.append(f"unknown items in the session: {result.unknown_items}")
    return "\n".join(lines)
