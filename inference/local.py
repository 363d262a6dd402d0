"""Run the container's ``serve`` on this machine against a model directory, as SageMaker would run it.

A temporary directory stands in for ``/opt/ml`` (``OPT_ML_DIR``) with ``model`` linked to the model
directory; ``serve`` listens on a free localhost port. Used by the demo and the serving benchmark::

    with LocalServer(model_dir) as server:
        requests.post(f"{server.url}/invocations", json={"items": ["a", "b"]})
    print(server.exit_code)   # 0 after a clean SIGTERM shutdown
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SERVE = Path(__file__).resolve().parent / "serve"
PORT_ATTEMPTS = 3


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_taken(port: int) -> bool:
    """Whether something else now holds TCP ``port`` on 127.0.0.1."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def wait_for_ping(url: str, process: subprocess.Popen, timeout: float = 180.0, poll_seconds: float = 0.3) -> None:
    """Poll ``url/ping`` every ``poll_seconds`` until it answers 200; fail early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before answering /ping")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(poll_seconds)
    raise RuntimeError(f"{url}/ping did not answer 200 within {timeout:.0f} s")


def stop(process: subprocess.Popen, timeout: float = 30.0) -> int:
    """SIGTERM the process (graceful drain), SIGKILL its group if it does not exit in time; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


class LocalServer:
    """``inference/serve`` on a free port over a temporary ``/opt/ml``; stops with SIGTERM on exit."""

    def __init__(self, model_dir: str | os.PathLike, workers: int | None = None, log=None,
                 ping_poll_seconds: float = 0.3):
        self.model_dir = Path(model_dir).resolve()
        self.workers = workers
        self.ping_poll_seconds = ping_poll_seconds
        self.log = log if log is not None else subprocess.DEVNULL
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self._opt_ml: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> LocalServer:
        self._opt_ml = tempfile.TemporaryDirectory(prefix="opt_ml_")
        (Path(self._opt_ml.name) / "model").symlink_to(self.model_dir)
        for attempt in range(PORT_ATTEMPTS):
            self.process = self._start()
            try:
                wait_for_ping(self.url, self.process, poll_seconds=self.ping_poll_seconds)
                return self
            except BaseException as error:
                retry = (isinstance(error, RuntimeError) and attempt + 1 < PORT_ATTEMPTS
                         and self.process.poll() is not None and port_taken(self.port))
                if not retry:
                    self.__exit__(None, None, None)
                    raise
            # another program took the free port between our look and nginx's bind: take another one
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"

    def _start(self) -> subprocess.Popen:
        # this interpreter's bin folder first, so serve's `python3` and `gunicorn` are this environment's
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        env = dict(os.environ, PATH=path, OPT_ML_DIR=self._opt_ml.name, SAGEMAKER_BIND_TO_PORT=str(self.port))
        if self.workers:
            env["MODEL_SERVER_WORKERS"] = str(self.workers)
        return subprocess.Popen([str(SERVE)], env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def __exit__(self, *exc) -> None:
        self.exit_code = stop(self.process)
        self._opt_ml.cleanup()
