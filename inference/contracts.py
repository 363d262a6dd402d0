"""The ``/invocations`` wire contracts: parse and check a request, shape the answer.

``application/json``, one session or many::

    {"items": ["a", "b"], "k": 20, "exclude_seen": true}
    {"sessions": [{"session_id": "s1", "items": ["a", "b"]}, ...], "k": 10}

``application/jsonlines`` (Batch Transform): one ``{"session_id": ..., "items": [...]}`` per line,
each line answered by one output line in the same order; a bad line is answered in place by
``{"session_id": ..., "error": ...}`` (or ``{"line": N, "error": ...}`` where no id is readable),
so one bad record never fails a batch. Anything wrong with a request as a whole raises
:class:`ClientError` with the HTTP status and a message that names the problem.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

JSON = "application/json"
JSON_LINES = "application/jsonlines"
JSON_LINES_ALIASES = frozenset({JSON_LINES, "application/x-jsonlines", "application/json-lines", "application/jsonl"})
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
MAX_SESSIONS = 10_000
MAX_ITEMS = 1_000
MIN_K, MAX_K, DEFAULT_K = 1, 1000, 20
SESSION_FIELDS = frozenset({"session_id", "items", "k", "exclude_seen"})
JSON_WHITESPACE = " \t\r"


class ClientError(Exception):
    """A request the server cannot answer as asked: HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class SessionRequest:
    """One session to score: item ids in time order and how to rank."""

    items: list[str]
    k: int = DEFAULT_K
    exclude_seen: bool = False
    session_id: Any = None


@dataclass(frozen=True)
class BadLine:
    """A JSON-lines record that could not be read: answered in place with its error."""

    error: str
    session_id: Any = None
    line: int = 0


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``; jsonlines aliases -> ``application/jsonlines``."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return JSON_LINES if base in JSON_LINES_ALIASES else base


def check_content_type(content_type: str | None) -> str:
    """The request's media type, or a 415 ClientError naming the ones accepted."""
    kind = media_type(content_type)
    if kind not in (JSON, JSON_LINES):
        shown = content_type or "none"
        raise ClientError(415, f"unsupported content type {shown!r}: send {JSON} or {JSON_LINES}")
    return kind


def parse_json_request(body: bytes) -> tuple[bool, list[SessionRequest]]:
    """An ``application/json`` body -> (is it the many-sessions form, the sessions to score)."""
    document = _load_json(body)
    if not isinstance(document, dict):
        raise ClientError(400, f"the body must be a JSON object with 'items' or 'sessions', not {_kind(document)}")
    if "sessions" in document and "items" in document:
        raise ClientError(400, "give either 'items' (one session) or 'sessions' (many), not both")
    if "sessions" not in document:
        _check_fields(document, SESSION_FIELDS - {"session_id"}, "the request")
        return False, [_session(document, "")]
    _check_fields(document, {"sessions", "k", "exclude_seen"}, "the request")
    sessions = document["sessions"]
    if not isinstance(sessions, list) or not sessions:
        got = "an empty list" if sessions == [] else _kind(sessions)
        raise ClientError(400, f"'sessions' must be a non-empty list of session objects, not {got}")
    if len(sessions) > MAX_SESSIONS:
        raise ClientError(413, f"'sessions' holds {len(sessions)} sessions; at most {MAX_SESSIONS} per request")
    defaults = {"k": _k(document, "", DEFAULT_K), "exclude_seen": _exclude_seen(document, "", False)}
    parsed = []
    for i, session in enumerate(sessions):
        where = f"sessions[{i}]."
        if not isinstance(session, dict):
            raise ClientError(400, f"sessions[{i}] must be an object with 'items', not {_kind(session)}")
        _check_fields(session, SESSION_FIELDS, f"sessions[{i}]")
        parsed.append(_session(session, where, defaults))
    return True, parsed


def parse_json_lines(body: bytes) -> list[SessionRequest | BadLine]:
    """An ``application/jsonlines`` body -> one entry per non-blank line, bad lines as :class:`BadLine`."""
    text = _decode(body)
    # only "\n" ends a record (as in Batch Transform's SplitType Line); other Unicode line breaks may sit in strings
    lines = enumerate(text.split("\n"), start=1)
    records = [(number, line) for number, line in lines if line.strip(JSON_WHITESPACE)]
    if not records:
        raise ClientError(400, "the body holds no JSON lines: send one {\"session_id\": ..., \"items\": [...]} per line")
    if len(records) > MAX_SESSIONS * 10:
        raise ClientError(413, f"the body holds {len(records)} lines; at most {MAX_SESSIONS * 10} per request")
    return [_line(number, line) for number, line in records]


def _line(number: int, line: str) -> SessionRequest | BadLine:
    try:
        record = _parse(line, f"line {number}")
    except ClientError as err:
        return BadLine(err.message, line=number)
    session_id = record.get("session_id") if isinstance(record, dict) else None
    if not _is_session_id(session_id):  # an unusable id is not echoed: the answer names the line instead
        session_id = None
    try:
        if not isinstance(record, dict):
            raise ClientError(400, f"line {number} must be a JSON object with 'items', not {_kind(record)}")
        _check_fields(record, SESSION_FIELDS, f"line {number}")
        return _session(record, "")
    except ClientError as err:
        return BadLine(err.message, session_id=session_id, line=number)


def _session(record: dict, where: str, defaults: dict | None = None) -> SessionRequest:
    defaults = defaults or {"k": DEFAULT_K, "exclude_seen": False}
    session_id = record.get("session_id")
    if session_id is not None and not _is_session_id(session_id):
        raise ClientError(400, f"'{where}session_id' must be a string or an integer, not {_kind(session_id)}")
    return SessionRequest(
        items=_items(record, where), k=_k(record, where, defaults["k"]),
        exclude_seen=_exclude_seen(record, where, defaults["exclude_seen"]), session_id=session_id,
    )


def _is_session_id(value: Any) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _items(record: dict, where: str) -> list[str]:
    if "items" not in record:
        raise ClientError(400, f"'{where}items' is missing: give the session's item ids in time order")
    items = record["items"]
    if not isinstance(items, list) or not items:
        got = "an empty list" if items == [] else _kind(items)
        raise ClientError(400, f"'{where}items' must be a non-empty list of item ids, not {got}")
    if len(items) > MAX_ITEMS:
        raise ClientError(400, f"'{where}items' holds {len(items)} items; at most {MAX_ITEMS} per session")
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ClientError(400, f"'{where}items[{i}]' must be an item id (a string or an integer), not {_kind(item)}")
    return [item if isinstance(item, str) else str(item) for item in items]


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


def _check_fields(record: dict, allowed: set | frozenset, where: str) -> None:
    unknown = sorted(str(key) for key in record if key not in allowed)
    if unknown:
        raise ClientError(400, f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; "
                               f"allowed: {', '.join(sorted(allowed))}")


def _load_json(body: bytes) -> Any:
    text = _decode(body)
    if not text.strip():
        raise ClientError(400, "the body is empty: send a JSON object with 'items' or 'sessions'")
    return _parse(text, "the body")


def _parse(text: str, what: str) -> Any:
    """``json.loads``, where every way it can fail is a 400 :class:`ClientError` about ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        place = f"line {err.lineno} column {err.colno}" if "\n" in text else f"column {err.colno}"
        raise ClientError(400, f"{what} is not valid JSON: {err.msg} at {place}") from None
    except RecursionError:
        raise ClientError(400, f"{what} is not valid JSON: nested too deeply") from None
    except ValueError:  # an integer longer than Python's int conversion limit
        raise ClientError(400, f"{what} holds a number with too many digits") from None


def _decode(body: bytes) -> str:
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ClientError(413, f"the body is {len(body):,} bytes; at most {MAX_PAYLOAD_BYTES:,} (6 MB) per request")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ClientError(400, f"the body is not UTF-8 text: bad byte at position {err.start}") from None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def recommendations(result) -> list[dict]:
    """``[(item, score), ...]`` -> ``[{"item_id": item, "score": score}, ...]``."""
    return [{"item_id": item, "score": score} for item, score in result.recommendations]


def session_answer(result, session_id: Any = None, with_id: bool = False) -> dict:
    """One session's answer object; ``fallback`` is present only where the popularity fallback answered."""
    answer = {"session_id": session_id} if with_id else {}
    answer["recommendations"] = recommendations(result)
    answer["unknown_items"] = result.unknown_items
    if result.fallback:
        answer["fallback"] = True
    return answer


def json_lines(answers: list[dict]) -> Iterator[str]:
    """Answer objects as JSON lines."""
    for answer in answers:
        yield json.dumps(answer, separators=(",", ":")) + "\n"
