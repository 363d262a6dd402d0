"""Package a locally trained model directory as the stack's first model (``initial_model_artifact``).

The CDK app uploads ``build/model.tar.gz`` (cdk.json's ``initial_model_artifact``) as the model the
endpoint serves before any training run; ``make model-artifact`` builds one from synthetic data. This
command puts a model trained on the shop's own events there instead, so the API's first answers are the
shop's items. The archive holds the model directory's files at its root, as SageMaker unpacks it into
``/opt/ml/model``, with ``initial_model_version`` recorded as the model's version (every answer names
it). The directory is checked first as the server loads it (a warm-up call included); the directory
itself is left unchanged, and the archive is written whole or not at all.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path

from infra.ops.errors import OpsError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ARCHIVE = PROJECT_ROOT / "build" / "model.tar.gz"
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What infra/config.py accepts as ``initial_model_version``."""


def configured_version(cdk_json: Path = PROJECT_ROOT / "cdk.json") -> str:
    """cdk.json's ``initial_model_version``: the version the stack's first model is known by."""
    return json.loads(cdk_json.read_text())["context"]["initial_model_version"]


def check_model_dir(model_dir: Path) -> int:
    """Load ``model_dir`` as the server does and score once; the number of items. OpsError says what is wrong."""
    from inference.engine import Recommender  # ONNX Runtime: loaded by this command only
    from model_code.artifacts import ModelDirError

    if not model_dir.is_dir():
        raise OpsError(f"{model_dir}: no such model directory")
    try:
        engine = Recommender.load(model_dir)
        engine.warm_up()
    except (ModelDirError, OSError, ValueError) as err:
        raise OpsError(f"{model_dir} is not a usable model directory: {err}") from None
    return engine.n_items


def package(model_dir: Path, archive: Path, version: str) -> int:
    """Write ``archive`` from ``model_dir`` with ``version`` recorded; the model's number of items."""
    from model_code.artifacts import record_model_version

    if not VERSION_PATTERN.fullmatch(version):
        raise OpsError(f"version {version!r}: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    items = check_model_dir(model_dir)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".first-model-", dir=archive.parent) as work:
        copy = Path(work) / "model"
        shutil.copytree(model_dir, copy)
        record_model_version(copy, version)
        partial = Path(work) / archive.name
        with tarfile.open(partial, "w:gz") as tar:
            for path in sorted(copy.iterdir()):
                tar.add(path, arcname=path.name)
        os.replace(partial, archive)
    return items
