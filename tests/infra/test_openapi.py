"""infra/api/openapi.yaml: a valid OpenAPI 3 document whose request schema is the API's model."""
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from inference.contracts import ClientError, parse_json_request

OPENAPI_FILE = Path(__file__).resolve().parents[2] / "infra" / "api" / "openapi.yaml"

GOOD_REQUESTS = [
    {"items": ["214716935", "214832672"], "k": 20, "exclude_seen": True},
    {"items": ["a"]},
    {"items": []},
    {"sessions": [{"items": []}, {"items": ["a"]}]},
    {"items": [214716935, "214832672"]},
    {"items": [""]},
    {"sessions": [{"session_id": "s1", "items": ["a", "b"]}, {"session_id": "s2", "items": ["c"]}], "k": 10},
    {"sessions": [{"session_id": 7, "items": ["a"], "k": 5, "exclude_seen": True}, {"items": ["b"]}]},
    {"items": ["a"], "k": 1},
    {"items": ["a"] * 1000, "k": 1000, "exclude_seen": False},
    {"items": ["a"] * 5000},
    {"items": ["a"], "exclude_items": ["b", 7], "include_items": []},
    {"items": ["a"], "include_items": ["x"] * 10_000},
    {"sessions": [{"items": ["a"], "include_items": ["c"]}, {"items": ["b"]}], "exclude_items": ["a"]},
]
BAD_REQUESTS = {
    "k zero": {"items": ["a"], "k": 0},
    "k too large": {"items": ["a"], "k": 1001},
    "k as a string": {"items": ["a"], "k": "5"},
    "k fractional": {"items": ["a"], "k": 2.5},
    "k boolean": {"items": ["a"], "k": True},
    "neither items nor sessions": {"k": 5},
    "both items and sessions": {"items": ["a"], "sessions": [{"session_id": "s", "items": ["b"]}]},
    "item a number with a fraction": {"items": [2.5]},
    "item a boolean": {"items": [True]},
    "item null": {"items": [None]},
    "items not a list": {"items": "a"},
    "unknown field": {"items": ["a"], "top_k": 5},
    "session_id beside items": {"session_id": "s", "items": ["a"]},
    "session without items": {"sessions": [{"session_id": "s"}]},
    "session with an unknown field": {"sessions": [{"items": ["a"], "weight": 2}]},
    "session_id a list": {"sessions": [{"session_id": ["s"], "items": ["a"]}]},
    "session k out of range": {"sessions": [{"items": ["a"], "k": 0}]},
    "no sessions": {"sessions": []},
    "session not an object": {"sessions": [["a"]]},
    "exclude_seen not boolean": {"items": ["a"], "exclude_seen": "yes"},
    "not an object": ["a", "b"],
    "exclude_items not a list": {"items": ["a"], "exclude_items": "b"},
    "include_items over 10,000": {"items": ["a"], "include_items": ["x"] * 10_001},
    "include_items with null": {"items": ["a"], "include_items": [None]},
    "session exclude_items with a boolean": {"sessions": [{"items": ["a"], "exclude_items": [False]}]},
}


@pytest.fixture(scope="module")
def openapi() -> dict:
    return yaml.safe_load(OPENAPI_FILE.read_text())


@pytest.fixture(scope="module")
def api_model_schema(synth) -> dict:
    """The request model's schema as synthesized into the API stack's template."""
    models = [
        r["Properties"]
        for r in synth.template_dict("api")["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Model"
    ]
    model, = models
    return model["Schema"]


def _resolve(node, components: dict):
    """The schema with ``#/components/schemas/X`` references replaced by their targets."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolve(components[node["$ref"].rsplit("/", 1)[1]], components)
        return {key: _resolve(value, components) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(item, components) for item in node]
    return node


def test_document_is_valid_openapi_3(openapi):
    assert openapi["openapi"].startswith("3.")
    validate_openapi(openapi)


def test_request_schema_equals_the_api_model(openapi, api_model_schema):
    documented = openapi["components"]["schemas"]["RecommendationRequest"]
    assert api_model_schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert documented == {key: value for key, value in api_model_schema.items() if key != "$schema"}


def test_documented_request_examples_are_valid(openapi, api_model_schema):
    examples = openapi["paths"]["/recommendations"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) >= 3
    for example in examples.values():
        jsonschema.Draft4Validator(api_model_schema).validate(example["value"])


@pytest.mark.parametrize("request_body", GOOD_REQUESTS)
def test_contract_requests_pass_the_model(api_model_schema, request_body):
    jsonschema.Draft4Validator(api_model_schema).validate(request_body)


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_fail_the_model(api_model_schema, case):
    assert not jsonschema.Draft4Validator(api_model_schema).is_valid(BAD_REQUESTS[case])


@pytest.mark.parametrize(
    "request_body",
    [*GOOD_REQUESTS, *BAD_REQUESTS.values()],
    ids=[f"good{i}" for i in range(len(GOOD_REQUESTS))] + sorted(BAD_REQUESTS, key=list(BAD_REQUESTS).index),
)
def test_the_api_model_and_the_container_agree_on_what_is_valid(api_model_schema, request_body):
    """The gateway must not reject what the container answers, nor pass on what it refuses
    (one known difference aside: over 10,000 sessions, which the container refuses with 413)."""
    try:
        parse_json_request(json.dumps(request_body).encode())
        container_accepts = True
    except ClientError:
        container_accepts = False
    assert jsonschema.Draft4Validator(api_model_schema).is_valid(request_body) == container_accepts


def test_documented_response_examples_match_their_schema(openapi):
    components = openapi["components"]["schemas"]
    ok = openapi["paths"]["/recommendations"]["post"]["responses"]["200"]["content"]["application/json"]
    schema = _resolve(ok["schema"], components)
    for example in ok["examples"].values():
        jsonschema.Draft4Validator(schema).validate(example["value"])
    error_schema = _resolve({"$ref": "#/components/schemas/Error"}, components)
    jsonschema.Draft4Validator(error_schema).validate({"error": "k must be between 1 and 1000"})


def test_every_status_the_api_answers_is_documented(openapi, synth):
    documented = set(openapi["paths"]["/recommendations"]["post"]["responses"])
    (method,) = [
        r["Properties"]
        for r in synth.template_dict("api")["Resources"].values()
        if r["Type"] == "AWS::ApiGateway::Method"
    ]
    assert {r["StatusCode"] for r in method["MethodResponses"]} <= documented


def test_the_containers_answers_match_the_documented_response(openapi):
    """What inference.contracts writes, for one session and for several, is a documented 200 body, and the
    model_version every answer ends with is required there."""
    from inference.contracts import JsonRequest, SessionRequest, json_answer
    from inference.engine import SessionResult

    components = openapi["components"]["schemas"]
    ok = openapi["paths"]["/recommendations"]["post"]["responses"]["200"]["content"]["application/json"]
    validator = jsonschema.Draft4Validator(_resolve(ok["schema"], components))
    results = [SessionResult([("a", 2.0)], 0), SessionResult([("p", 0.0)], 1, fallback=True)]
    one = json_answer(JsonRequest(False, [SessionRequest(["x"])]), results[:1], "gru4rec-dev-train-1")
    many = json_answer(JsonRequest(True, [SessionRequest(["x"], session_id="s1"), SessionRequest(["y"])]), results,
                       "initial-1")
    for answer in (one, many):
        validator.validate(answer)
        unversioned = {key: value for key, value in answer.items() if key != "model_version"}
        assert not validator.is_valid(unversioned)
