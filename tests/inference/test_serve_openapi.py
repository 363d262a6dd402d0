"""Property-based requests built by schemathesis from infra/api/openapi.yaml, sent to the real ``serve``.

The REST API passes a request's body to the container's ``/invocations`` unchanged, so the document's
``POST /recommendations`` describes ``/invocations`` too (less API Gateway's keys and signatures). Cases that
fit the request schema (positive) and cases that break it (negative) go to the real nginx + gunicorn server;
every answer must be documented: no 5xx, a status the document lists, JSON, and a body its schema allows,
negative cases refused with a 4xx. Bounded: a fixed number of cases, derandomized, no example database.
"""
from collections import Counter

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

# the serving tests' server, started the same way
from tests.inference.test_serve_limits import nginx_binary, server, server_log  # noqa: F401
from tests.infra.test_openapi import OPENAPI_FILE

CASES = 150
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


def invocations_operation():
    """The document's POST /recommendations as the container's POST /invocations."""
    document = yaml.safe_load(OPENAPI_FILE.read_text())
    document["paths"] = {"/invocations": document["paths"].pop("/recommendations")}
    document.pop("security")  # API Gateway's key and signature; the container takes neither
    document.pop("servers")
    return schemathesis.openapi.from_dict(document)["/invocations"]["POST"]


@pytest.mark.slow
def test_generated_requests_get_documented_answers(server, capsys):  # noqa: F811
    operation = invocations_operation()
    outcomes: Counter = Counter()
    modes = st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

    @settings(max_examples=CASES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data) -> None:
        mode = data.draw(modes)
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=server.url)
        case.validate_response(response, checks=CHECKS)
        outcomes[f"{mode.value} {response.status_code}"] += 1

    check()
    with capsys.disabled():
        print(f"\nschemathesis, {sum(outcomes.values())} cases: {dict(sorted(outcomes.items()))}")
    assert sum(outcomes.values()) >= CASES
    assert outcomes["positive 200"] > 0 and any(key.startswith("negative 4") for key in outcomes)
