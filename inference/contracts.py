"""The ``/invocations`` wire contracts: read and check a request, shape its answer.

``application/json``, one session or many::

    {"items": ["a", "b"], "k": 20, "exclude_seen": true}
    -> {"recommendations": [{"item_id": "c", "score": 7.31}, ...], "unknown_items": 0}
    {"sessions": [{"session_id": "s1", "items": ["a", "b"]}, ...], "k": 10}
    -> {"results": [{"session_id": "s1", "recommendations": [...], "unknown_items": 0}, ...]}

``application/jsonlines`` (Batch Transform; also ``application/x-jsonlines``, ``application/json-lines``,
``application/jsonl``): one ``{"session_id": ..., "items": [...]}`` per line (``k`` and ``exclude_seen``
allowed per line), answered by one line ``{"session_id": ..., "recommendations": [...], "unknown_items": N}``
each, in the same order. Blank lines are skipped. A bad line is answered in place by
``{"session_id": ..., "error": "..."}``, or ``{"line": N, "error": "..."}`` where it has no readable id,
so one bad record never fails a batch.

Rules: ``items`` is a list of item ids, strings or integers (integers are read as their
decimal strings, as ``items.json`` holds ids as strings), and may be empty: a visitor on the home page
with no item seen yet gets the popular items, marked ``"fallback": true``; ``k`` an integer from 1 to 1000 (default
20); ``exclude_seen`` true or false (default false); ``session_id`` (optional) a string or an integer,
echoed back as given (null where absent; an integer must lie within +-(2^53 - 1), the integers every JSON
reader keeps exactly, else it is sent as a string). Business rules, each a list of at most
:data:`MAX_FILTER_ITEMS` item ids: ``exclude_items`` (never recommended) and ``include_items`` (when
given, only these may be recommended); ids the model does not know are ignored and counted in the
answer's ``unknown_filter_items``, which is there only where a list was given. A session's own
``k``, ``exclude_seen`` and lists replace the request's (``sessions`` form), and a line's replace the
job's defaults (:class:`SessionRequest` given to the parser), field by field. Unknown fields are refused,
so a misspelt option is never silently ignored. An answer where no item of the session was known carries
``"fallback": true`` and the most popular items, scored 0.0. Every answer, and every answer line, ends with
``"model_version"``: the model directory's version (the training job's name, or the first model's
``initial_model_version``).

Bodies are strict JSON: a key given twice in one object, or a string holding a lone UTF-16 surrogate
(``"\ud800"``, which no UTF-8 text can hold and strict JSON readers refuse), is a 400.

The work of one request is bounded: an ``application/json`` request asks for at most
:data:`MAX_JSON_RECOMMENDATIONS` recommendations (sessions x k, the sum of its sessions' ``k``), a
JSON-lines request for at most :data:`MAX_JSON_LINES_RECOMMENDATIONS` (records x k); more is a 413
naming the bound, before anything is scored.

A request that cannot be answered as a whole raises :class:`ClientError` with its HTTP status and a
message naming the problem and the field: 400 (malformed or invalid), 406 (``Accept`` names no format
this server writes), 413 (over :data:`MAX_PAYLOAD_BYTES`, :data:`MAX_SESSIONS` or a bound on the
recommendations asked for), 415 (content type, or a ``Content-Encoding`` other than identity).

Answers are compact ASCII JSON (:func:`encode`): a line of JSON lines never holds a character that a
reader splitting at line breaks other than ``\n`` (U+2028, for one) would split at.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

JSON = "application/json"
JSON_LINES = "application/jsonlines"
JSON_LINES_ALIASES = frozenset({JSON_LINES, "application/x-jsonlines", "application/json-lines", "application/jsonl"})
ACCEPTABLE = frozenset({JSON, "*/*", "application/*"}) | JSON_LINES_ALIASES
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# SageMaker Serverless Inference's limit on a request body
SERVERLESS_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
MAX_SESSIONS = 10_000
"""Sessions in one ``application/json`` request at most (a JSON-lines body is bounded by its size only)."""
MAX_JSON_RECOMMENDATIONS = 100_000
"""Recommendations one ``application/json`` request may ask for: sessions x k (the sum of its sessions' ``k``).

Its answer goes back whole through SageMaker's InvokeEndpoint, whose response body is at most
6,291,456 bytes (``Body``, Length Constraints, in
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html; botocore's
service model says the same), and through API Gateway, whose payload is at most 10 MB
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html).
A recommendation is about 50 bytes of JSON, so 100,000 of them (about 5 MB) is as much as can come back;
anything larger would be scored only to be dropped on the way."""
MAX_JSON_LINES_RECOMMENDATIONS = 10_000_000
"""Recommendations one JSON-lines request may ask for: records x k (the sum of its good lines' ``k``).

Batch Transform writes the answer to S3, so no response limit applies, and the answer is streamed a
chunk at a time; the bound caps the work. The shortest line, ``{"items":[0]}`` and its newline, is 14
bytes: a 6 MiB body holds at most 449,389 of them, which at the default k of 20 ask for 8,987,780, so
every 6 MB payload at the default k is answered, while the same body at k = 1000 (449 million) is not."""
MAX_SAFE_INTEGER = 2 ** 53 - 1
"""The largest integer every JSON reader keeps exactly (JavaScript's Number.MAX_SAFE_INTEGER); larger
integer session ids are refused, as they would come back changed to many readers."""
MIN_K, MAX_K, DEFAULT_K = 1, 1000, 20
MAX_FILTER_ITEMS = 10_000
"""Ids in one ``exclude_items`` or ``include_items`` list of a request at most."""
FILTER_FIELDS = ("exclude_items", "include_items")
OPTIONS = ("k", "exclude_seen", *FILTER_FIELDS)
SINGLE_FIELDS = ("items", *OPTIONS)
MANY_FIELDS = ("sessions", *OPTIONS)
SESSION_FIELDS = ("session_id", "items", *OPTIONS)
JSON_WHITESPACE = b" \t\r\n"
MODEL_VERSION = "model_version"
"""The field every answer (each JSON line too) ends with: the version of the model that answered."""


class ClientError(Exception):
    """A request the server cannot answer as asked: the HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SessionRequest:
    """One session to score: item ids in time order, how to rank, and the id to answer with."""

    items: list[str]
    k: int = DEFAULT_K
    exclude_seen: bool = False
    session_id: str | int | None = None
    exclude_items: list[str] | None = None
    include_items: list[str] | None = None

    @property
    def filtered(self) -> bool:
        return self.exclude_items is not None or self.include_items is not None


@dataclass(frozen=True)
class JsonRequest:
    """An ``application/json`` request: ``many`` for the ``sessions`` form, else one session."""

    many: bool
    sessions: list[SessionRequest]


@dataclass(frozen=True)
class BadLine:
    """A JSON-lines record that cannot be scored, answered in place by its error."""

    line: int
    error: str
    session_id: str | int | None = None


# -- content negotiation ---------------------------------------------------------------------------------

def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``; a JSON-lines alias -> ``application/jsonlines``."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return JSON_LINES if base in JSON_LINES_ALIASES else base


def check_content_type(content_type: str | None) -> str:
    """The request's format (:data:`JSON` or :data:`JSON_LINES`), or a 415 naming the formats accepted."""
    kind = media_type(content_type)
    if kind not in (JSON, JSON_LINES):
        problem = f"Content-Type {content_type!r} is not supported" if content_type else "the Content-Type is missing"
        raise ClientError(415, f"{problem}: send {JSON} or {JSON_LINES}")
    return kind


def check_content_encoding(encoding: str | None) -> None:
    """Refuse (415) a compressed body: the server reads ``identity`` bodies only (no ``Content-Encoding``)."""
    if encoding and encoding.strip().lower() != "identity":
        raise ClientError(415, f"Content-Encoding {encoding!r} is not supported: send the body uncompressed "
                               f"(no Content-Encoding, or identity)")


def check_accept(accept: str | None) -> None:
    """Refuse (406) an ``Accept`` header allowing neither JSON nor JSON lines; the answer's format is the request's."""
    if not accept or not accept.strip():
        return
    for media_range in accept.split(","):
        name, *params = (part.strip().lower() for part in media_range.split(";"))
        if name in ACCEPTABLE and not any(_is_zero_quality(param) for param in params):
            return
    raise ClientError(406, f"Accept {accept!r} allows no format this server answers in: accept {JSON} or {JSON_LINES}")


def _is_zero_quality(param: str) -> bool:
    key, _, value = param.partition("=")
    if key.strip() != "q":
        return False
    try:
        return float(value) == 0.0
    except ValueError:
        return False


# -- requests ------------------------------------------------------------------------------------------

def parse_json_request(body: bytes, defaults: SessionRequest | None = None) -> JsonRequest:
    """Read and check an ``application/json`` body; :class:`ClientError` names the first problem.

    ``defaults`` holds the options that apply where the request gives none (the job's filter lists).
    """
    document = _load_json(_text(body, "the body"), "the body")
    if not isinstance(document, dict):
        raise ClientError(400, f"the body must be a JSON object with 'items' or 'sessions', not {_kind(document)}")
    if "sessions" in document and "items" in document:
        raise ClientError(400, "the body has both 'items' and 'sessions': give 'items' for one session "
                               "or 'sessions' for several, not both")
    if "sessions" not in document:
        _check_fields(document, SINGLE_FIELDS, "the body")
        return JsonRequest(False, [_session(document, "", defaults)])
    _check_fields(document, MANY_FIELDS, "the body")
    sessions = document["sessions"]
    if not isinstance(sessions, list) or not sessions:
        raise ClientError(400, f"'sessions' must be a non-empty list of session objects, not {_kind(sessions)}")
    if len(sessions) > MAX_SESSIONS:
        raise ClientError(413, f"'sessions' holds {len(sessions):,} sessions: at most {MAX_SESSIONS:,} per request")
    request_defaults = _options(document, "", defaults or SessionRequest(items=[]))
    parsed = []
    for i, session in enumerate(sessions):
        where = f"sessions[{i}]"
        if not isinstance(session, dict):
            raise ClientError(400, f"'{where}' must be an object with 'items', not {_kind(session)}")
        _check_fields(session, SESSION_FIELDS, f"'{where}'")
        parsed.append(_session(session, where + ".", request_defaults))
    check_work(parsed, MAX_JSON_RECOMMENDATIONS, "sessions", JSON)
    return JsonRequest(True, parsed)


def check_work(records: Iterable[SessionRequest | BadLine], bound: int, unit: str, kind: str) -> None:
    """A 413 naming the bound where the sessions among ``records`` ask for more than ``bound`` recommendations.

    ``unit`` names what the request holds (sessions, records) and ``kind`` its format, for the message.
    """
    asked = sum(record.k for record in records if isinstance(record, SessionRequest))
    if asked > bound:
        raise ClientError(413, f"the request asks for {asked:,} recommendations ({unit} x k): at most {bound:,} "
                               f"per {kind} request; send fewer {unit} or a smaller k")


def parse_json_lines(body: bytes, defaults: SessionRequest | None = None) -> list[SessionRequest | BadLine]:
    """One entry per non-blank line of an ``application/jsonlines`` body, in order; bad lines as :class:`BadLine`.

    ``defaults`` holds the options that apply to every line that gives none (the job's filter lists).

    Lines split at ``\\n`` only, as Batch Transform splits records (a JSON string may hold other line
    separators); a line of JSON whitespace only is skipped. Raises :class:`ClientError` only for a body
    that is too large or holds no line.
    """
    _check_size(body)
    records = [parse_json_line(number, raw, defaults)
               for number, raw in enumerate(body.split(b"\n"), start=1) if raw.strip(JSON_WHITESPACE)]
    if not records:
        raise ClientError(400, 'the body holds no JSON lines: send one {"session_id": ..., "items": [...]} per line')
    return records


def parse_json_line(number: int, raw: bytes, defaults: SessionRequest | None = None) -> SessionRequest | BadLine:
    """Line ``number`` of a JSON-lines body (without its ``\\n``), checked: the session, or why it is bad;
    ``defaults`` as in :func:`parse_json_lines`."""
    session_id = None
    try:
        record = _load_json(_text(raw, f"line {number}"), f"line {number}", one_line=True)
        if not isinstance(record, dict):
            raise ClientError(400, f"line {number} must be a JSON object with 'items', not {_kind(record)}")
        if _is_session_id(record.get("session_id")):
            session_id = record["session_id"]
        _check_fields(record, SESSION_FIELDS, f"line {number}")
        return _session(record, "", defaults)
    except ClientError as err:
        return BadLine(number, err.message, session_id)


def _session(record: dict, where: str, defaults: SessionRequest | None = None) -> SessionRequest:
    """One session object; ``where`` prefixes field names in messages, ``defaults`` carries the request's options."""
    session_id = record.get("session_id")
    if "session_id" in record and not _is_session_id(session_id):
        if isinstance(session_id, int) and not isinstance(session_id, bool):
            raise ClientError(400, f"'{where}session_id' is an integer beyond +-{MAX_SAFE_INTEGER:,} (2^53 - 1), "
                                   f"which JSON readers may change: send it as a string")
        raise ClientError(400, f"'{where}session_id' must be a string or an integer, not {_kind(session_id)}")
    return _options(record, where, defaults or NO_DEFAULTS, session_id, with_items=True)


NO_DEFAULTS = SessionRequest(items=[])


def _options(record: dict, where: str, defaults: SessionRequest, session_id: str | int | None = None,
             with_items: bool = False) -> SessionRequest:
    """``defaults`` with the options ``record`` gives (k, exclude_seen, the filter lists) put in, each checked,
    and ``record``'s items where ``with_items`` (one constructor call: this runs once per JSON line)."""
    k = _k(record, where, defaults.k)
    exclude_seen = _exclude_seen(record, where, defaults.exclude_seen)
    exclude_items = _id_list(record, where, "exclude_items", defaults.exclude_items)
    include_items = _id_list(record, where, "include_items", defaults.include_items)
    items = _items(record, where) if with_items else defaults.items
    return SessionRequest(items, k, exclude_seen, session_id, exclude_items, include_items)


def _is_session_id(value: Any) -> bool:
    """A string, or an integer that every JSON reader keeps exactly."""
    if isinstance(value, str):
        return True
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SAFE_INTEGER


def _items(record: dict, where: str) -> list[str]:
    if "items" not in record:
        raise ClientError(400, f"'{where}items' is missing: give the session's item ids, oldest first")
    items = record["items"]
    if not isinstance(items, list):
        raise ClientError(400, f"'{where}items' must be a list of item ids, not {_kind(items)}")
    return item_ids(items, f"{where}items")


def item_ids(values: list, name: str) -> list[str]:
    """Item ids as strings (integers as their decimal strings); a 400 naming ``name[i]`` for anything else."""
    if set(map(type, values)) <= {str}:  # the usual case, checked without a Python loop (long filter lists)
        return values
    for i, item in enumerate(values):
        if not isinstance(item, str) and (isinstance(item, bool) or not isinstance(item, int)):
            raise ClientError(400, f"'{name}[{i}]' must be an item id (a string or an integer), not {_kind(item)}")
    return [item if isinstance(item, str) else str(item) for item in values]


def _id_list(record: dict, where: str, field: str, default: list[str] | None) -> list[str] | None:
    if field not in record:
        return default
    values = record[field]
    if not isinstance(values, list):
        raise ClientError(400, f"'{where}{field}' must be a list of item ids, not {_kind(values)}")
    if len(values) > MAX_FILTER_ITEMS:
        raise ClientError(400, f"'{where}{field}' holds {len(values):,} ids: at most {MAX_FILTER_ITEMS:,}")
    return item_ids(values, where + field)


def _k(record: dict, where: str, default: int) -> int:
    k = record.get("k", default)
    if isinstance(k, bool) or not isinstance(k, int):
        raise ClientError(400, f"'{where}k' must be an integer from {MIN_K} to {MAX_K}, not {_kind(k)}")
    if not MIN_K <= k <= MAX_K:
        raise ClientError(400, f"'{where}k' is {k}: it must be from {MIN_K} to {MAX_K}")
    return k


def _exclude_seen(record: dict, where: str, default: bool) -> bool:
    value = record.get("exclude_seen", default)
    if not isinstance(value, bool):
        raise ClientError(400, f"'{where}exclude_seen' must be true or false, not {_kind(value)}")
    return value


def _check_fields(record: dict, allowed: Sequence[str], where: str) -> None:
    unknown = [key for key in record if key not in allowed]
    if unknown:
        raise ClientError(400, f"{where} has unknown field(s) {', '.join(map(repr, unknown))}: "
                               f"the fields are {', '.join(map(repr, allowed))}")


def _check_size(body: bytes) -> None:
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ClientError(413, f"the body is {len(body):,} bytes: at most {MAX_PAYLOAD_BYTES:,} (6 MB) per request")


def _text(raw: bytes, what: str) -> str:
    _check_size(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ClientError(400, f"{what} is not UTF-8 text: the byte at position {err.start} is invalid") from None


class _DuplicateKey(Exception):
    """A JSON object gives one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """``json.loads``'s object hook: the object, or :class:`_DuplicateKey` naming a key given twice."""
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return document


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)
# \uD800-\uDFFF written as a JSON escape: the only way a surrogate gets into text decoded from UTF-8
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _load_json(text: str, what: str, one_line: bool = False) -> Any:
    if not text.strip(JSON_WHITESPACE.decode()):
        raise ClientError(400, f"{what} is empty: send a JSON object with 'items' or 'sessions'")
    try:
        document = _DECODER.decode(text)
    except _DuplicateKey as err:
        raise ClientError(400, f"{what} gives the key {_printable(err.args[0])} twice in one object") from None
    except json.JSONDecodeError as err:
        where = f"column {err.colno}" if one_line else f"line {err.lineno} column {err.colno}"
        raise ClientError(400, f"{what} is not valid JSON: {err.msg} at {where}") from None
    except RecursionError:
        raise ClientError(400, f"{what} is nested too deeply to read") from None
    except ValueError:  # Python reads integers of at most 4,300 digits
        raise ClientError(400, f"{what} holds a number of more than 4,300 digits") from None
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(document, what)
    return document


def _check_unicode(document: Any, what: str) -> None:
    """A 400 where a string of ``document`` (keys too) holds a lone surrogate, which UTF-8 cannot encode."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError(400, f"{what} holds a string with a lone UTF-16 surrogate (an escape from \\ud800 to "
                               f"\\udfff without its pair): ids must be valid Unicode text") from None


def _printable(key: str) -> str:
    """``key`` quoted for a message, lone surrogates escaped so the message stays valid UTF-8."""
    return repr(key.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))


def _kind(value: Any) -> str:
    if isinstance(value, list) and not value:
        return "an empty list"
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


# -- answers ---------------------------------------------------------------------------------------------

def session_answer(result, session_id: Any = None, with_id: bool = False) -> dict:
    """One session's answer object from an engine result (``.recommendations``, ``.unknown_items``, ``.fallback``,
    ``.unknown_filter_items``)."""
    answer: dict[str, Any] = {"session_id": session_id} if with_id else {}
    answer["recommendations"] = [{"item_id": item, "score": score} for item, score in result.recommendations]
    answer["unknown_items"] = result.unknown_items
    if result.unknown_filter_items is not None:
        answer["unknown_filter_items"] = result.unknown_filter_items
    if result.fallback:
        answer["fallback"] = True
    return answer


def json_answer(request: JsonRequest, results: Sequence, model_version: str) -> dict:
    """The ``application/json`` answer to ``request``, given one engine result per session, in order, and the
    version of the model that scored them (``model_version``, the answer's last field)."""
    if not request.many:
        answer = session_answer(results[0])
    else:
        answer = {"results": [session_answer(result, session.session_id, True)
                              for session, result in zip(request.sessions, results)]}
    answer[MODEL_VERSION] = model_version
    return answer


def json_lines_answer(records: Sequence[SessionRequest | BadLine], results: Iterable, model_version: str) -> bytes:
    """The ``application/jsonlines`` answer: one line per record, each ending in ``model_version``; ``results``
    holds one per SessionRequest, in order."""
    results = iter(results)
    lines = []
    for record in records:
        if isinstance(record, BadLine):
            answer = {"session_id": record.session_id} if record.session_id is not None else {"line": record.line}
            answer["error"] = record.error
        else:
            answer = session_answer(next(results), record.session_id, True)
        answer[MODEL_VERSION] = model_version
        lines.append(encode(answer))
    return b"\n".join(lines) + b"\n"


def encode(value: Any) -> bytes:
    """``value`` as compact JSON in ASCII bytes.

    orjson writes it where it can, several times faster than the standard library on a Batch Transform
    payload's answers. The standard library writes what orjson refuses (integers beyond 64 bits, lone
    surrogates) or would write as raw UTF-8 (any non-ASCII text, which is escaped here instead).
    """
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        encoded = None
    if encoded is not None and encoded.isascii():
        return encoded
    return json.dumps(value, separators=(",", ":")).encode("ascii")
