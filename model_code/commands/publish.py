"""Publishing a trained model: the model directory assembled in a temporary sibling folder, then put in place.

A failed run never leaves a half-written model: the directory appears by one rename, or, where it already
exists (SageMaker's /opt/ml/model), file by file with metadata.json, the sign of a complete model, last.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from model_code import artifacts
from model_code.commands.report import PLOT_METRIC, VALIDATION_KEY
from model_code.gru4rec.tf_startup import load_tensorflow_quietly


def write_model_dir(model_dir: Path, model, index, metadata: dict, *, export: bool, log: Callable[[str], None],
                    tensorflow_logs: bool, wall_start: float) -> None:
    """Assemble the directory in a temporary sibling, then move it into place."""
    from model_code.commands.plots import plot_training
    from model_code.export.scorer import export_model_dir

    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=model_dir.parent, prefix=f".{model_dir.name}.tmp-"))
    try:
        load_tensorflow_quietly(tensorflow_logs)  # Keras's saving imports it where it is installed
        model.save(staging / artifacts.MODEL_FILE)
        index.save(staging)
        if export:
            export_model_dir(model, staging, log)
        else:
            log("skipping the ONNX scorer export: export not asked for")
        history = metadata["training"]["history"]
        plot_training(staging / artifacts.PLOT_FILE, [r["loss"] for r in history],
                      [r.get(VALIDATION_KEY, {}).get(PLOT_METRIC) for r in history],
                      (metadata["metrics"] or {}).get(PLOT_METRIC))
        metadata["training"]["wall_seconds"] = round(time.perf_counter() - wall_start, 3)
        artifacts.write_json(staging / artifacts.METADATA_FILE, metadata)
        _readable_by_all(staging)
        _publish(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _readable_by_all(folder: Path) -> None:
    """Give the staged folder and its files the usual modes (temporary files are created private)."""
    folder.chmod(artifacts.file_mode(folder=True))
    for path in folder.iterdir():
        path.chmod(artifacts.file_mode())


def _publish(staging: Path, model_dir: Path) -> None:
    """Put ``staging``'s files at ``model_dir``: a rename where possible, else file by file, metadata last.

    A folder that already exists (SageMaker's /opt/ml/model, possibly a mount
    point) keeps its place; its files are replaced one by one, each with an
    atomic rename (after a copy beside it where the folder is another file
    system), and metadata.json (the sign of a complete model) comes last.
    """
    if not model_dir.exists():
        os.rename(staging, model_dir)
        return
    if not model_dir.is_dir():
        raise NotADirectoryError(f"model directory {model_dir} exists and is not a folder")
    names = sorted(os.listdir(staging), key=lambda name: name == artifacts.METADATA_FILE)
    stale = model_dir / artifacts.METADATA_FILE
    stale.unlink(missing_ok=True)
    for name in names:
        target = model_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        _move_file(staging / name, target)


def _move_file(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``; across file systems (a mounted model folder), copy next to it, then rename."""
    try:
        os.replace(source, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        partial = target.with_name(f".{target.name}.partial")
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
