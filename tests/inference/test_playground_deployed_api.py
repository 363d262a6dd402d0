"""The playground pointed at a deployed stage, in a real browser: the page takes guest credentials from
Cognito and STS and sends each session, SigV4-signed, to the stage's API. A local stand-in plays the three
AWS services: it answers Cognito's and STS's calls as their API references document, checks every API call's
signature with botocore and answers with the model server's own ``/invocations``. Its CORS preflight allows
exactly the headers the Api stack allows, so a page that sent another header would be blocked as by the
real API."""
import datetime
import json
import threading
from unittest import mock

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from flask import Flask, Response, request
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from inference.playground.app import GuestApi, create_playground
from inference.predictor import create_app
from infra.stacks.api_browser import REQUEST_HEADERS
from tests.inference.test_playground_browser import (  # noqa: F401
    K,
    act,
    browser,
    catalogue_row,
    engine,
    pytestmark,
    screenshot,
    severe,
    shown,
    wait_for_updates,
)

REGION = "eu-west-1"
POOL = f"{REGION}:11111111-2222-3333-4444-555555555555"
ROLE = "arn:aws:iam::123456789012:role/gru4rec-dev-guest"
GUEST = Credentials("ASIASTANDINGUEST", "stand/in+secret", "stand-in//session=token")


class StandIn:
    """Cognito Identity, STS and the stage's API on one local server; what each was asked, in order."""

    def __init__(self, model_dir):
        self.calls: list[str] = []
        self.refused: list[str] = []
        self.server_app = create_app(model_dir).test_client()
        self.app = Flask("aws-stand-in")
        self.app.add_url_rule("/cognito/", view_func=self.cognito, methods=["POST", "OPTIONS"])
        self.app.add_url_rule("/sts/", view_func=self.sts, methods=["GET"])
        self.app.add_url_rule("/dev/recommendations", view_func=self.recommendations, methods=["POST", "OPTIONS"])
        self.page_origin = ""
        self.secret_key = GUEST.secret_key  # what the API checks signatures with

    def cors(self, response: Response, allow_headers: str) -> Response:
        response.headers["Access-Control-Allow-Origin"] = self.page_origin
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = allow_headers
        return response

    def cognito(self):
        if request.method == "OPTIONS":
            return self.cors(Response(status=204), "Content-Type,X-Amz-Target")
        action = request.headers["X-Amz-Target"].removeprefix("AWSCognitoIdentityService.")
        self.calls.append(action)
        body = request.get_json(force=True)
        answer = ({"IdentityId": f"{REGION}:guest-1"} if action == "GetId" and body == {"IdentityPoolId": POOL}
                  else {"IdentityId": body["IdentityId"], "Token": "open-id-token"} if action == "GetOpenIdToken"
                  else None)
        if answer is None:
            return self.cors(Response(json.dumps({"message": f"unexpected {action} {body}"}), status=400), "")
        return self.cors(Response(json.dumps(answer), content_type="application/x-amz-json-1.1"), "")

    def sts(self):
        self.calls.append(request.args["Action"])
        assert (request.args["RoleArn"], request.args["WebIdentityToken"]) == (ROLE, "open-id-token")
        expiration = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1))
        xml = (f"<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
               f"<AccessKeyId>{GUEST.access_key}</AccessKeyId><SecretAccessKey>{GUEST.secret_key}</SecretAccessKey>"
               f"<SessionToken>{GUEST.token}</SessionToken>"
               f"<Expiration>{expiration:%Y-%m-%dT%H:%M:%SZ}</Expiration></Credentials>"
               f"</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>")
        return self.cors(Response(xml, content_type="text/xml"), "")

    def recommendations(self):
        if request.method == "OPTIONS":
            return self.cors(Response(status=204), ",".join(REQUEST_HEADERS))
        self.calls.append("POST /dev/recommendations")
        if request.headers.get("Authorization") != self.expected_authorization():
            self.refused.append(request.headers.get("Authorization", ""))
            return self.cors(Response(json.dumps({"message": "The request signature we calculated does not match"}),
                                      status=403, content_type="application/json"), "")
        answer = self.server_app.post("/invocations", data=request.get_data(), content_type="application/json")
        return self.cors(Response(answer.get_data(), status=answer.status_code, content_type="application/json"), "")

    def expected_authorization(self) -> str:
        """botocore's SigV4 of the request as received, at the time it says it was signed."""
        signed_at = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ")
        again = AWSRequest(method="POST", url=request.url, data=request.get_data(),
                           headers={"Content-Type": request.headers["Content-Type"]})
        with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
            SigV4Auth(Credentials(GUEST.access_key, self.secret_key, GUEST.token), "execute-api", REGION).add_auth(
                again
            )
        return again.headers["Authorization"]


def serve(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def stand_in(model_dir):
    aws = StandIn(model_dir)
    server, thread = serve(aws.app)
    aws.url = f"http://127.0.0.1:{server.port}"
    yield aws
    server.shutdown()
    thread.join()


@pytest.fixture(scope="module")
def url(model_dir, stand_in):
    api = GuestApi(f"{stand_in.url}/dev/recommendations", POOL, ROLE,
                   cognito_url=f"{stand_in.url}/cognito/", sts_url=f"{stand_in.url}/sts/")
    server, thread = serve(create_playground(model_dir, api=api))
    stand_in.page_origin = f"http://localhost:{server.port}"  # another origin than the stand-in's
    yield f"{stand_in.page_origin}/"
    server.shutdown()
    thread.join()


@pytest.fixture
def page(browser, url, stand_in):  # noqa: F811
    stand_in.calls.clear()
    browser.get(url)
    wait_for_updates(browser, 0)
    return browser


def test_sessions_go_signed_to_the_deployed_api_as_a_guest(page, engine, stand_in):  # noqa: F811
    assert "answers from http://127.0.0.1" in page.find_element(By.ID, "target").text
    session = engine.popular[:2]
    for item in session:
        act(page, catalogue_row(page, item).find_element(By.CSS_SELECTOR, ".label").click)
    assert shown(page, "model-list") == engine.recommend([session], k=K)[0].recommendations
    assert stand_in.calls == ["GetId", "GetOpenIdToken", "AssumeRoleWithWebIdentity",
                              "POST /dev/recommendations", "POST /dev/recommendations"]
    assert stand_in.refused == [] and severe(page) == []
    screenshot(page, "deployed-api")


def test_a_refused_call_is_shown_as_the_apis_answer(page, engine, stand_in, monkeypatch):  # noqa: F811
    monkeypatch.setattr(stand_in, "secret_key", "another secret")  # the guest's signatures no longer match
    act(page, catalogue_row(page, engine.popular[0]).find_element(By.CSS_SELECTOR, ".label").click)
    status = page.find_element(By.ID, "status").text
    assert "403" in status and "signature" in status
    assert stand_in.refused
