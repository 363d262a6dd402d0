"""The ``/invocations`` wire contracts: every accepted form, every rejected one with a message naming the
field, JSON lines answered line by line, and the shape of the answers."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference import contracts
from inference.contracts import BadLine, ClientError, JsonRequest, SessionRequest
from inference.engine import SessionResult


def encode(document) -> bytes:
    return json.dumps(document).encode()


def parsed(document) -> tuple[bool, list[SessionRequest]]:
    request = contracts.parse_json_request(encode(document))
    return request.many, request.sessions


def rejected(body: bytes) -> ClientError:
    with pytest.raises(ClientError) as caught:
        contracts.parse_json_request(body)
    return caught.value


# -- content types ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, kind", [
    ("application/json", contracts.JSON),
    ("application/json; charset=utf-8", contracts.JSON),
    ("Application/JSON ;charset=UTF-8", contracts.JSON),
    ("application/jsonlines", contracts.JSON_LINES),
    ("application/jsonlines; charset=utf-8", contracts.JSON_LINES),
    ("application/x-jsonlines", contracts.JSON_LINES),
    ("application/json-lines", contracts.JSON_LINES),
    ("application/jsonl", contracts.JSON_LINES),
    (" APPLICATION/X-JSONLINES ", contracts.JSON_LINES),
])
def test_accepted_content_types(header, kind):
    assert contracts.check_content_type(header) == kind


@pytest.mark.parametrize("header", [None, "", "text/plain", "text/csv", "application/xml", "application/x-npy",
                                    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                                    "application/json-seq", "json", "application/jsonlinesx"])
def test_other_content_types_are_415_naming_what_is_accepted(header):
    with pytest.raises(ClientError) as caught:
        contracts.check_content_type(header)
    assert caught.value.status == 415
    assert "application/json" in caught.value.message and "application/jsonlines" in caught.value.message
    assert (repr(header) if header else "missing") in caught.value.message


@pytest.mark.parametrize("accept", [None, "", "*/*", "application/json", "application/jsonlines",
                                    "application/x-jsonlines", "application/*", "text/html, */*;q=0.8",
                                    "text/csv, application/json;q=0.5", "APPLICATION/JSON; charset=utf-8"])
def test_accept_headers_that_allow_json(accept):
    contracts.check_accept(accept)


@pytest.mark.parametrize("accept", ["text/csv", "text/html, image/png", "application/json;q=0",
                                    "application/xml", "application/json-seq", "*/*;q=0.0"])
def test_accept_headers_without_json_are_406(accept):
    with pytest.raises(ClientError) as caught:
        contracts.check_accept(accept)
    assert caught.value.status == 406 and repr(accept) in caught.value.message


# -- application/json: accepted --------------------------------------------------------------------------

def test_one_session_with_defaults():
    assert contracts.parse_json_request(encode({"items": ["a", "b"]})) == JsonRequest(
        False, [SessionRequest(["a", "b"])]
    )


def test_one_session_with_every_option():
    many, sessions = parsed({"items": ["a"], "k": 1000, "exclude_seen": True})
    assert not many and sessions == [SessionRequest(["a"], k=1000, exclude_seen=True)]


def test_integer_item_ids_become_strings():
    (session,) = contracts.parse_json_request(encode({"items": [214716935, "x", 0, -3], "k": 1})).sessions
    assert session.items == ["214716935", "x", "0", "-3"]


def test_many_sessions_take_the_request_defaults_unless_they_set_their_own():
    document = {"sessions": [{"session_id": "s1", "items": ["a", "b"]},
                             {"session_id": 7, "items": ["c"], "k": 3, "exclude_seen": False},
                             {"items": ["d"]}],
                "k": 10, "exclude_seen": True}
    many, sessions = parsed(document)
    assert many
    assert sessions == [SessionRequest(["a", "b"], 10, True, "s1"), SessionRequest(["c"], 3, False, 7),
                        SessionRequest(["d"], 10, True, None)]


def test_utf8_text_charset_and_surrounding_whitespace():
    body = ("\n  " + json.dumps({"items": ["café", "日本"]}, ensure_ascii=False) + " \r\n").encode()
    assert contracts.parse_json_request(body).sessions[0].items == ["café", "日本"]


def test_a_byte_order_mark_is_ignored():
    body = b"\xef\xbb\xbf" + encode({"items": ["a"]})
    assert contracts.parse_json_request(body).sessions == [SessionRequest(["a"])]
    assert contracts.parse_json_lines(body + b"\n" + encode({"items": ["b"]})) == [SessionRequest(["a"]),
                                                                                     SessionRequest(["b"])]


def test_the_largest_accepted_sizes():
    """MAX_SESSIONS sessions (at a k that keeps sessions x k within its bound); a session of any length (the
    engine reads its latest items); 100,000+ JSON lines."""
    sessions = [{"items": ["a"]}] * contracts.MAX_SESSIONS
    k = contracts.MAX_JSON_RECOMMENDATIONS // contracts.MAX_SESSIONS
    assert len(contracts.parse_json_request(encode({"sessions": sessions, "k": k})).sessions) == contracts.MAX_SESSIONS
    items = ["i"] * 50_000
    assert len(contracts.parse_json_request(encode({"items": items})).sessions[0].items) == 50_000
    body = b'{"items": ["a"]}\n' * 120_000
    assert len(contracts.parse_json_lines(body)) == 120_000


# -- application/json: rejected --------------------------------------------------------------------------

@pytest.mark.parametrize("body, status, fragments", [
    (b"", 400, ["empty"]),
    (b"  \n\t ", 400, ["empty"]),
    (b"{", 400, ["not valid JSON"]),
    (b"{\"items\": [\"a\"],}", 400, ["not valid JSON", "line 1 column 17"]),
    (b"{\"items\": [\"a\"]}\n{\"items\": [\"b\"]}", 400, ["not valid JSON", "line 2"]),
    (b"\xff\xfe{}", 400, ["UTF-8", "position 0"]),
    (b"\xef\xbb\xbf", 400, ["empty"]),
    (b"{\"items\": [\"caf\xe9\"]}", 400, ["UTF-8", "position 15"]),
    (b"[[\"a\"]]", 400, ["JSON object", "a list"]),
    (b"\"a\"", 400, ["JSON object", "a string"]),
    (b"null", 400, ["JSON object", "null"]),
    (b"3.5", 400, ["JSON object", "a number"]),
    (b"[" * 100_000 + b"]" * 100_000, 400, ["nested too deeply"]),
    (b"{\"items\": [\"a\"], \"k\": " + b"9" * 5000 + b"}", 400, ["digits"]),
    (b"{\"items\": [" + b"1" * 5000 + b"]}", 400, ["digits"]),
])
def test_unreadable_bodies(body, status, fragments):
    error = rejected(body)
    assert error.status == status
    for fragment in fragments:
        assert fragment in error.message


@pytest.mark.parametrize("document, fragments", [
    ({}, ["'items' is missing"]),
    ({"k": 5}, ["'items' is missing"]),
    ({"items": "a"}, ["'items'", "a string"]),
    ({"items": {"a": 1}}, ["'items'", "an object"]),
    ({"items": None}, ["'items'", "null"]),
    ({"items": ["a", 1.5]}, ["'items[1]'", "a number"]),
    ({"items": [True]}, ["'items[0]'", "a boolean"]),
    ({"items": ["a", "b", None]}, ["'items[2]'", "null"]),
    ({"items": [["a"]]}, ["'items[0]'", "a list"]),
    ({"items": ["a"], "k": 0}, ["'k'", "is 0"]),
    ({"items": ["a"], "k": 1001}, ["'k'", "is 1001"]),
    ({"items": ["a"], "k": -20}, ["'k'", "is -20"]),
    ({"items": ["a"], "k": 10 ** 30}, ["'k'"]),
    ({"items": ["a"], "k": True}, ["'k'", "a boolean"]),
    ({"items": ["a"], "k": 5.0}, ["'k'", "a number"]),
    ({"items": ["a"], "k": 5.5}, ["'k'", "a number"]),
    ({"items": ["a"], "k": "5"}, ["'k'", "a string"]),
    ({"items": ["a"], "k": None}, ["'k'", "null"]),
    ({"items": ["a"], "exclude_seen": "true"}, ["'exclude_seen'", "a string"]),
    ({"items": ["a"], "exclude_seen": 1}, ["'exclude_seen'", "an integer"]),
    ({"items": ["a"], "exclude_seen": None}, ["'exclude_seen'", "null"]),
    ({"items": ["a"], "limit": 3}, ["'limit'", "unknown field"]),
    ({"items": ["a"], "session_id": "s1"}, ["'session_id'", "unknown field"]),
    ({"items": ["a"], "sessions": [{"items": ["b"]}]}, ["'items'", "'sessions'", "not both"]),
    ({"sessions": []}, ["'sessions'", "empty list"]),
    ({"sessions": {"items": ["a"]}}, ["'sessions'", "an object"]),
    ({"sessions": "s1"}, ["'sessions'", "a string"]),
    ({"sessions": None}, ["'sessions'", "null"]),
    ({"sessions": [{"items": ["a"]}], "items2": 1}, ["'items2'", "unknown field"]),
    ({"sessions": [{"items": ["a"]}], "k": 0}, ["'k'"]),
    ({"sessions": [{"items": ["a"]}], "exclude_seen": "no"}, ["'exclude_seen'"]),
    ({"sessions": [{"items": ["a"]}, ["b"]]}, ["sessions[1]", "a list"]),
    ({"sessions": [{"items": ["a"]}, {"items": "b"}]}, ["'sessions[1].items'", "a string"]),
    ({"sessions": [{"session_id": "s"}]}, ["'sessions[0].items' is missing"]),
    ({"sessions": [{"items": ["a", 2.5]}]}, ["'sessions[0].items[1]'"]),
    ({"sessions": [{"items": ["a"], "k": 1001}]}, ["'sessions[0].k'"]),
    ({"sessions": [{"items": ["a"], "exclude_seen": 0}]}, ["'sessions[0].exclude_seen'"]),
    ({"sessions": [{"items": ["a"], "session_id": ["s"]}]}, ["'sessions[0].session_id'", "a list"]),
    ({"sessions": [{"items": ["a"], "session_id": True}]}, ["'sessions[0].session_id'", "a boolean"]),
    ({"sessions": [{"items": ["a"], "session_id": 1.5}]}, ["'sessions[0].session_id'", "a number"]),
    ({"sessions": [{"items": ["a"], "session_id": None}]}, ["'sessions[0].session_id'", "not null"]),
    ({"sessions": [{"items": ["a"], "user": "u"}]}, ["sessions[0]", "'user'", "unknown field"]),
])
def test_wrong_documents_are_400_naming_the_field(document, fragments):
    error = rejected(encode(document))
    assert error.status == 400
    for fragment in fragments:
        assert fragment in error.message


@pytest.mark.parametrize("text, field", [('{"items": ["a"], "k": NaN}', "'k'"),
                                         ('{"items": ["a"], "k": Infinity}', "'k'"),
                                         ('{"items": [NaN]}', "'items[0]'")])
def test_non_finite_numbers_are_rejected(text, field):
    error = rejected(text.encode())
    assert error.status == 400 and field in error.message


def test_too_many_sessions_is_413():
    error = rejected(encode({"sessions": [{"items": ["a"]}] * (contracts.MAX_SESSIONS + 1)}))
    assert error.status == 413 and "'sessions'" in error.message


def test_sessions_times_k_beyond_the_bound_is_413_naming_it():
    """100 sessions at k 1000 is the bound exactly; one more session, or a session's own larger k, is over."""
    at_bound = {"sessions": [{"items": ["a"]}] * 100, "k": 1000}
    assert len(contracts.parse_json_request(encode(at_bound)).sessions) == 100
    over = {"sessions": [{"items": ["a"]}] * 99 + [{"items": ["b"], "k": 1000}, {"items": ["c"], "k": 1}], "k": 1000}
    error = rejected(encode(over))
    assert error.status == 413
    assert "100,001 recommendations (sessions x k)" in error.message and "at most 100,000" in error.message


def test_the_json_lines_bound_counts_good_records_only():
    """check_work sums the k of the sessions only: bad lines ask for nothing."""
    records = [SessionRequest(["a"], k=600), BadLine(2, "bad"), SessionRequest(["b"], k=400)]
    contracts.check_work(records, 1000, "records", contracts.JSON_LINES)
    with pytest.raises(ClientError) as caught:
        contracts.check_work(records, 999, "records", contracts.JSON_LINES)
    assert caught.value.status == 413 and "1,000 recommendations (records x k)" in caught.value.message


def test_every_6_mb_body_at_the_default_k_is_within_the_json_lines_bound():
    shortest = len(b'{"items":[0]}\n')
    assert contracts.MAX_PAYLOAD_BYTES // shortest * contracts.DEFAULT_K <= contracts.MAX_JSON_LINES_RECOMMENDATIONS


@pytest.mark.parametrize("text, fragment", [
    ('{"items": ["a"], "items": ["b"]}', "'items' twice"),
    ('{"sessions": [{"items": ["a"], "k": 1, "k": 2}]}', "'k' twice"),
    ('{"items": ["\\ud800"]}', "lone UTF-16 surrogate"),
    ('{"items": ["a"], "exclude_items": ["x\\udfff"]}', "lone UTF-16 surrogate"),
    ('{"sessions": [{"items": ["a"], "session_id": "\\udbff"}]}', "lone UTF-16 surrogate"),
    ('{"sessions": [{"items": ["a"], "session_id": 9007199254740992}]}', "send it as a string"),
    ('{"sessions": [{"items": ["a"], "session_id": -9007199254740992}]}', "send it as a string"),
])
def test_what_strict_json_readers_refuse_is_400(text, fragment):
    error = rejected(text.encode())
    assert error.status == 400 and fragment in error.message
    assert error.message.encode("utf-8")  # the message itself is valid text


def test_a_surrogate_pair_and_the_largest_safe_integer_are_accepted():
    request = contracts.parse_json_request(
        b'{"sessions": [{"items": ["\\ud83d\\ude00"], "session_id": 9007199254740991}]}')
    assert request.sessions[0].items == ["\U0001F600"] and request.sessions[0].session_id == 2 ** 53 - 1


def test_a_json_line_with_an_unsafe_id_or_duplicate_key_is_a_bad_line_answered_by_number():
    records = contracts.parse_json_lines(b'{"session_id": 9007199254740993, "items": ["a"]}\n'
                                         b'{"items": ["a"], "items": ["b"]}\n{"session_id": "ok", "items": ["a"]}\n')
    assert [(record.line, record.session_id) for record in records[:2]] == [(1, None), (2, None)]
    assert records[2] == SessionRequest(["a"], session_id="ok")


@pytest.mark.parametrize("encoding", ["gzip", "deflate, gzip", "br"])
def test_a_compressed_body_is_415_naming_what_is_accepted(encoding):
    with pytest.raises(ClientError) as caught:
        contracts.check_content_encoding(encoding)
    assert caught.value.status == 415 and repr(encoding) in caught.value.message and "identity" in caught.value.message
    for accepted in (None, "", "identity", " Identity "):
        contracts.check_content_encoding(accepted)


def test_an_oversize_body_is_413():
    body = encode({"items": ["x" * contracts.MAX_PAYLOAD_BYTES]})
    error = rejected(body)
    assert error.status == 413 and f"{len(body):,}" in error.message
    with pytest.raises(ClientError) as caught:
        contracts.parse_json_lines(body)
    assert caught.value.status == 413


# -- application/jsonlines -------------------------------------------------------------------------------

def lines(*texts: str) -> bytes:
    return "\n".join(texts).encode()


def test_json_lines_keep_their_order_and_line_numbers_around_bad_lines():
    records = contracts.parse_json_lines(lines(
        '{"session_id": "s1", "items": ["a", "b"]}',
        '{"session_id": "s2", "items": ["c"',
        '',
        '{"session_id": 3, "items": ["d"], "k": 5, "exclude_seen": true}',
        '["e"]',
        '{"session_id": "s5", "items": []}',
        '   ',
        '{"session_id": "s6", "items": ["f"], "colour": "red"}',
        '{"items": ["g"]}',
        '{"session_id": "s8", "k": 0, "items": ["h"]}',
        '',
    ))
    assert len(records) == 8
    assert records[0] == SessionRequest(["a", "b"], session_id="s1")
    assert isinstance(records[1], BadLine) and records[1].line == 2 and records[1].session_id is None
    assert records[1].error.startswith("line 2 is not valid JSON: ") and records[1].error.endswith(" at column 35")
    assert records[2] == SessionRequest(["d"], k=5, exclude_seen=True, session_id=3)
    assert records[3] == BadLine(line=5, error="line 5 must be a JSON object with 'items', not a list")
    assert records[4] == SessionRequest([], session_id="s5")
    assert records[5].line == 8 and records[5].session_id == "s6" and "'colour'" in records[5].error
    assert records[6] == SessionRequest(["g"])
    assert records[7].line == 10 and records[7].session_id == "s8" and records[7].error.startswith("'k'")


def test_json_lines_with_windows_line_ends_and_a_final_newline():
    body = b'{"session_id": "a", "items": ["x"]}\r\n{"session_id": "b", "items": ["y"]}\r\n'
    assert [record.session_id for record in contracts.parse_json_lines(body)] == ["a", "b"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x1d", "\x1e", "\x0b", "\x0c"])
def test_only_newlines_end_a_json_line(separator):
    """Batch Transform splits records on newlines only: other line breaks inside a record keep it one record."""
    body = ('{"session_id": "a' + separator + 'b", "items": ["x"]}\n{"session_id": "c", "items": ["y"]}\n'
            + separator + '\n').encode()
    records = contracts.parse_json_lines(body)
    assert len(records) == 3
    if separator < " ":  # a control character: JSON strings may not hold it raw
        assert isinstance(records[0], BadLine) and records[0].line == 1
    else:
        assert records[0] == SessionRequest(["x"], session_id="a" + separator + "b")
    assert records[1] == SessionRequest(["y"], session_id="c")
    assert isinstance(records[2], BadLine) and records[2].line == 3


def test_a_line_nested_too_deeply_or_with_a_giant_number_is_a_bad_line():
    body = lines('{"items": ["a"]}', "[" * 100_000 + "]" * 100_000, '{"items": [' + "7" * 5000 + "]}",
                 '{"items": ["b"]}')
    records = contracts.parse_json_lines(body)
    assert [type(record) for record in records] == [SessionRequest, BadLine, BadLine, SessionRequest]
    assert records[1].line == 2 and "line 2" in records[1].error
    assert records[2].line == 3 and "digits" in records[2].error


@pytest.mark.parametrize("session_id", ['NaN', '-Infinity', '1.5', 'true', '["s"]', '{"id": "s"}'])
def test_a_bad_line_with_an_unusable_session_id_is_answered_by_line_number(session_id):
    (record,) = contracts.parse_json_lines(f'{{"session_id": {session_id}, "items": ["a"]}}'.encode())
    assert record == BadLine(line=1, error=record.error, session_id=None)
    assert "'session_id'" in record.error


def test_a_line_that_is_not_utf8_is_a_bad_line():
    records = contracts.parse_json_lines(b'{"items": ["a"]}\n{"session_id": "s", "items": ["caf\xe9"]}\n\xff\n')
    assert records[0] == SessionRequest(["a"])
    assert records[1] == BadLine(line=2, error="line 2 is not UTF-8 text: the byte at position 34 is invalid")
    assert records[2].line == 3 and "UTF-8" in records[2].error


def test_a_line_of_other_control_characters_is_not_blank():
    records = contracts.parse_json_lines(b'{"items": ["a"]}\n\x0c\n')
    assert len(records) == 2 and isinstance(records[1], BadLine) and records[1].line == 2


@pytest.mark.parametrize("body, status, fragment", [
    (b"", 400, "no JSON lines"),
    (b"\n \n\r\n\t\n", 400, "no JSON lines"),
    (b'{"items": ["a"]}\n' * (contracts.MAX_PAYLOAD_BYTES // 17 + 1), 413, "6 MB"),
])
def test_json_lines_bodies_rejected_as_a_whole(body, status, fragment):
    with pytest.raises(ClientError) as caught:
        contracts.parse_json_lines(body)
    assert caught.value.status == status and fragment in caught.value.message


# -- answers ---------------------------------------------------------------------------------------------

def test_session_answers():
    scored = SessionResult([("a", 1.5), ("b", -0.25)], unknown_items=2)
    fallback = SessionResult([("p", 0.0)], unknown_items=3, fallback=True)
    assert contracts.session_answer(scored) == {
        "recommendations": [{"item_id": "a", "score": 1.5}, {"item_id": "b", "score": -0.25}], "unknown_items": 2}
    assert contracts.session_answer(fallback, "s9", with_id=True) == {
        "session_id": "s9", "recommendations": [{"item_id": "p", "score": 0.0}], "unknown_items": 3,
        "fallback": True}
    assert contracts.session_answer(scored, None, with_id=True)["session_id"] is None


def test_json_answers_for_one_session_and_for_many():
    results = [SessionResult([("a", 2.0)], 0), SessionResult([("p", 0.0)], 1, fallback=True)]
    one = JsonRequest(False, [SessionRequest(["x"])])
    assert contracts.json_answer(one, results[:1], "job-7") == {"recommendations": [{"item_id": "a", "score": 2.0}],
                                                               "unknown_items": 0, "model_version": "job-7"}
    many = JsonRequest(True, [SessionRequest(["x"], session_id="s1"), SessionRequest(["y"])])
    assert contracts.json_answer(many, results, "initial-1") == {"results": [
        {"session_id": "s1", "recommendations": [{"item_id": "a", "score": 2.0}], "unknown_items": 0},
        {"session_id": None, "recommendations": [{"item_id": "p", "score": 0.0}], "unknown_items": 1, "fallback": True},
    ], "model_version": "initial-1"}


def test_json_lines_answer_one_compact_line_each_in_place():
    records = [SessionRequest(["x"], session_id="a\u2028b"), BadLine(line=2, error="bad"),
               BadLine(line=3, error="worse", session_id=7), SessionRequest(["y"])]
    results = [SessionResult([("i", 1.0)], 0), SessionResult([], 1, fallback=True)]
    text = contracts.json_lines_answer(records, results, "job-7").decode("ascii")
    assert text.endswith("\n") and text.count("\n") == 4
    assert [json.loads(line) for line in text.split("\n")[:-1]] == [
        {"session_id": "a\u2028b", "recommendations": [{"item_id": "i", "score": 1.0}], "unknown_items": 0,
         "model_version": "job-7"},
        {"line": 2, "error": "bad", "model_version": "job-7"},
        {"session_id": 7, "error": "worse", "model_version": "job-7"},
        {"session_id": None, "recommendations": [], "unknown_items": 1, "fallback": True, "model_version": "job-7"},
    ]
    assert ", " not in text and ": " not in text
    assert "\\u2028" in text and "\u2028" not in text  # escaped: every answer line is ASCII


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None)),  # any code point, lone surrogates and U+2028 included
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@given(value=JSON_VALUES)
def test_encode_writes_compact_ascii_json_of_any_value(value):
    encoded = contracts.encode(value)
    assert encoded.isascii() and b"\n" not in encoded
    assert json.loads(encoded) == value


def test_encode_of_an_answer_is_the_standard_librarys_text():
    answer = {"session_id": "s1", "recommendations": [{"item_id": "i", "score": 0.1 + 0.2}], "unknown_items": 0}
    assert contracts.encode(answer) == json.dumps(answer, separators=(",", ":")).encode("ascii")
    huge = {"session_id": 10**30, "error": "caf\u00e9 \ud800"}  # beyond 64 bits, non-ASCII, a lone surrogate
    assert contracts.encode(huge) == b'{"session_id":1000000000000000000000000000000,"error":"caf\\u00e9 \\ud800"}'


# -- business rules: exclude_items and include_items -------------------------------------------------------

def test_filter_lists_are_read_as_id_strings_in_every_form():
    _, (one,) = parsed({"items": ["a"], "exclude_items": ["b", 7], "include_items": []})
    assert (one.exclude_items, one.include_items, one.filtered) == (["b", "7"], [], True)
    _, (plain,) = parsed({"items": ["a"]})
    assert (plain.exclude_items, plain.include_items, plain.filtered) == (None, None, False)


def test_a_sessions_own_lists_replace_the_requests_field_by_field():
    _, (inherits, replaces, empties) = parsed({
        "sessions": [{"items": ["a"]}, {"items": ["b"], "include_items": ["y"]}, {"items": ["c"], "exclude_items": []}],
        "exclude_items": ["x"], "include_items": ["z"],
    })
    assert (inherits.exclude_items, inherits.include_items) == (["x"], ["z"])
    assert (replaces.exclude_items, replaces.include_items) == (["x"], ["y"])
    assert (empties.exclude_items, empties.include_items) == ([], ["z"])


def test_json_lines_never_share_a_lines_lists():
    body = b"\n".join([encode({"session_id": 1, "items": ["a"], "exclude_items": ["x"]}),
                       encode({"session_id": 2, "items": ["b"]}),
                       encode({"session_id": 3, "items": ["c"], "include_items": ["y"]})])
    first, second, third = contracts.parse_json_lines(body)
    assert (first.exclude_items, first.include_items) == (["x"], None)
    assert (second.exclude_items, second.include_items) == (None, None)
    assert (third.exclude_items, third.include_items) == (None, ["y"])


def test_job_defaults_apply_to_lines_that_give_no_list_of_their_own():
    job = SessionRequest(items=[], include_items=["in-stock"], exclude_items=["recalled"])
    body = encode({"items": ["a"]}) + b"\n" + encode({"items": ["b"], "include_items": ["other"], "k": 3})
    plain, own = contracts.parse_json_lines(body, job)
    assert (plain.include_items, plain.exclude_items, plain.k) == (["in-stock"], ["recalled"], 20)
    assert (own.include_items, own.exclude_items, own.k) == (["other"], ["recalled"], 3)
    request = contracts.parse_json_request(encode({"items": ["a"], "exclude_items": []}), job)
    assert (request.sessions[0].include_items, request.sessions[0].exclude_items) == (["in-stock"], [])


@pytest.mark.parametrize(
    "document, fragment",
    [
        ({"items": ["a"], "exclude_items": "b"}, "'exclude_items' must be a list of item ids, not a string"),
        ({"items": ["a"], "include_items": {"b": 1}}, "'include_items' must be a list of item ids, not an object"),
        ({"items": ["a"], "include_items": [None]}, "'include_items[0]' must be an item id"),
        ({"items": ["a"], "exclude_items": ["x"] * 10_001}, "'exclude_items' holds 10,001 ids: at most 10,000"),
        (
            {"sessions": [{"items": ["a"], "exclude_items": ["b", True]}]},
            "'sessions[0].exclude_items[1]' must be an item id",
        ),
    ],
)
def test_bad_filter_lists_are_400_naming_the_field(document, fragment):
    error = rejected(encode(document))
    assert error.status == 400 and fragment in error.message


def test_a_bad_list_on_one_line_is_that_lines_error_only():
    body = encode({"session_id": "ok", "items": ["a"]}) + b"\n" + encode({"session_id": "bad", "items": ["a"],
                                                                          "include_items": [1.5]})
    good, bad = contracts.parse_json_lines(body)
    assert isinstance(good, SessionRequest)
    assert isinstance(bad, BadLine) and bad.session_id == "bad" and "'include_items[0]'" in bad.error


def test_answers_carry_unknown_filter_items_only_where_a_list_was_given():
    filtered = SessionResult([("x", 1.0)], unknown_items=0, unknown_filter_items=2)
    assert contracts.session_answer(filtered) == {"recommendations": [{"item_id": "x", "score": 1.0}],
                                                  "unknown_items": 0, "unknown_filter_items": 2}
    assert "unknown_filter_items" not in contracts.session_answer(SessionResult([], unknown_items=0))
