"""The Flask app SageMaker talks to: ``/ping``, ``/invocations`` and ``/execution-parameters``.

Each worker process loads the model directory on its first request (gunicorn forks the workers
before any request, so the model is loaded after the fork, once per worker) and answers ``/ping``
200 only once the model is loaded and a warm-up call has succeeded. Every answer that is not a
recommendation is a JSON ``{"error": "..."}`` with a 4xx status for the client's mistakes and 500 or
503 for the server's own.
"""
from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from inference import contracts
from inference.contracts import BadLine, ClientError, SessionRequest
from inference.engine import Recommender
from inference.paths import model_dir as default_model_dir
from inference.server_settings import ServerSettings, SettingsError, available_cores

log = logging.getLogger(__name__)


class ModelHolder:
    """The process's Recommender, loaded and warmed up once, on first use; the load error if it failed."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self._engine: Recommender | None = None
        self.error: str | None = None

    def get(self) -> Recommender | None:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._load()
        return self._engine

    def _load(self) -> None:
        try:
            engine = Recommender.load(self.model_dir)
            engine.warm_up()
        except Exception as err:  # a broken model directory must not kill the worker: /ping reports it
            self.error = f"cannot load the model from {self.model_dir}: {err}"
            log.error(self.error)
            return
        self._engine, self.error = engine, None
        log.info("model loaded from %s: %d items", self.model_dir, engine.n_items)


def create_app(model_dir: str | Path | None = None) -> Flask:
    """The app for ``model_dir`` (default ``$OPT_ML_DIR/model``); nothing is loaded until the first request."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = contracts.MAX_PAYLOAD_BYTES
    holder = ModelHolder(Path(model_dir) if model_dir else default_model_dir())

    @app.get("/ping")
    def ping():
        if holder.get() is None:
            return jsonify(error=holder.error), 503
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters():
        return jsonify(MaxConcurrentTransforms=_workers(), BatchStrategy="MULTI_RECORD",
                       MaxPayloadInMB=contracts.MAX_PAYLOAD_BYTES // (1024 * 1024))

    @app.post("/invocations")
    def invocations():
        kind = contracts.check_content_type(request.content_type)
        body = request.get_data(cache=False)
        engine = holder.get()
        if engine is None:
            return jsonify(error=f"the model is not loaded: {holder.error}"), 503
        if kind == contracts.JSON_LINES:
            return _json_lines_answer(engine, contracts.parse_json_lines(body))
        many, sessions = contracts.parse_json_request(body)
        results = score(engine, sessions)
        if many:
            return jsonify(results=[contracts.session_answer(r, s.session_id, True) for s, r in zip(sessions, results)])
        return jsonify(contracts.session_answer(results[0]))

    @app.errorhandler(ClientError)
    def client_error(err: ClientError):
        return jsonify(error=err.message), err.status

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        messages = {413: f"the body is larger than {contracts.MAX_PAYLOAD_BYTES:,} bytes (6 MB)"}
        headers = [(name, value) for name, value in err.get_headers() if name.lower() != "content-type"]
        return jsonify(error=messages.get(err.code, err.description)), err.code, headers  # e.g. Allow on a 405

    @app.errorhandler(Exception)
    def server_error(err: Exception):
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return jsonify(error="internal error while scoring; the request was not answered"), 500

    return app


def score(engine: Recommender, sessions: list[SessionRequest]) -> list:
    """Engine results in the order of ``sessions``: one batched call per distinct (k, exclude_seen)."""
    groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for position, session in enumerate(sessions):
        groups[(session.k, session.exclude_seen)].append(position)
    results: list = [None] * len(sessions)
    for (k, exclude_seen), positions in groups.items():
        answers = engine.recommend([sessions[p].items for p in positions], k=k, exclude_seen=exclude_seen)
        for position, answer in zip(positions, answers):
            results[position] = answer
    return results


def _json_lines_answer(engine: Recommender, records: list[SessionRequest | BadLine]) -> Response:
    good = [record for record in records if isinstance(record, SessionRequest)]
    results = iter(score(engine, good))
    answers = []
    for record in records:
        if isinstance(record, BadLine):
            answer = {"session_id": record.session_id} if record.session_id is not None else {"line": record.line}
            answer["error"] = record.error
        else:
            answer = contracts.session_answer(next(results), record.session_id, True)
        answers.append(answer)
    return Response("".join(contracts.json_lines(answers)), mimetype=contracts.JSON_LINES)


def _workers() -> int:
    try:
        return ServerSettings.from_env().workers
    except SettingsError:
        return available_cores()
