"""Import Keras (and TensorFlow under it) without TensorFlow's start-up log lines, unless asked for.

TensorFlow's C++ side writes a dozen lines to the process's standard error while it loads and
compiles (oneDNN and CPU-feature notices, XLA service lines, and an error-level ``E0000 ... oneDNN
supports DT_INT64 only on platforms with AVX-512`` that is harmless). By default they are quietened
two ways: ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the environment already sets it) silences TensorFlow's
logging once it runs, and the import itself runs with file descriptor 2 pointed at a temporary file,
because the notices printed while the library loads ignore that setting. If the import fails, what
it wrote is printed before the exception goes on. ``show_logs`` (the commands' ``--tensorflow-logs``)
leaves both alone.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile

LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


def import_keras(show_logs: bool = False):
    """The ``keras`` module, imported quietly unless ``show_logs``."""
    if not show_logs:
        os.environ.setdefault(LOG_LEVEL_VARIABLE, "3")
    return quiet_import("keras", show_logs)


def load_tensorflow_quietly(show_logs: bool = False) -> None:
    """Import TensorFlow now, quietly unless ``show_logs``, where it is installed.

    Keras imports TensorFlow whatever its backend when it saves or loads a model, if TensorFlow is
    installed (its serialisation checks for TensorFlow's shape type); on JAX that import would print the
    start-up lines. Called before ``model.save`` and ``keras.saving.load_model``.
    """
    if importlib.util.find_spec("tensorflow") is not None:
        quiet_import("tensorflow", show_logs)


def quiet_import(name: str, show_logs: bool = False):
    """Import module ``name`` with what it writes to file descriptor 2 held back (shown if the import fails)."""
    if show_logs or name in sys.modules:
        return importlib.import_module(name)
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            return importlib.import_module(name)
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
