"""The model directory: its file names and a TensorFlow-free reader and writer.

Training (``model_code``) writes the directory; serving (``inference``) reads it.
This module is the only code the two share, so it imports nothing but the
standard library and NumPy.

Layout::

    model.keras            the full Keras model (retraining, inspection)
    scorer.onnx            padded item-index sequences + lengths -> final hidden state
    scorer.onnx.data       the graph's large weights (its input item table), where it has any
    item_embeddings.npy    float32 [n_items, hidden]: output item table
    item_bias.npy          float32 [n_items]: output bias
    item_search.faiss      catalogues of 100,000 items or more: a FAISS index of the output layer
                           for fast top-k (inference/search_index.py)
    items.json             ["item id of index 0", "item id of index 1", ...]
    metadata.json          parameters, data statistics, metrics, versions, popular items, and
                           ``model_version``: the SageMaker training job's name (the first model:
                           the deployment's ``initial_model_version``)

Scores for a session are ``hidden @ item_embeddings.T + item_bias``.
``scorer.onnx`` takes ``items`` int32 [N, T] padded with ``padding_index``
(== n_items, an index no item uses) and ``lengths`` int32 [N] (>= 1), and
returns ``hidden`` float32 [N, hidden]: the last GRU layer's state after the
item at position ``length - 1``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MODEL_FILE = "model.keras"
SCORER_FILE = "scorer.onnx"
SCORER_DATA_FILE = "scorer.onnx.data"
EMBEDDINGS_FILE = "item_embeddings.npy"
BIAS_FILE = "item_bias.npy"
ITEMS_FILE = "items.json"
METADATA_FILE = "metadata.json"
PLOT_FILE = "training.png"

SCORER_INPUTS = ("items", "lengths")
SCORER_OUTPUT = "hidden"
FORMAT_VERSION = 1
MODEL_VERSION_KEY = "model_version"
UNVERSIONED = "unversioned"
"""The version of a model directory that records none (trained outside SageMaker, or before versions)."""


class ModelDirError(ValueError):
    """The model directory is missing a file or holds an inconsistent one."""


def file_mode(folder: bool = False) -> int:
    """The mode ``open()`` gives a new file (``mkdir()`` a folder) under the process's umask.

    Temporary files are created private (0600); files written through one are given this mode, so
    they end up like any other file the user writes (0644 under umask 022).
    """
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if folder else 0o666) & ~umask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically: a reader never sees a half-written file."""
    _write_atomically(Path(path), json.dumps(obj, indent=2, sort_keys=True).encode())


def write_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a .npy file atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npy")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_items(model_dir: str | os.PathLike) -> list[str]:
    """Item ids by index, as strings."""
    items = _read_json(Path(model_dir) / ITEMS_FILE)
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ModelDirError(f"{ITEMS_FILE} in {model_dir} must be a JSON list of item id strings")
    return items


def read_metadata(model_dir: str | os.PathLike) -> dict[str, Any]:
    metadata = _read_json(Path(model_dir) / METADATA_FILE)
    if not isinstance(metadata, dict):
        raise ModelDirError(f"{METADATA_FILE} in {model_dir} must be a JSON object")
    return metadata


def read_model_version(model_dir: str | os.PathLike) -> str:
    """The model's version from metadata.json (:data:`UNVERSIONED` where it records none)."""
    version = read_metadata(model_dir).get(MODEL_VERSION_KEY, UNVERSIONED)
    if not isinstance(version, str) or not version:
        raise ModelDirError(f"'{MODEL_VERSION_KEY}' in {METADATA_FILE} of {model_dir} must be a non-empty string")
    return version


def record_model_version(model_dir: str | os.PathLike, version: str) -> None:
    """Write ``version`` into the model directory's metadata.json (atomically)."""
    metadata = read_metadata(model_dir)
    metadata[MODEL_VERSION_KEY] = version
    write_json(Path(model_dir) / METADATA_FILE, metadata)


def read_output_layer(model_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The output item table [n_items, hidden] and bias [n_items], both float32 and read-only.

    Both are memory-mapped from their files, not read into the process: the server's workers map the
    same pages of the OS page cache, so a million-item table (400 MB) is held once however many workers
    serve it. Files stored in another dtype are converted (a private copy).
    """
    model_dir = Path(model_dir)
    embeddings = _read_array(model_dir / EMBEDDINGS_FILE)
    bias = _read_array(model_dir / BIAS_FILE)
    if embeddings.ndim != 2 or bias.shape != (embeddings.shape[0],):
        raise ModelDirError(
            f"{EMBEDDINGS_FILE} {embeddings.shape} and {BIAS_FILE} {bias.shape} in {model_dir} do not match"
        )
    return embeddings.astype(np.float32, copy=False), bias.astype(np.float32, copy=False)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelDirError(f"model directory file missing: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # not UTF-8, or not JSON
        raise ModelDirError(f"{path} is not valid JSON: {err}") from err


def _read_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise ModelDirError(f"model directory file missing: {path}")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as err:  # truncated, not .npy, or an object array
        raise ModelDirError(f"{path} is not a readable .npy array: {err}") from err
