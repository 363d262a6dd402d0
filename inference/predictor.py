"""The Flask app SageMaker talks to: ``/ping``, ``/invocations`` and ``/execution-parameters``.

Each worker process loads the model directory on its first request (gunicorn forks the workers
before any request arrives, so the model is loaded after the fork, once per worker; nothing is
loaded at import) and answers ``/ping`` 200 only once the model is loaded and a warm-up call has
succeeded. A model directory that cannot be loaded leaves the worker running: ``/ping`` answers 503
and logs why, and every request tries the load again. Every answer is JSON (``application/json`` is
the default content type, so ``/ping``'s and ``OPTIONS``' answers too); one that is not a
recommendation is ``{"error": "..."}``: 4xx for the client's mistakes, 503 while no model is loaded
(saying what is wrong, not where: the model directory's path and ONNX Runtime's own message go to the
log only), and 500 (logged, no details given) for anything unexpected. Each scored request writes one
metrics line (``inference.request_metrics``).

A JSON-lines answer is streamed: the records are scored and written a chunk at a time (about
:data:`inference.streaming.STREAM_CHUNK_RECOMMENDATIONS` recommendations each), so a Batch Transform payload's answer is
never held whole in memory; its bound (:data:`inference.contracts.MAX_JSON_LINES_RECOMMENDATIONS`) is
checked before the first line is written, as a 413 cannot follow a 200. For the same reason an
unexpected failure while scoring a later chunk cannot become a 500: gunicorn logs it and ends the
connection, and the client (Batch Transform) sees an answer cut short, not a complete one.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from inference import contracts, streaming
from inference.contracts import ClientError, SessionRequest
from inference.engine import ItemFilter, Recommender
from inference.job_filters import read_job_filters
from inference.paths import model_dir as default_model_dir
from inference.request_metrics import log_counts, log_request
from inference.server_settings import ServerSettings, SettingsError, available_cores, max_payload_bytes, top_k_search
from inference.streaming import score
from model_code import artifacts

log = logging.getLogger(__name__)

class JsonResponse(Response):
    """Flask's response with JSON as its default content type: no answer of this app is ``text/html``."""

    default_mimetype = "application/json"


class ModelHolder:
    """The process's Recommender, loaded and warmed up on first use; ``error`` says why the last load failed.

    ``defaults`` holds the job's own filter lists (``filters.json`` beside the model files, or none), and
    ``filters`` their engine filter, built once; ``model_version`` is what every answer names.
    """

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self.error: str | None = None
        self.defaults: SessionRequest | None = None
        self.model_version = ""
        self.filters: dict[tuple[int, int], ItemFilter] = {}
        self._engine: Recommender | None = None
        self._lock = threading.Lock()

    def get(self) -> Recommender | None:
        """The loaded Recommender, loading it now if need be; None (and ``error`` set) if it cannot be loaded."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._load()
        return self._engine

    def _load(self) -> None:
        try:
            engine = Recommender.load(self.model_dir, top_k_search=top_k_search())
            engine.warm_up()
            defaults = read_job_filters(self.model_dir)
            model_version = artifacts.read_model_version(self.model_dir)
        except Exception as err:  # a broken model directory must not kill the worker: /ping reports it
            error = public_reason(err, self.model_dir)
            if error != self.error:
                cause = f" ({err.__cause__})" if err.__cause__ is not None else ""
                log.error("cannot load the model from %s: %s%s", self.model_dir, err, cause)
            self.error = error
            return
        if defaults is not None:
            self.filters = streaming.job_filters(engine, defaults)
            job_filter = next(iter(self.filters.values()))
            log.info("job filters from %s: %d items ruled out, %d listed ids unknown", self.model_dir,
                     int(job_filter.blocked.sum()), job_filter.unknown)
        self.defaults = defaults
        self.model_version = model_version
        self._engine, self.error = engine, None
        log.info("model %s loaded from %s: %d items", model_version, self.model_dir, engine.n_items)


def create_app(model_dir: str | Path | None = None, payload_limit: int | None = None) -> Flask:
    """The app serving ``model_dir`` (default ``$OPT_ML_DIR/model``); the model loads on the first request.

    ``payload_limit``: the largest body it takes, by default as ``$SAGEMAKER_SERVERLESS`` says (4 or 6 MB).
    """
    app = Flask(__name__)
    app.response_class = JsonResponse
    limit = max_payload_bytes() if payload_limit is None else payload_limit
    app.config["MAX_CONTENT_LENGTH"] = limit
    app.json.sort_keys = False
    holder = ModelHolder(Path(model_dir) if model_dir else default_model_dir())

    @app.get("/ping")
    def ping():
        if holder.get() is None:
            return jsonify(error=holder.error), 503
        return jsonify(status="ready", model_version=holder.model_version)

    @app.get("/execution-parameters")
    def execution_parameters():
        return jsonify(MaxConcurrentTransforms=_workers(), BatchStrategy="MULTI_RECORD",
                       MaxPayloadInMB=contracts.MAX_PAYLOAD_BYTES // (1024 * 1024))

    @app.post("/invocations")
    def invocations():
        kind = contracts.check_content_type(request.headers.get("Content-Type"))
        contracts.check_content_encoding(request.headers.get("Content-Encoding"))
        contracts.check_accept(request.headers.get("Accept"))
        body = request.get_data(cache=False)
        if kind == contracts.JSON_LINES:
            defaults = holder.defaults
            records = contracts.parse_json_lines(body, defaults)
            engine = _engine(holder)
            if holder.defaults is not defaults:  # the model, and with it the job's filters, loaded just now
                records = contracts.parse_json_lines(body, holder.defaults)
            del body
            contracts.check_work(records, contracts.MAX_JSON_LINES_RECOMMENDATIONS, "records", contracts.JSON_LINES)
            return Response(stream_with_metrics(engine, records, holder.filters, holder.model_version),
                            mimetype=contracts.JSON_LINES)
        defaults = holder.defaults
        parsed = contracts.parse_json_request(body, defaults)
        engine = _engine(holder)
        if holder.defaults is not defaults:
            parsed = contracts.parse_json_request(body, holder.defaults)
        results = score(engine, parsed.sessions, holder.filters)
        log_request(parsed.sessions, results, holder.model_version)
        answer = contracts.json_answer(parsed, results, holder.model_version)
        return Response(contracts.encode(answer) + b"\n", mimetype="application/json")

    @app.errorhandler(ClientError)
    def client_error(err: ClientError):
        return jsonify(error=err.message), err.status

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException):
        messages = {
            404: f"no such path {request.path!r}: the paths are /ping, /invocations and /execution-parameters",
            405: f"{request.method} is not allowed on {request.path}",
            413: f"the body is larger than {limit:,} bytes ({limit // (1024 * 1024)} MB)",
        }
        response = jsonify(error=messages.get(err.code, err.description))
        response.status_code = err.code or 500
        if err.code == 405:
            response.headers["Allow"] = err.get_response().headers.get("Allow", "")
        return response

    @app.errorhandler(Exception)
    def server_error(err: Exception):
        log.exception("unexpected error answering %s %s", request.method, request.path)
        return jsonify(error="internal error: the request was not answered"), 500

    return app


def stream_with_metrics(engine: Recommender, records: list, known_filters: dict[tuple[int, int], ItemFilter],
                        model_version: str) -> Iterator[bytes]:
    """:func:`inference.streaming.stream_json_lines`, then the request's metrics line once the last chunk is out."""
    counts = streaming.Counts()
    yield from streaming.stream_json_lines(engine, records, known_filters, model_version, counts)
    log_counts(counts.sessions, counts.items, counts.unknown, model_version)


def public_reason(error: Exception, model_dir: Path) -> str:
    """Why the model cannot be loaded, for a client: the model directory's problem without the server's paths
    (file names relative to the model directory) and without any library's message (that one is logged)."""
    if not isinstance(error, artifacts.ModelDirError):
        return f"the model directory cannot be read ({type(error).__name__})"
    text = str(error)
    if error.__cause__ is not None:
        text = text.replace(f": {error.__cause__}", "")
    for folder in {str(model_dir), str(model_dir.resolve())}:
        text = text.replace(folder + "/", "").replace(folder, "the model directory")
    return text


class ModelUnavailable(HTTPException):
    """503 while the model cannot be loaded; the message says why."""

    code = 503


def _engine(holder: ModelHolder) -> Recommender:
    engine = holder.get()
    if engine is None:
        raise ModelUnavailable(description=f"the model is not available: {holder.error}")
    return engine


def _workers() -> int:
    """MaxConcurrentTransforms: the worker count ``serve`` runs (MODEL_SERVER_WORKERS), else the cores."""
    try:
        return ServerSettings.from_env().workers
    except SettingsError:
        return available_cores()
