"""The Flask app through its test client: routes, answers checked against the engine, errors as JSON, and
random bodies thrown at ``/invocations`` (never a 5xx, always a JSON answer)."""
import json
import shutil

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from inference import contracts, streaming
from inference.engine import Recommender
from inference.job_filters import FILTERS_FILE
from inference.predictor import create_app
from inference.server_settings import SettingsError, available_cores, max_payload_bytes
from tests.conftest import MODEL_VERSION

JSON_LINES_TYPES = ["application/jsonlines", "application/x-jsonlines", "application/json-lines",
                    "application/jsonl", "application/jsonlines; charset=utf-8"]


def strict_json(text: str):
    """Parse as standard JSON: NaN and Infinity are not JSON."""
    def reject(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=reject)


@pytest.fixture(scope="module")
def client(model_dir):
    return create_app(model_dir).test_client()


@pytest.fixture(scope="module")
def engine(model_dir) -> Recommender:
    return Recommender.load(model_dir)


@pytest.fixture(scope="module")
def items(engine) -> list[str]:
    return engine.items


def expected_answer(engine, session, k=20, exclude_seen=False, versioned=True) -> dict:
    """The engine's answer for one session, ending in the model directory's version unless it is one of many."""
    (result,) = engine.recommend([session], k=k, exclude_seen=exclude_seen)
    answer = contracts.session_answer(result)
    return {**answer, "model_version": MODEL_VERSION} if versioned else answer


def assert_same_answer(got: dict, expected: dict):
    assert [r["item_id"] for r in got["recommendations"]] == [r["item_id"] for r in expected["recommendations"]]
    for mine, theirs in zip(got["recommendations"], expected["recommendations"]):
        assert mine["score"] == pytest.approx(theirs["score"], rel=1e-4, abs=1e-4)
    assert {key: value for key, value in got.items() if key != "recommendations"} == \
        {key: value for key, value in expected.items() if key != "recommendations"}


def post(client, body, content_type="application/json", **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post("/invocations", data=data, content_type=content_type, headers=headers)


def assert_error(response, status: int, *fragments: str):
    assert response.status_code == status
    assert response.mimetype == "application/json"
    message = response.get_json()["error"]
    for fragment in fragments:
        assert fragment in message


# -- /ping and /execution-parameters ---------------------------------------------------------------------

def test_ping_answers_200_in_json_naming_the_model(client):
    response = client.get("/ping")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"status": "ready", "model_version": MODEL_VERSION}


def test_options_answers_in_json_not_html(client):
    response = client.options("/invocations")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert set(response.headers["Allow"].split(", ")) == {"OPTIONS", "POST"}


def test_a_broken_model_dir_is_503_json_and_the_worker_keeps_answering(model_dir, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    (broken / "scorer.onnx").write_bytes((model_dir / "scorer.onnx").read_bytes())
    client = create_app(broken).test_client()
    for _ in range(2):
        assert_error(client.get("/ping"), 503, "model directory file missing: item_embeddings.npy")
    assert_error(post(client, {"items": ["a"]}), 503, "not available", "item_embeddings.npy")
    assert str(tmp_path) not in client.get("/ping").get_json()["error"]  # what is wrong, not where
    assert_error(post(client, {"items": "a"}), 400, "'items'")
    assert_error(post(client, {"items": ["a"]}, "text/plain"), 415)
    assert client.get("/execution-parameters").status_code == 200


def test_a_model_dir_repaired_after_a_failed_load_is_loaded_on_the_next_request(model_dir, tmp_path):
    target = tmp_path / "model"
    client = create_app(target).test_client()
    assert client.get("/ping").status_code == 503
    target.mkdir()
    for path in model_dir.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    assert client.get("/ping").status_code == 200


@pytest.mark.parametrize("workers, expected", [("3", 3), ("1", 1), (None, None), ("zero", None), ("0", None)])
def test_execution_parameters_follow_model_server_workers(client, monkeypatch, workers, expected):
    if workers is None:
        monkeypatch.delenv("MODEL_SERVER_WORKERS", raising=False)
    else:
        monkeypatch.setenv("MODEL_SERVER_WORKERS", workers)
    response = client.get("/execution-parameters")
    assert response.status_code == 200
    assert response.get_json() == {"MaxConcurrentTransforms": expected or available_cores(),
                                   "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


# -- application/json ------------------------------------------------------------------------------------

def test_one_session(client, engine, items):
    session = [items[3], items[10], "never-seen", items[3]]
    response = post(client, {"items": session, "k": 7, "exclude_seen": True})
    assert response.status_code == 200 and response.mimetype == "application/json"
    answer = response.get_json()
    assert set(answer) == {"recommendations", "unknown_items", "model_version"} and answer["unknown_items"] == 1
    assert answer["model_version"] == MODEL_VERSION
    assert len(answer["recommendations"]) == 7
    assert not {r["item_id"] for r in answer["recommendations"]} & set(session)
    assert_same_answer(answer, expected_answer(engine, session, 7, True))


def test_one_session_with_integer_ids_and_default_k(client, engine, items):
    response = post(client, {"items": [int(items[0]), int(items[1])]}, "application/json; charset=utf-8")
    assert_same_answer(response.get_json(), expected_answer(engine, items[:2]))
    assert len(response.get_json()["recommendations"]) == contracts.DEFAULT_K


def test_one_unknown_session_gets_the_fallback(client, engine):
    answer = post(client, {"items": ["nobody", "knows"], "k": 4}).get_json()
    assert answer == {"recommendations": [{"item_id": item, "score": 0.0} for item in engine.popular[:4]],
                      "unknown_items": 2, "fallback": True, "model_version": MODEL_VERSION}


def test_an_empty_session_gets_the_popular_items_in_every_request_form(client, model_dir):
    """A visitor on the home page: the metadata's popular items, marked fallback, as one session, one of
    several (beside a known one) and a JSON line; the request's filter applies to them too."""
    popular = json.loads((model_dir / "metadata.json").read_text())["popular_items"]
    fallback = {"recommendations": [{"item_id": item, "score": 0.0} for item in popular[:5]],
                "unknown_items": 0, "fallback": True}
    assert post(client, {"items": [], "k": 5}).get_json() == {**fallback, "model_version": MODEL_VERSION}
    many = post(client, {"sessions": [{"session_id": "home", "items": []}, {"items": popular[:1]}], "k": 5})
    first, second = many.get_json()["results"]
    assert first == {"session_id": "home", **fallback} and "fallback" not in second
    lines = post(client, b'{"session_id": 1, "items": [], "k": 5}\n', "application/jsonlines")
    assert json.loads(lines.data) == {"session_id": 1, **fallback, "model_version": MODEL_VERSION}
    filtered = post(client, {"items": [], "k": 5, "exclude_items": popular[:2]}).get_json()
    assert [r["item_id"] for r in filtered["recommendations"]] == popular[2:7] and filtered["fallback"] is True


def test_many_sessions_each_with_its_own_options_in_order(client, engine, items):
    sessions = [{"session_id": "s1", "items": items[:3]},
                {"session_id": 2, "items": ["unknown"], "k": 2},
                {"items": items[5:6], "k": 3, "exclude_seen": True},
                {"session_id": "s4", "items": items[7:20], "exclude_seen": False}]
    response = post(client, {"sessions": sessions, "k": 5, "exclude_seen": True})
    assert response.status_code == 200
    assert response.get_json()["model_version"] == MODEL_VERSION
    results = response.get_json()["results"]
    assert [result["session_id"] for result in results] == ["s1", 2, None, "s4"]
    options = [(5, True), (2, True), (3, True), (5, False)]
    for session, result, (k, exclude_seen) in zip(sessions, results, options):
        expected = expected_answer(engine, session["items"], k, exclude_seen, versioned=False)
        assert_same_answer({key: value for key, value in result.items() if key != "session_id"}, expected)
        assert len(result["recommendations"]) == k


@pytest.mark.parametrize("body, content_type, status, fragments", [
    (b"{", "application/json", 400, ["not valid JSON"]),
    (b"", "application/json", 400, ["empty"]),
    (b"\xff", "application/json", 400, ["UTF-8"]),
    (b'{"items": ["a"], "k": 0}', "application/json", 400, ["'k'"]),
    (b'{"items": ["a"], "k": ' + b"1" * 5000 + b"}", "application/json", 400, ["digits"]),
    (b'{"sessions": [{"items": {}}]}', "application/json", 400, ["'sessions[0].items'"]),
    (b'{"items": ["a"]}', "text/plain", 415, ["'text/plain'"]),
    (b'{"items": ["a"]}', None, 415, ["missing"]),
    (b"\n\n", "application/jsonlines", 400, ["no JSON lines"]),
])
def test_client_mistakes_are_json_errors(client, body, content_type, status, fragments):
    assert_error(post(client, body, content_type), status, *fragments)


def test_a_body_over_6_mb_is_413(client):
    body = json.dumps({"items": ["x" * (contracts.MAX_PAYLOAD_BYTES + 1)]}).encode()
    assert_error(post(client, body), 413, "6 MB")
    assert_error(post(client, body, "application/jsonlines"), 413)


def test_a_serverless_model_refuses_bodies_over_4_mb(model_dir, client):
    """SageMaker Serverless Inference takes at most 4 MB: a body between 4 and 6 MB is refused there only."""
    serverless = create_app(model_dir, payload_limit=max_payload_bytes({"SAGEMAKER_SERVERLESS": "true"})).test_client()
    body = json.dumps({"items": ["x" * (4 * 1024 * 1024)]}).encode()
    assert 4 * 1024 * 1024 < len(body) < 6 * 1024 * 1024
    assert_error(post(serverless, body), 413, "4,194,304 bytes (4 MB)")
    assert post(client, body).status_code != 413


@pytest.mark.parametrize("environ, limit", [
    ({}, 6 * 1024 * 1024), ({"SAGEMAKER_SERVERLESS": "false"}, 6 * 1024 * 1024),
    ({"SAGEMAKER_SERVERLESS": "TRUE"}, 4 * 1024 * 1024),
])
def test_the_payload_limit_follows_the_serverless_variable(environ, limit):
    assert max_payload_bytes(environ) == limit


def test_a_serverless_variable_that_is_no_boolean_is_refused_by_name():
    with pytest.raises(SettingsError, match="SAGEMAKER_SERVERLESS"):
        max_payload_bytes({"SAGEMAKER_SERVERLESS": "yes"})


@pytest.mark.parametrize("method, path, status", [
    ("get", "/nowhere", 404), ("post", "/recommendations", 404), ("get", "/invocations", 405),
    ("post", "/ping", 405), ("put", "/invocations", 405), ("delete", "/execution-parameters", 405),
])
def test_unknown_routes_and_methods_are_json_errors(client, method, path, status):
    response = getattr(client, method)(path)
    assert_error(response, status)
    assert response.get_json()["error"]


@pytest.mark.parametrize("accept", ["application/json", "*/*", "application/jsonlines", "application/*",
                                    "text/html,application/xhtml+xml,*/*;q=0.8"])
def test_answers_in_the_request_format_whatever_json_accept_header(client, items, accept):
    one = post(client, {"items": items[:1], "k": 2}, Accept=accept)
    assert one.status_code == 200 and one.mimetype == "application/json"
    lines = post(client, b'{"items": ["%s"], "k": 2}\n' % items[0].encode(), "application/jsonlines", Accept=accept)
    assert lines.status_code == 200 and lines.mimetype == "application/jsonlines"


@pytest.mark.parametrize("accept", ["text/csv", "application/xml", "application/json;q=0"])
def test_an_accept_header_without_json_is_406(client, items, accept):
    assert_error(post(client, {"items": items[:1]}, Accept=accept), 406, repr(accept))


def test_a_405_says_which_methods_are_allowed(client):
    allowed = client.get("/invocations").headers.get("Allow", "")
    assert "POST" in allowed and "GET" not in allowed


def test_the_model_loads_once_per_process_on_the_first_request(model_dir, monkeypatch):
    loads = []
    original = Recommender.load.__func__

    def counting_load(cls, *args, **kwargs):
        loads.append(args)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(Recommender, "load", classmethod(counting_load))
    client = create_app(model_dir).test_client()
    assert loads == []  # nothing is loaded before a request (gunicorn forks workers after the import)
    assert client.get("/execution-parameters").status_code == 200 and loads == []
    assert client.get("/ping").status_code == 200
    assert post(client, {"items": ["a"]}).status_code == 200
    assert client.get("/ping").status_code == 200
    assert len(loads) == 1


def test_an_unexpected_error_is_a_500_without_details(model_dir, monkeypatch, caplog):
    client = create_app(model_dir).test_client()
    assert client.get("/ping").status_code == 200

    def broken(self, sessions, k=20, exclude_seen=False, filters=None, exact=False):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Recommender, "recommend", broken)
    response = post(client, {"items": ["a"]})
    assert_error(response, 500, "internal error")
    assert "secret" not in response.get_data(as_text=True)
    assert "secret internals" in caplog.text


# -- application/jsonlines -------------------------------------------------------------------------------

@pytest.mark.parametrize("content_type", JSON_LINES_TYPES)
def test_json_lines_one_answer_line_per_record_in_order(client, engine, items, content_type):
    records = [
        {"session_id": "a", "items": items[:2]},
        '{"session_id": "b", "items": [',
        {"session_id": "c", "items": ["ghost"], "k": 3},
        "",
        {"session_id": "d", "items": []},
        '"just a string"',
        {"session_id": 5, "items": items[4:9], "k": 4, "exclude_seen": True},
        {"session_id": {"not": "an id"}, "items": ["x"]},
        {"session_id": "e\u2028f", "items": items[9:10]},
    ]
    body = "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n"
    response = post(client, body.encode(), content_type)
    assert response.status_code == 200 and response.mimetype == "application/jsonlines"
    text = response.get_data(as_text=True)
    assert text.endswith("\n")
    answers = [strict_json(line) for line in text.split("\n")[:-1]]
    assert [answer.get("session_id", answer.get("line")) for answer in answers] == [
        "a", 2, "c", "d", 6, 5, 8, "e\u2028f"]
    assert [("error" in answer) for answer in answers] == [False, True, False, False, True, False, True, False]
    assert answers[3]["fallback"] is True and "'session_id'" in answers[6]["error"]
    assert [answer["model_version"] for answer in answers] == [MODEL_VERSION] * len(answers)
    for answer, (session, k, exclude_seen) in zip(
            [answers[0], answers[2], answers[5], answers[7]],
            [(items[:2], 20, False), (["ghost"], 3, False), (items[4:9], 4, True), (items[9:10], 20, False)]):
        expected = expected_answer(engine, session, k, exclude_seen)
        assert_same_answer({key: value for key, value in answer.items() if key != "session_id"}, expected)


def test_json_lines_of_only_bad_records_still_answer_200(client):
    response = post(client, b'{"items": "a"}\n[]\n{"session_id": "x"}\n', "application/jsonlines")
    assert response.status_code == 200
    answers = [strict_json(line) for line in response.get_data(as_text=True).split("\n")[:-1]]
    assert [(a.get("line"), a.get("session_id")) for a in answers] == [(1, None), (2, None), (None, "x")]
    assert all(answer["error"] for answer in answers)


# -- random bodies ---------------------------------------------------------------------------------------

JSON_TYPES = ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"]
OTHER_TYPES = ["text/plain", "text/csv", "application/octet-stream", "", "application/json; charset", ";;;",
               "application/json; boundary=\"x\"", "multipart/form-data", "application/x-www-form-urlencoded"]
CONTENT_TYPES = st.sampled_from(JSON_TYPES + JSON_LINES_TYPES + OTHER_TYPES)
HEADERS = st.dictionaries(
    st.sampled_from(["Accept", "X-Amzn-SageMaker-Custom-Attributes", "Content-Encoding", "X-Amzn-Trace-Id"]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30), max_size=2)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)


def mostly(draw, valid, invalid):
    """A valid value three times in four, else an invalid one."""
    return draw(valid if draw(st.integers(0, 3)) else invalid)


@st.composite
def near_valid_sessions(draw, items, with_id=True):
    """Session objects whose fields are mostly valid, now and then wrong, absent, or one too many."""
    item_ids = st.sampled_from(items) | st.text(max_size=8) | st.integers(-5, 10 ** 12)
    fields = {
        "items": (st.lists(item_ids, min_size=1, max_size=6), st.lists(JSON_VALUES, max_size=3) | JSON_VALUES),
        "k": (st.integers(1, 1000), st.sampled_from([0, 1001, -3, True, 2.0, "3", None, 10 ** 20])),
        "exclude_seen": (st.booleans(), JSON_VALUES),
        "exclude_items": (st.lists(item_ids, max_size=6), st.lists(JSON_VALUES, min_size=1, max_size=3) | JSON_VALUES),
        "include_items": (st.lists(item_ids, max_size=6), st.lists(JSON_VALUES, min_size=1, max_size=3) | JSON_VALUES),
    }
    if with_id:
        fields["session_id"] = (st.text(max_size=10) | st.integers(), JSON_VALUES)
    session = {}
    for name, (valid, invalid) in fields.items():
        if name == "items" or draw(st.booleans()):
            session[name] = mostly(draw, valid, invalid)
    if draw(st.integers(0, 9)) == 0:
        session.pop("items") if draw(st.booleans()) else session.update({draw(st.text(max_size=8)): None})
    return session


@st.composite
def near_valid_documents(draw, items):
    if draw(st.booleans()):
        return draw(near_valid_sessions(items, with_id=False))
    sessions = st.lists(near_valid_sessions(items), min_size=1, max_size=4)
    document = {"sessions": mostly(draw, sessions, st.just([]) | JSON_VALUES)}
    for name, valid, invalid in [("k", st.integers(1, 1000), st.integers(-1, 0)),
                                 ("exclude_seen", st.booleans(), JSON_VALUES),
                                 ("include_items", st.lists(st.sampled_from(items), max_size=8), JSON_VALUES)]:
        if draw(st.booleans()):
            document[name] = mostly(draw, valid, invalid)
    if draw(st.integers(0, 9)) == 0:
        document["items"] = [items[0]]
    return document


@st.composite
def json_lines_bodies(draw, items):
    record = st.one_of(near_valid_sessions(items).map(json.dumps),
                       near_valid_sessions(items).map(lambda session: json.dumps(session, ensure_ascii=False)),
                       JSON_VALUES.map(json.dumps), st.text(max_size=20))
    ends = st.sampled_from(["\n", "\n", "\r\n", "\n\n", "\n \t\n"])
    lines = draw(st.lists(st.tuples(record, ends), min_size=1, max_size=6))
    return "".join(line + end for line, end in lines).encode("utf-8", errors="surrogatepass")


def check_answer(response, body: bytes):
    """Never a 5xx; an error is a JSON object with a message; an answer has the shape of its contract."""
    assert response.status_code < 500, response.get_data(as_text=True)
    event(f"HTTP {response.status_code} {response.mimetype}")
    if response.status_code != 200:
        assert response.mimetype == "application/json"
        error = strict_json(response.get_data(as_text=True))["error"]
        assert isinstance(error, str) and error
        return
    if response.mimetype == "application/json":
        answer = strict_json(response.get_data(as_text=True))
        assert "recommendations" in answer or "results" in answer
        return
    assert response.mimetype == "application/jsonlines"
    answers = [strict_json(line) for line in response.get_data(as_text=True).split("\n")[:-1]]
    records = [line for line in body.split(b"\n") if line.strip(b" \t\r")]
    assert len(answers) == len(records)
    for answer in answers:
        assert ("recommendations" in answer) != ("error" in answer)
        assert "session_id" in answer or "line" in answer


@pytest.fixture(scope="module")
def catalogue(items) -> list[str]:
    return items[:30]


FUZZ = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(body=st.binary(max_size=300), content_type=CONTENT_TYPES, headers=HEADERS)
def test_random_bytes_never_make_a_server_error(client, body, content_type, headers):
    check_answer(post(client, body, content_type, **headers), body)


@FUZZ
@given(value=JSON_VALUES, content_type=CONTENT_TYPES, headers=HEADERS)
def test_random_json_values_never_make_a_server_error(client, value, content_type, headers):
    body = json.dumps(value).encode()
    check_answer(post(client, body, content_type, **headers), body)


@FUZZ
@given(data=st.data(), content_type=st.sampled_from(JSON_TYPES * 3 + JSON_LINES_TYPES + OTHER_TYPES), headers=HEADERS)
def test_near_valid_documents_never_make_a_server_error(client, catalogue, data, content_type, headers):
    document = data.draw(near_valid_documents(catalogue))
    body = json.dumps(document, ensure_ascii=data.draw(st.booleans())).encode("utf-8", errors="surrogatepass")
    check_answer(post(client, body, content_type, **headers), body)


@FUZZ
@given(data=st.data(), content_type=st.sampled_from(JSON_LINES_TYPES))
def test_near_valid_json_lines_never_make_a_server_error(client, catalogue, data, content_type):
    body = data.draw(json_lines_bodies(catalogue))
    check_answer(post(client, body, content_type), body)


# -- business rules --------------------------------------------------------------------------------------

def test_filters_in_a_json_request_follow_the_engine(client, engine, items):
    session = items[2:6]
    include = items[10:40] + ["not-an-item"]
    response = post(client, {"items": session, "k": 5, "include_items": include, "exclude_items": [items[11]]})
    assert response.status_code == 200
    answer = response.get_json()
    item_filter = engine.item_filter(exclude=[items[11]], include=include)
    expected = engine.recommend([session], k=5, filters=[item_filter])[0]
    assert [r["item_id"] for r in answer["recommendations"]] == [item for item, _ in expected.recommendations]
    assert answer["unknown_filter_items"] == 1 and answer["unknown_items"] == 0
    assert {r["item_id"] for r in answer["recommendations"]} <= set(items[10:40]) - {items[11]}


def test_a_jobs_filters_file_applies_to_every_line_without_its_own(model_dir, tmp_path, items):
    job_model = tmp_path / "model"
    shutil.copytree(model_dir, job_model)
    (job_model / FILTERS_FILE).write_text(json.dumps({"include_items": items[:15], "exclude_items": [items[0]]}))
    client = create_app(job_model).test_client()
    lines = [{"session_id": "job", "items": items[20:23], "k": 50},
             {"session_id": "own", "items": items[20:23], "k": 50, "include_items": items[30:33]},
             {"session_id": "none", "items": items[20:23], "k": 50, "include_items": [], "exclude_items": []}]
    response = post(client, "\n".join(map(json.dumps, lines)).encode(), "application/jsonlines")
    job, own, none = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert {r["item_id"] for r in job["recommendations"]} == set(items[1:15])
    assert {r["item_id"] for r in own["recommendations"]} == set(items[30:33])
    assert none["recommendations"] == []
    plain = post(client, {"items": items[20:23], "k": 50}).get_json()
    assert {r["item_id"] for r in plain["recommendations"]} == set(items[1:15])


def test_a_bad_filters_file_is_named_by_ping(model_dir, tmp_path):
    job_model = tmp_path / "model"
    shutil.copytree(model_dir, job_model)
    (job_model / FILTERS_FILE).write_text(json.dumps({"include": ["a"]}))
    response = create_app(job_model).test_client().get("/ping")
    assert response.status_code == 503 and FILTERS_FILE in response.get_json()["error"]


def test_a_json_lines_answer_streamed_in_many_chunks_is_the_whole_answer(client, engine, items, monkeypatch):
    """Chunks of at most 25 recommendations asked for: 60 records (bad ones among them, k from 1 to 20) come back
    as many chunks whose concatenation is the answer written in one piece by contracts.json_lines_answer."""
    monkeypatch.setattr(streaming, "STREAM_CHUNK_RECOMMENDATIONS", 25)
    lines = [json.dumps({"session_id": n, "items": items[n % 30:n % 30 + 1 + n % 4], "k": 1 + n % 20})
             if n % 7 else '{"broken": ' for n in range(60)]
    body = ("\n".join(lines) + "\n").encode()
    records = contracts.parse_json_lines(body)
    sessions = [record for record in records if isinstance(record, contracts.SessionRequest)]
    expected = contracts.json_lines_answer(records, streaming.score(engine, sessions), MODEL_VERSION)
    chunks = list(streaming.stream_json_lines(engine, list(records), {}, MODEL_VERSION))
    assert len(chunks) > 20 and all(chunk.endswith(b"\n") for chunk in chunks)
    assert_same_lines(b"".join(chunks), expected)
    response = post(client, body, "application/jsonlines")
    assert response.status_code == 200
    assert_same_lines(response.data, expected)


def assert_same_lines(answer: bytes, expected: bytes) -> None:
    """The same lines, ids and order; scores equal to float32 rounding (a batch's size changes the matmul's sums)."""
    got, wanted = [[json.loads(line) for line in text.splitlines()] for text in (answer, expected)]
    assert len(got) == len(wanted)
    for line, reference in zip(got, wanted):
        scores = [[item.pop("score") for item in each.get("recommendations", [])] for each in (line, reference)]
        assert line == reference
        assert scores[0] == pytest.approx(scores[1], rel=1e-5, abs=1e-5)
