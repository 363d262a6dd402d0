"""The obvious alternative to the ONNX serving engine, for ``benchmarks/serving.py`` to measure side by side.

A Flask app that loads ``model.keras`` in each worker and calls Keras ``predict`` for every request,
then ranks with the real engine's top-k (``inference.engine.top_k``), so the difference measured is the Keras
forward pass (and the TensorFlow runtime it brings into every worker). It answers only the
single-session JSON contract (``{"items": [...], "k": 20}``) and ``/ping``.

    MODEL_DIR=path/to/model gunicorn -b 127.0.0.1:8081 benchmarks.keras_predict_app:app
"""
from __future__ import annotations

import os

import numpy as np
from flask import Flask, jsonify, request

from inference.engine import top_k
from model_code import artifacts

app = Flask(__name__)
_state: dict = {}


def _model():
    """Load the Keras model, the item lookup and the output layer once per worker."""
    if not _state:
        import keras

        import model_code.gru4rec.model  # noqa: F401  (registers the GRU4Rec classes for loading)

        model_dir = os.environ["MODEL_DIR"]
        _state["model"] = keras.saving.load_model(os.path.join(model_dir, artifacts.MODEL_FILE), compile=False)
        items = artifacts.read_items(model_dir)
        _state["items"] = items
        _state["index"] = {item: i for i, item in enumerate(items)}
        _state["table"], _state["bias"] = artifacts.read_output_layer(model_dir)
    return _state


@app.get("/ping")
def ping():
    _model()
    return "", 200


@app.post("/invocations")
def invocations():
    state = _model()
    body = request.get_json(force=True)
    k = int(body.get("k", 20))
    known = [state["index"][item] for item in body["items"] if item in state["index"]]
    sequence = np.array([known or [0]], dtype=np.int32)
    lengths = np.array([sequence.shape[1]], dtype=np.int32)
    hidden = state["model"].predict((sequence, lengths), verbose=0)
    top, top_scores = top_k(hidden @ state["table"].T + state["bias"], k)
    recommendations = [{"item_id": state["items"][i], "score": float(s)} for i, s in zip(top[0], top_scores[0])]
    return jsonify({"recommendations": recommendations, "unknown_items": len(body["items"]) - len(known)})
