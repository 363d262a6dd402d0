"""`infra.ops.recommend` against a local HTTP server standing in for API Gateway: signed requests, the API's errors."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.support.ops_stage import REGION, outputs_stack, run


class FakeApi:
    """A local HTTP server standing in for API Gateway: records requests, answers canned."""

    def __init__(self, status: int, answer: dict):
        self.requests: list[dict] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {name.lower(): value for name, value in self.headers.items()}
                api.requests.append({"path": self.path, "headers": headers, "body": body})
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/prod/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def api_stage(stage, url: str) -> None:
    """Point the stage's ApiUrl output at the local server."""
    cloudformation = stage.session.client("cloudformation")
    cloudformation.delete_stack(StackName="Gru4Rec-Dev-Api")
    outputs = {"ApiUrl": url, "ApiKeyId": stage.api_key["id"]}
    outputs_stack(cloudformation, "Gru4Rec-Dev-Api", outputs)


def expected_signature(request: dict, url: str, credentials) -> str:
    """The Authorization header botocore computes for the request as received."""
    received = request["headers"]
    stamp = datetime.strptime(received["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    signed_names = received["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    headers = {name: received[name] for name in signed_names if name not in ("host", "x-amz-date")}
    resigned = AWSRequest(method="POST", url=url, data=request["body"], headers=headers)
    original = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda: stamp
    try:
        SigV4Auth(credentials, "execute-api", REGION).add_auth(resigned)
    finally:
        botocore.auth.get_current_datetime = original
    return resigned.headers["Authorization"]


def test_recommend_sends_a_signed_request_with_the_api_key(stage, capsys):
    answer = {
        "recommendations": [{"item_id": "i9", "score": 7.31}, {"item_id": "i2", "score": 6.5}],
        "unknown_items": 1,
    }
    with FakeApi(200, answer) as api:
        api_stage(stage, api.url)
        code, out, _ = run(capsys, "recommend", "a", "b", "-k", "2", "--exclude-seen")
    assert code == 0
    [request] = api.requests
    assert request["path"] == "/prod/recommendations"
    assert json.loads(request["body"]) == {"items": ["a", "b"], "k": 2, "exclude_seen": True}
    assert request["headers"]["x-api-key"] == stage.api_key["value"]
    authorization = request["headers"]["authorization"]
    credentials = stage.session.get_credentials().get_frozen_credentials()
    scope = f"{request['headers']['x-amz-date'][:8]}/{REGION}/execute-api/aws4_request"
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}")
    assert "x-api-key" in authorization.split("SignedHeaders=")[1].split(",")[0]
    assert authorization == expected_signature(request, api.url + "recommendations", credentials)
    table = out.splitlines()
    assert table[0].split() == ["rank", "item_id", "score"]
    assert table[1].split() == ["1", "i9", "7.3100"]
    assert table[2].split() == ["2", "i2", "6.5000"]
    assert "unknown items in the session: 1" in out


def test_recommend_reports_the_apis_error(stage, capsys):
    with FakeApi(400, {"error": "items must be a list of strings"}) as api:
        api_stage(stage, api.url)
        code, _, err = run(capsys, "recommend", "a")
    assert code == 1
    assert "the API answered 400: items must be a list of strings" in err


def test_recommend_checks_k_before_calling(stage, capsys):
    with FakeApi(200, {}) as api:
        api_stage(stage, api.url)
        code, _, err = run(capsys, "recommend", "a", "-k", "0")
    assert code == 1 and "the endpoint would refuse this request: 'k' is 0: it must be from 1 to 1000" in err
    assert api.requests == []
