"""Where SageMaker puts things in the container: under ``/opt/ml``, or under ``$OPT_ML_DIR`` elsewhere.

On a developer machine (tests, the demo) a directory laid out like ``/opt/ml`` stands in for it,
named by the ``OPT_ML_DIR`` environment variable.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_OPT_ML_DIR = "/opt/ml"
MODEL_SUBDIR = "model"
MODEL_DIR_VARIABLE = "SERVE_MODEL_DIR"
"""Names the model directory itself, in place of ``<opt_ml_dir>/model`` (``serve --model-dir`` sets it)."""


def opt_ml_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The ``/opt/ml`` root: ``$OPT_ML_DIR`` when set and not empty, else ``/opt/ml``."""
    return Path(environ.get("OPT_ML_DIR") or DEFAULT_OPT_ML_DIR)


def model_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The model directory: ``$SERVE_MODEL_DIR`` when set and not empty, else the one SageMaker unpacks
    ``model.tar.gz`` into, ``<opt_ml_dir>/model``."""
    named = environ.get(MODEL_DIR_VARIABLE)
    return Path(named) if named else opt_ml_dir(environ) / MODEL_SUBDIR
