"""Epoch checkpoints: resume a training run that was interrupted (a Spot instance reclaimed, a kill).

After every epoch the run saves one file, ``checkpoint.npz``, written to a
temporary name and renamed, so the file on disk is always a complete
checkpoint: the model's variables (weights and its dropout seed state), the
trainer's state (optimizer accumulators, sampler state), the number of epochs
done, the per-epoch history and the training seconds so far. A fingerprint of
what the weights depend on (data, parameters, seed, backend) guards against
resuming a different run; a second one names the set the history's figures
were measured on, so that figures of another set are never reported as this
run's.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_FILE = "checkpoint.npz"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """What a resumed run needs to continue exactly where the last epoch ended.

    ``eval_fingerprint`` identifies the evaluation set of the history's
    metrics (None: no evaluation set).
    """

    fingerprint: str
    epochs_done: int
    model_variables: list[np.ndarray]
    trainer_state: Any
    history: list[dict] = field(default_factory=list)
    fit_seconds: float = 0.0
    eval_fingerprint: str | None = None


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed by this run; the message says why and what to do."""


def fingerprint(*parts: Any) -> str:
    """A short hash of ``parts``: NumPy arrays by their bytes, anything else by its JSON form."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str((part.dtype.str, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


def save_checkpoint(directory: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` to ``directory/checkpoint.npz`` atomically; returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, value in enumerate(checkpoint.model_variables):
        arrays[f"model/{i}"] = np.asarray(value)
    skeleton = _to_skeleton(checkpoint.trainer_state, "trainer", arrays)
    header = {
        "format_version": FORMAT_VERSION,
        "fingerprint": checkpoint.fingerprint,
        "epochs_done": checkpoint.epochs_done,
        "n_model_variables": len(checkpoint.model_variables),
        "trainer_state": skeleton,
        "history": checkpoint.history,
        "fit_seconds": checkpoint.fit_seconds,
        "eval_fingerprint": checkpoint.eval_fingerprint,
    }
    arrays["header"] = np.array(json.dumps(header))
    target = directory / CHECKPOINT_FILE
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{CHECKPOINT_FILE}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint in ``directory``, or None where there is none."""
    path = Path(directory) / CHECKPOINT_FILE
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        if header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: checkpoint format {header.get('format_version')!r} is not {FORMAT_VERSION}")
        variables = [data[f"model/{i}"] for i in range(header["n_model_variables"])]
        trainer_state = _from_skeleton(header["trainer_state"], data)
    return Checkpoint(
        fingerprint=header["fingerprint"],
        epochs_done=header["epochs_done"],
        model_variables=variables,
        trainer_state=trainer_state,
        history=header["history"],
        fit_seconds=header["fit_seconds"],
        eval_fingerprint=header.get("eval_fingerprint"),
    )


def _to_skeleton(value: Any, prefix: str, arrays: dict[str, np.ndarray]) -> Any:
    """JSON-ready copy of ``value`` with every array (and tensor) moved into ``arrays``."""
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise TypeError(f"{prefix}: checkpoint state dict keys must be strings")
        return {"dict": {key: _to_skeleton(item, f"{prefix}/{key}", arrays) for key, item in value.items()}}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_to_skeleton(item, f"{prefix}/{i}", arrays) for i, item in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    array = np.asarray(value)
    if array.dtype == object:
        raise TypeError(f"{prefix}: cannot checkpoint a value of type {type(value).__name__}")
    arrays[prefix] = array
    return {"array": prefix}


def _from_skeleton(skeleton: dict, data) -> Any:
    (kind, content), = skeleton.items()
    if kind == "dict":
        return {key: _from_skeleton(item, data) for key, item in content.items()}
    if kind == "list":
        return [_from_skeleton(item, data) for item in content]
    if kind == "tuple":
        return tuple(_from_skeleton(item, data) for item in content)
    if kind == "array":
        return data[content]
    return content
