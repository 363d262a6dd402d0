"""The playground's app: the model server's app (:func:`inference.predictor.create_app`, with its
``/invocations``) plus the page and the routes only the page uses.

- ``GET /``: the page; ``GET /playground/static/<file>``: its script and style.
- ``GET /playground/items?q=words&limit=N``: items whose id, name or category hold every word, most
  popular first (at most ``limit``, default :data:`DEFAULT_LIMIT`).
- ``POST /playground/describe`` ``{"item_ids": [...]}``: what the catalogue says of each id.
- ``POST /playground/popular``: an ``/invocations`` request's answer had none of its session's items been
  known: the most popular items its ``k`` and filter lists allow (the engine's own fallback); its
  ``items`` may be empty.
- ``GET /playground/report``: the model's data, parameters and figures from ``metadata.json``;
  ``GET /playground/training.png``: its training curve.
- ``GET /playground/config``: where the page sends its sessions: ``{"api": null}`` (this server's
  ``/invocations``) or ``{"api": {...}}``, a deployed stage's API called as a Cognito guest
  (:class:`GuestApi`, the settings of ``static/aws_guest.js``).
"""
from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

from flask import Flask, jsonify, request, send_from_directory

from inference import contracts
from inference.contracts import ClientError
from inference.engine import Recommender
from inference.playground.catalogue import Catalogue, Item
from inference.predictor import create_app, score
from model_code import artifacts

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_LIMIT = 60
MAX_LIMIT = 500
REPORT_KEYS = ("data", "parameters", "validation_metrics", "metrics", "training", "n_items")


@dataclasses.dataclass(frozen=True)
class GuestApi:
    """A deployed stage's ``POST /recommendations`` as its guests call it: the stack's outputs
    ``RecommendationsUrl``, ``GuestIdentityPoolId`` and ``GuestRoleArn``; Cognito's and STS's addresses
    default to the pool's region's (set only to stand in for them)."""

    api_url: str
    identity_pool_id: str
    role_arn: str
    cognito_url: str | None = None
    sts_url: str | None = None

    def to_json(self) -> dict:
        return {"apiUrl": self.api_url, "identityPoolId": self.identity_pool_id, "roleArn": self.role_arn,
                "cognitoUrl": self.cognito_url, "stsUrl": self.sts_url}


class LazyEngine:
    """The model directory's Recommender, loaded on first use (the page's most-popular answers)."""

    def __init__(self, model_dir: Path):
        self.model_dir = model_dir
        self._engine: Recommender | None = None
        self._lock = threading.Lock()

    def get(self) -> Recommender:
        with self._lock:
            if self._engine is None:
                self._engine = Recommender.load(self.model_dir)
        return self._engine


def create_playground(model_dir: str | Path, described: dict[str, Item] | None = None,
                      api: GuestApi | None = None) -> Flask:
    """The model server's app for ``model_dir`` with the playground's routes; ``described``: the items file's
    rows; ``api``: a deployed stage the page calls instead of this server's ``/invocations``."""
    model_dir = Path(model_dir)
    metadata = artifacts.read_metadata(model_dir)
    catalogue = Catalogue(artifacts.read_items(model_dir), metadata.get("popular_items", []), described)
    model_version = artifacts.read_model_version(model_dir)
    engine = LazyEngine(model_dir)
    app = create_app(model_dir)

    @app.get("/")
    def page():
        return send_from_directory(STATIC, "index.html")

    @app.get("/playground/static/<path:name>")
    def static_file(name: str):
        return send_from_directory(STATIC, name)

    @app.get("/playground/items")
    def items():
        found = catalogue.search(request.args.get("q", ""), _limit(request.args.get("limit")))
        return jsonify(items=[item.to_json() for item in found], total=len(catalogue.items),
                       described=catalogue.described)

    @app.post("/playground/describe")
    def describe():
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("item_ids"), list):
            raise ClientError(400, 'the body must be JSON {"item_ids": [...]}')
        item_ids = contracts.item_ids(body["item_ids"], "item_ids")
        return jsonify(items=[item.to_json() for item in catalogue.describe(item_ids)])

    @app.post("/playground/popular")
    def popular():
        contracts.check_content_type(request.headers.get("Content-Type"))
        parsed = contracts.parse_json_request(_any_session(request.get_data(cache=False)))
        sessions = [dataclasses.replace(session, items=[]) for session in parsed.sessions]
        results = score(engine.get(), sessions)
        return contracts.encode(contracts.json_answer(parsed, results, model_version)) + b"\n"

    @app.get("/playground/report")
    def report():
        figures = {key: metadata.get(key) for key in REPORT_KEYS}
        return jsonify(model_version=model_version,
                       has_plot=(model_dir / artifacts.PLOT_FILE).is_file(), **figures)

    @app.get("/playground/config")
    def config():
        return jsonify(api=api.to_json() if api else None)

    @app.get("/playground/training.png")
    def training_plot():
        return send_from_directory(model_dir.resolve(), artifacts.PLOT_FILE)

    return app


def _any_session(body: bytes) -> bytes:
    """``body`` with an empty ``items`` list (the page before its first click) made one the contract takes:
    the popular answer ignores a session's items anyway."""
    try:
        document = json.loads(body)
    except ValueError:
        return body  # the contract's parser names the problem
    if isinstance(document, dict) and document.get("items") == []:
        document["items"] = [""]
        return json.dumps(document).encode()
    return body


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ClientError(400, f"limit must be an integer from 1 to {MAX_LIMIT}, not {raw!r}")
    return int(raw)
