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

Rules: ``items`` is a non-empty list of item ids, strings or integers (integers are read as their
decimal strings, as ``items.json`` holds ids as strings); ``k`` an integer from 1 to 1000 (default
20); ``exclude_seen`` true or false (default false); ``session_id`` (optional) a string or an integer,
echoed back as given (null where absent). Business rules, each a list of at most
:data:`MAX_FILTER_ITEMS` item ids: ``exclude_items`` (never recommended) and ``include_items`` (when
given, only these may be recommended); ids the model does not know are ignored and counted in the
answer's ``unknown_filter_items``, which is there only where a list was given. A session's own
``k``, ``exclude_seen`` and lists replace the request's (``sessions`` form), and a line's replace the
job's defaults (:class:`SessionRequest` given to the parser), field by field. Unknown fields are refused, so a misspelt option is never
silently ignored. An answer where no item of the session was known carries ``"fallback": true`` and
the most popular items, scored 0.0. Every answer, and every answer line, ends with ``"model_version"``:
the model directory's version (the training job's name, or the first model's ``initial_model_version``).

A request that cannot be answered as a whole raises :class:`ClientError` with its HTTP status and a
message naming the problem and the field: 400 (malformed or invalid), 406 (``Accept`` names no format
this server writes), 413 (over :data:`MAX_PAYLOAD_BYTES` or :data:`MAX_SESSIONS`), 415 (content type).

Answers are compact ASCII JSON (:func:`encode`): a line of JSON lines never holds a character that a
reader splitting at line breaks other than ``\n`` (U+2028, for one) would split at.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

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
    """``application/json; charset=utf-8`` -> ``application/json``; every JSON-lines alias -> ``application/jsonlines``."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return JSON_LINES if base in JSON_LINES_ALIASES else base


def check_content_type(content_type: str | None) -> str:
    """The request's format (:data:`JSON` or :data:`JSON_LINES`), or a 415 naming the formats accepted."""
    kind = media_type(content_type)
    if kind not in (JSON, JSON_LINES):
        problem = f"Content-Type {content_type!r} is not supported" if content_type else "the Content-Type is missing"
        raise ClientError(415, f"{problem}: send {JSON} or {JSON_LINES}")
    return kind


def check_accept(accept: str | None) -> None:
    """Refuse (406) an ``Accept`` header that allows neither JSON nor JSON lines; the answer's format is the request's."""
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
    return JsonRequest(True, parsed)


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
        raise ClientError(400, "the body holds no JSON lines: send one {\"session_id\": ..., \"items\": [...]} per line")
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
    if session_id is not None and not _is_session_id(session_id):
        raise ClientError(400, f"'{where}session_id' must be a string or an integer, not {_kind(session_id)}")
    options = _options(record, where, defaults or SessionRequest(items=[]))
    return replace(options, items=_items(record, where), session_id=session_id)


def _options(record: dict, where: str, defaults: SessionRequest) -> SessionRequest:
    """``defaults`` with the options ``record`` gives (k, exclude_seen, the filter lists) put in, each checked."""
    return replace(defaults, k=_k(record, where, defaults.k),
                   exclude_seen=_exclude_seen(record, where, defaults.exclude_seen),
                   exclude_items=_id_list(record, where, "exclude_items", defaults.exclude_items),
                   include_items=_id_list(record, where, "include_items", defaults.include_items))


def _is_session_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _items(record: dict, where: str) -> list[str]:
    if "items" not in record:
        raise ClientError(400, f"'{where}items' is missing: give the session's item ids, oldest first")
    items = record["items"]
    if not isinstance(items, list) or not items:
        raise ClientError(400, f"'{where}items' must be a non-empty list of item ids, not {_kind(items)}")
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


def _load_json(text: str, what: str, one_line: bool = False) -> Any:
    if not text.strip(JSON_WHITESPACE.decode()):
        raise ClientError(400, f"{what} is empty: send a JSON object with 'items' or 'sessions'")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        where = f"column {err.colno}" if one_line else f"line {err.lineno} column {err.colno}"
        raise ClientError(400, f"{what} is not valid JSON: {err.msg} at {where}") from None
    except RecursionError:
        raise ClientError(400, f"{what} is nested too deeply to read") from None
    except ValueError:  # Python reads integers of at most 4,300 digits
        raise ClientError(400, f"{what} holds a number of more than 4,300 digits") from None


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
