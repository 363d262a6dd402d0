"""Run the images ``make image`` builds (gru4rec:serve, gru4rec:train) as SageMaker runs them, without Docker.

buildah (root, ``--isolation chroot``, the vfs store ``make image`` fills) makes a working container from
an image and runs a command in it, with the image's environment and working directory. What SageMaker
provides comes in as it does there: the model directory mounted at ``/opt/ml/model``, a training job's
``/opt/ml`` mounted whole. ``buildah run`` does not pass signals on, so stopping a server signals the
container's main process (``serve``) itself, as ``docker stop`` does.

``ImageServer(..., isolated=True)`` runs the container in a network namespace of its own holding only a
loopback interface (``unshare --net``), SageMaker's network isolation, and talks to it over that
namespace's loopback (``nsenter --net``); the server then listens on SageMaker's default port 8080.
Requests go through ``curl`` in both modes, so the two runs are compared the same way.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from inference.local import free_port  # noqa: E402
from inference.processes import command_line, descendants  # noqa: E402

SERVE_IMAGE = "localhost/gru4rec:serve"
TRAIN_IMAGE = "localhost/gru4rec:train"
BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
BUILDAH_ENV = {"STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}
SAGEMAKER_PORT = 8080
# the container's main process: the image's `serve` script as its shebang (`/usr/bin/env python3`) runs it
SERVE_COMMAND_LINE = "python3 /opt/program/inference/serve"
TOOLS = ("buildah", "unshare", "nsenter", "ip", "curl")


class ContainerError(RuntimeError):
    """A container did not start, answer or stop as it should; the message says what and shows its log."""


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``buildah ARGS`` with the vfs store and chroot isolation; raise with its stderr if it fails."""
    done = subprocess.run(["buildah", *args], env=dict(os.environ, **BUILDAH_ENV), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ContainerError(f"buildah {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def unavailable_reason() -> str | None:
    """Why this machine cannot run the images (missing tool, not root, no mount namespace), or None."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"{', '.join(missing)} not found: `make image` installs buildah; "
                "the others come with util-linux, iproute2, curl")
    if os.geteuid() != 0:
        return "buildah runs the images here only as root (chroot isolation, vfs store)"
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this machine allows no mount/network namespace (unshare: {probe.stderr.strip()})"
    return None


def image_exists(image: str) -> bool:
    return buildah("inspect", "--type", "image", image, check=False).returncode == 0


def image_size(image: str) -> str:
    """The image's size as ``buildah images`` reports it, e.g. ``452 MB``."""
    return buildah("images", "--noheading", "--format", "{{.Size}}", image).stdout.strip()


@contextmanager
def working_container(image: str):
    """A new working container of ``image`` (from the local store only), removed afterwards: its name."""
    name = buildah("from", "--pull=never", "--quiet", image).stdout.strip()
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


def run_command(image: str, argv: list[str], volumes: dict[Path, str] | None = None,
                timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``argv`` in a fresh container of ``image`` with host folders mounted ({host: container path})."""
    with working_container(image) as name:
        mounts = [arg for host, inside in (volumes or {}).items() for arg in ("--volume", f"{host}:{inside}")]
        return subprocess.run(["buildah", "run", *mounts, name, "--", *argv], env=dict(os.environ, **BUILDAH_ENV),
                              capture_output=True, text=True, timeout=timeout)


class ImageServer:
    """``serve`` in a container of the serve image, as SageMaker starts it; stopped with SIGTERM on exit.

    ``cold_start_s``: from creating the container to the first ``/ping`` 200. ``exit_code``: ``serve``'s,
    as ``buildah run`` reports it, once stopped. ``log``: what the container printed.
    """

    def __init__(self, model_dir: str | os.PathLike, image: str = SERVE_IMAGE, isolated: bool = False,
                 workers: int | None = None, log_path: str | os.PathLike | None = None, timeout: float = 240.0):
        self.model_dir = Path(model_dir).resolve()
        self.image = image
        self.isolated = isolated
        self.workers = workers
        self.timeout = timeout
        self.port = SAGEMAKER_PORT if isolated else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else None
        self.process: subprocess.Popen | None = None
        self.cold_start_s: float | None = None
        self.exit_code: int | None = None
        self._container: str | None = None
        self._log = None

    # -- starting and stopping ---------------------------------------------------------------------------

    def __enter__(self) -> ImageServer:
        started = time.monotonic()
        self._container = buildah("from", "--pull=never", "--quiet", self.image).stdout.strip()
        try:
            self.process = subprocess.Popen(self._command(), env=dict(os.environ, **BUILDAH_ENV),
                                            stdout=self._open_log(), stderr=subprocess.STDOUT, start_new_session=True)
            self._wait_for_ping()
            self.cold_start_s = time.monotonic() - started
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.process is not None:
                self.exit_code = self._stop()
        finally:
            if self._log is not None:
                self._log.close()
            buildah("rm", self._container, check=False)

    def _command(self) -> list[str]:
        env = [] if self.isolated else ["--env", f"SAGEMAKER_BIND_TO_PORT={self.port}"]
        if self.workers:
            env += ["--env", f"MODEL_SERVER_WORKERS={self.workers}"]
        run = ["buildah", "run", *env, "--volume", f"{self.model_dir}:/opt/ml/model:ro", self._container, "--", "serve"]
        if not self.isolated:
            return run
        # a network namespace of its own: only `lo`, brought up, then buildah runs the container inside it
        return ["unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *run]

    def _open_log(self):
        if self.log_path is None:
            return subprocess.DEVNULL
        self._log = open(self.log_path, "ab")
        return self._log

    def _wait_for_ping(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ContainerError(f"the container exited with {self.process.returncode} before answering /ping"
                                     f"{self._log_tail()}")
            if self._in_own_namespace_yet() and self.request("GET", "/ping", timeout=2)[0] == 200:
                return
            time.sleep(0.1)
        raise ContainerError(f"{self.image}: /ping did not answer 200 within {self.timeout:.0f} s{self._log_tail()}")

    def _in_own_namespace_yet(self) -> bool:
        """Not isolated, or unshare has already moved the process into its new network namespace."""
        return not self.isolated or self.network_namespace() != os.readlink("/proc/self/ns/net")

    def _stop(self, timeout: float = 60.0) -> int:
        """SIGTERM to ``serve`` in the container (its drain), then ``buildah run``'s exit code: serve's."""
        serve = [pid for pid in descendants(self.process.pid) if command_line(pid).strip() == SERVE_COMMAND_LINE]
        if serve:
            os.kill(serve[0], signal.SIGTERM)
        elif self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise ContainerError(f"no `{SERVE_COMMAND_LINE}` process in the container to stop{self._log_tail()}")
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise ContainerError(f"serve did not stop within {timeout:.0f} s of SIGTERM{self._log_tail()}") from None

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n--- container log (end) ---\n" + self.log_path.read_text(errors="replace")[-3000:]

    # -- talking to it -------------------------------------------------------------------------------------

    def network_namespace(self) -> str:
        """The server's network namespace (e.g. ``net:[4026532177]``)."""
        return os.readlink(f"/proc/{self.process.pid}/ns/net")

    def interfaces(self) -> list[str]:
        """The network interfaces the server can see (its namespace's /proc/net/dev)."""
        lines = Path(f"/proc/{self.process.pid}/net/dev").read_text().splitlines()[2:]
        return sorted(line.split(":", 1)[0].strip() for line in lines)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
                accept: str | None = None, timeout: float = 60) -> tuple[int, bytes]:
        """(HTTP status, body) of one request through curl, inside the server's namespace when isolated;
        status 0 when nothing answered."""
        command = ["curl", "--silent", "--max-time", str(timeout), "--request", method, "--output", "-",
                   "--write-out", "\n%{http_code}"]
        if content_type:
            command += ["--header", f"Content-Type: {content_type}"]
        if accept:
            command += ["--header", f"Accept: {accept}"]
        if body is not None:
            command += ["--data-binary", "@-"]
        if self.isolated:
            command = ["nsenter", f"--net=/proc/{self.process.pid}/ns/net", *command]
        done = subprocess.run([*command, f"{self.url}{path}"], input=body or b"", capture_output=True)
        answer, _, status = done.stdout.rpartition(b"\n")
        return int(status or 0), answer
