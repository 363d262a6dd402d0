"""gunicorn's own error answers as JSON ``{"error": "..."}`` instead of its HTML page.

gunicorn answers a request it cannot parse (a header nginx passed on but gunicorn refuses, for one)
itself, before the app sees it, with ``gunicorn.util.write_error``. ``gunicorn.conf.py`` puts
:func:`write_json_error` in its place, so that answer is JSON like every other one.
"""
from __future__ import annotations

from gunicorn import util

from inference.contracts import encode


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """``write_error``'s contract (status, reason phrase, message; the connection closes after), in JSON."""
    text = f"{reason.lower()}: {mesg}" if mesg else reason.lower()
    body = encode({"error": text}) + b"\n"
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin1") + body)


def install() -> None:
    """Make gunicorn's workers write their own error answers with :func:`write_json_error`."""
    util.write_error = write_json_error
