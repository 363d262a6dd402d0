"""The model server's settings, read from the environment SageMaker (or a developer) gives ``serve``.

=============================  =====================================  ==========================
variable                       meaning                                default
=============================  =====================================  ==========================
SAGEMAKER_BIND_TO_PORT         port nginx listens on                  8080
MODEL_SERVER_WORKERS           gunicorn worker processes              CPU cores available
MODEL_SERVER_TIMEOUT           seconds a request may take             60
MODEL_SERVER_GRACEFUL_TIMEOUT  seconds in-flight requests get to      25 (SageMaker sends SIGKILL
                               finish after SIGTERM                   30 s after SIGTERM)
OPT_ML_DIR                     stand-in for /opt/ml                   /opt/ml
SERVE_MODEL_DIR                the model directory itself             ``$OPT_ML_DIR/model``
SAGEMAKER_SERVERLESS           ``true`` on a serverless endpoint's    unset (6 MB bodies)
                               model: bodies above 4 MB get a 413
METRICS_SERVICE                ``Service`` dimension of the request   ``local``
                               metrics (inference/request_metrics.py)
SERVE_TOP_K                    how a JSON request's top k is found:   ``auto``
                               ``exact`` (score every item),
                               ``index`` (the model's search index),
                               ``auto`` (the index from 100,000
                               items, where the model has one)
=============================  =====================================  ==========================

``serve`` passes the resolved values on to gunicorn and the app, so every process sees the same
numbers (``/execution-parameters`` reports ``MODEL_SERVER_WORKERS`` as MaxConcurrentTransforms).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from inference.contracts import MAX_PAYLOAD_BYTES, SERVERLESS_MAX_PAYLOAD_BYTES
from inference.paths import MODEL_DIR_VARIABLE, opt_ml_dir
from inference.paths import model_dir as model_dir_from

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT_S = 60
DEFAULT_GRACEFUL_TIMEOUT_S = 25
PROXY_TIMEOUT_MARGIN_S = 10
TOP_K_VARIABLE = "SERVE_TOP_K"
TOP_K_SEARCHES = (
    "auto",
    "exact",
    "index",
)  # inference.engine.TOP_K_SEARCHES (the engine loads faiss, this module does not)
SERVERLESS_VARIABLE = (
    "SAGEMAKER_SERVERLESS"  # nginx waits this much longer than gunicorn, so gunicorn's timeout acts first
)


class SettingsError(ValueError):
    """An environment variable holds a value the server cannot use; the message names it."""


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        allowed = f"{low} to {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{name}={value} is out of range: it must be {allowed}")
    return value


def max_payload_bytes(environ: Mapping[str, str] = os.environ) -> int:
    """The largest request body the server takes: SageMaker's 6 MB, or 4 MB on a serverless endpoint
    (https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints-invoke.html)."""
    raw = environ.get(SERVERLESS_VARIABLE, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise SettingsError(f"{SERVERLESS_VARIABLE}={raw!r} must be true or false")
    return SERVERLESS_MAX_PAYLOAD_BYTES if raw == "true" else MAX_PAYLOAD_BYTES


def top_k_search(environ: Mapping[str, str] = os.environ) -> str:
    """``SERVE_TOP_K``: how single requests find their top k (``auto`` where unset)."""
    raw = environ.get(TOP_K_VARIABLE, "").strip().lower() or "auto"
    if raw not in TOP_K_SEARCHES:
        raise SettingsError(f"{TOP_K_VARIABLE}={raw!r} must be one of {', '.join(TOP_K_SEARCHES)}")
    return raw


@dataclass(frozen=True)
class ServerSettings:
    port: int
    workers: int
    timeout: int
    graceful_timeout: int
    opt_ml_dir: Path
    model_dir: Path
    payload_limit: int = MAX_PAYLOAD_BYTES
    top_k: str = "auto"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServerSettings:
        """Read and check every setting; :class:`SettingsError` names the first bad one."""
        return cls(
            port=_integer(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, 1, 65535),
            workers=_integer(environ, "MODEL_SERVER_WORKERS", available_cores(), 1),
            timeout=_integer(environ, "MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT_S, 1),
            graceful_timeout=_integer(environ, "MODEL_SERVER_GRACEFUL_TIMEOUT", DEFAULT_GRACEFUL_TIMEOUT_S, 1),
            opt_ml_dir=opt_ml_dir(environ).absolute(),
            payload_limit=max_payload_bytes(environ),
            model_dir=model_dir_from(environ).absolute(),
            top_k=top_k_search(environ),
        )

    @property
    def proxy_timeout(self) -> int:
        """How long nginx waits for gunicorn's answer: longer than gunicorn's own timeout."""
        return self.timeout + PROXY_TIMEOUT_MARGIN_S

    def as_env(self) -> dict[str, str]:
        """The resolved values as environment variables, for gunicorn and the app."""
        return {
            "SAGEMAKER_BIND_TO_PORT": str(self.port),
            "MODEL_SERVER_WORKERS": str(self.workers),
            "MODEL_SERVER_TIMEOUT": str(self.timeout),
            "MODEL_SERVER_GRACEFUL_TIMEOUT": str(self.graceful_timeout),
            "OPT_ML_DIR": str(self.opt_ml_dir),
            MODEL_DIR_VARIABLE: str(self.model_dir),
            TOP_K_VARIABLE: self.top_k,
        }
