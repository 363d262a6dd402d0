"""gunicorn settings for the model server, read from the environment ``inference/serve`` prepares.

Sync workers: scoring is CPU-bound (ONNX Runtime and NumPy), so one request at a time per process
uses the cores without threads competing for the GIL; nginx in front buffers whole requests and
responses, so a slow client never holds a worker; one request per worker matches
MaxConcurrentTransforms = workers for Batch Transform; and gunicorn's timeout really ends a request
that hangs (the master replaces the worker), which it cannot do for a thread. The model is not
preloaded: each worker loads it after the fork, so no ONNX Runtime session is shared across a fork,
and does so as it starts (:func:`post_worker_init`), so no request waits for a model load. The
model's large files (the output layer, the scorer's weights, the search index) are memory-mapped, so
the workers still share one copy of them in the page cache.
"""
import os
import wsgiref.util

from inference import gunicorn_errors
from inference.request_metrics import LOGGER_NAME as METRICS_LOGGER
from inference.server_settings import ServerSettings

gunicorn_errors.install()  # gunicorn's own 400s (an invalid header) in JSON, like every other answer

_settings = ServerSettings.from_env()
_socket = os.environ.get("MODEL_SERVER_SOCKET")
if not _socket:
    raise RuntimeError(
        "MODEL_SERVER_SOCKET (the unix socket to bind) is not set: start the server with inference/serve"
    )

bind = [f"unix:{_socket}"]
umask = 0o077  # the socket is its owner's alone: nginx's workers run as the same user (inference/nginx.conf)
workers = _settings.workers
worker_class = "sync"
timeout = _settings.timeout
graceful_timeout = _settings.graceful_timeout
preload_app = False
control_socket_disable = (
    True  # gunicorn's control socket lives at one fixed path per user: servers side by side would collide
)
# the heartbeat file each worker touches: in memory where the container has /dev/shm
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

# gunicorn's and the app's messages to stdout, one format; requests are logged once, by nginx; the
# per-request metrics line goes to stdout as it is, a JSON object that CloudWatch Logs reads as EMF
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"},
                   "bare": {"format": "%(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
                 "metrics": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "bare"}},
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        METRICS_LOGGER: {"level": "INFO", "handlers": ["metrics"], "propagate": False},
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
    },
}


def post_worker_init(worker) -> None:
    """Before the worker takes requests, call the app's own /ping once: it loads and warms up the model."""
    environ: dict = {}
    wsgiref.util.setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="GET", PATH_INFO="/ping")
    statuses: list[str] = []
    body = worker.wsgi(environ, lambda status, headers, exc_info=None: statuses.append(status))
    if hasattr(body, "close"):
        body.close()
    worker.log.info("worker %s warmed up before taking requests: /ping %s", worker.pid, statuses[0])
