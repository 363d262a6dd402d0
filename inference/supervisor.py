"""The container's ``serve`` command: nginx in front of gunicorn, started together and stopped together.

nginx listens on ``SAGEMAKER_BIND_TO_PORT`` and passes the three routes on to gunicorn over a unix
socket in a run directory of this server's own (a new temporary directory each time, so servers can
run side by side); gunicorn runs ``inference.wsgi:app`` in sync workers that each load the model
after the fork. Settings come from the environment (see :mod:`inference.server_settings`); on a
developer machine two flags replace the two a user most often sets::

    inference/serve --model-dir DIR [--port N]      # --help says the same

The run directory (mode 0700) and the socket in it (no group or other bits) belong to the user ``serve`` runs as, and
nginx's workers run as that user too: no other local user can reach gunicorn and so go around
nginx's limits. The run directory is made under ``$TMPDIR`` where that is set (an unusable one is an
error, not a silent fallback), else in the system's temporary directory.

Stopping, and the exit code:

- SIGTERM or SIGINT drains: nginx gets SIGQUIT (it closes the port at once and lets every request it
  has accepted finish), and once nginx has exited gunicorn gets SIGTERM (its workers finish what they
  are doing). Stopping gunicorn only after nginx matters: gunicorn closes its socket when it stops,
  and requests still queued on it would be lost. Exit code 0.
- A second SIGTERM/SIGINT, or a drain that outlasts ``MODEL_SERVER_GRACEFUL_TIMEOUT`` by 5 s, stops
  both at once (nginx SIGTERM, gunicorn SIGQUIT); whatever still runs 5 s later is killed.
- If nginx or gunicorn exits on its own, the other is stopped the same way and the exit code is 1.
- A setting that cannot work (bad environment value, no nginx, no model directory, no usable
  temporary directory) is reported on stderr before anything starts; exit code 2.

``serve`` makes itself the reaper of its descendants (Linux), so worker processes orphaned by a
crashed nginx or gunicorn master come back to it and are ended before it exits.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from inference import nginx_config, processes
from inference.paths import MODEL_DIR_VARIABLE
from inference.server_settings import ServerSettings, SettingsError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONFIG = Path(__file__).with_name("gunicorn.conf.py")
WSGI_APP = "inference.wsgi:app"
SOCKET_NAME = "gunicorn.sock"
UNIX_SOCKET_PATH_MAX = 107  # bytes in sockaddr_un.sun_path, less the terminating NUL
STOP_MARGIN_S = 5  # a drain may take the graceful timeout plus this before it is forced
KILL_AFTER_S = 5  # a forced stop may take this long before SIGKILL
POLL_S = 0.5  # how often deadlines are checked while nothing happens

EXIT_STOPPED, EXIT_CHILD_FAILED, EXIT_BAD_SETUP = 0, 1, 2
PR_SET_CHILD_SUBREAPER = 36


class SetupError(RuntimeError):
    """Something the server needs before it can start is missing; the message says what."""


def log(message: str) -> None:
    print(f"serve: {message}", flush=True)


def describe_exit(code: int) -> str:
    """An exit code as ``os.waitstatus_to_exitcode`` gives it, in words."""
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class Child:
    """One process ``serve`` started and reaps itself (``os.waitpid(-1)``, not ``Popen.wait``)."""

    def __init__(self, name: str, argv: list[str], **popen_args):
        self.name = name
        self.process = subprocess.Popen(argv, **popen_args)
        self.pid = self.process.pid
        self.exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.exit_code is None

    def exited(self, code: int) -> None:
        self.exit_code = code
        self.process.returncode = code  # reaped here: keep Popen from waiting for it again

    def send(self, signum: int) -> None:
        if self.running:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:  # exited a moment ago, not reaped yet
                pass


def become_subreaper() -> None:
    """Have orphaned descendants reparented to this process (Linux); elsewhere nothing happens."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Supervisor:
    """Runs gunicorn and nginx until a stop signal or until one of them exits; see the module docstring."""

    def __init__(self, settings: ServerSettings, gunicorn_argv: list[str], gunicorn_env: dict[str, str],
                 nginx_argv: list[str]):
        self.settings = settings
        self.gunicorn_argv, self.gunicorn_env, self.nginx_argv = gunicorn_argv, gunicorn_env, nginx_argv
        self.stop_signals: list[int] = []
        self.stopping = self.forced = self.gunicorn_told = False
        self.failed: Child | None = None  # the server that exited on its own
        self.deadline = float("inf")

    def run(self) -> int:
        wakeup = self._install_signal_handlers()
        become_subreaper()
        self.gunicorn = Child("gunicorn", self.gunicorn_argv, env=self.gunicorn_env, cwd=PACKAGE_ROOT)
        try:
            self.nginx = Child("nginx", self.nginx_argv)
        except OSError:
            self.gunicorn.send(signal.SIGQUIT)
            raise
        self._announce()
        while self.gunicorn.running or self.nginx.running:
            select.select([wakeup], [], [], POLL_S)
            self._drain_pipe(wakeup)
            self._reap()
            self._act()
        self._end_orphans()
        if self.failed is None:
            log("stopped")
            return EXIT_STOPPED
        log(f"stopped because {self.failed.name} exited on its own: exit code {EXIT_CHILD_FAILED}")
        return EXIT_CHILD_FAILED

    def _install_signal_handlers(self) -> int:
        """Stop signals are counted; SIGCHLD only wakes the loop. Returns the wake-up pipe's read end."""
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: self.stop_signals.append(number))
        signal.signal(signal.SIGCHLD, lambda _number, _frame: None)
        return read_end

    @staticmethod
    def _drain_pipe(read_end: int) -> None:
        try:
            while os.read(read_end, 512):
                pass
        except BlockingIOError:
            pass

    def _announce(self) -> None:
        settings = self.settings
        log(f"nginx {self.nginx_argv[0]} (pid {self.nginx.pid}) listening on port {settings.port}")
        log(f"gunicorn (pid {self.gunicorn.pid}) with {settings.workers} sync workers, timeout {settings.timeout} s, "
            f"graceful stop {settings.graceful_timeout} s, on unix:{self.gunicorn_env['MODEL_SERVER_SOCKET']}")
        log(f"model directory {settings.model_dir}")

    def _reap(self) -> None:
        """Collect every exited child: the two servers, and orphans handed to this process."""
        children = {child.pid: child for child in (self.gunicorn, self.nginx)}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in children:
                children[pid].exited(os.waitstatus_to_exitcode(status))

    def _act(self) -> None:
        now = time.monotonic()
        if not self.stopping:
            if self.stop_signals:
                log(f"{signal.Signals(self.stop_signals[0]).name} received: draining (nginx stops taking "
                    f"requests, in-flight ones finish)")
                self._begin_stop(now)
            else:
                self._stop_if_one_exited(now)
        elif not self.forced and (len(self.stop_signals) > 1 or now > self.deadline):
            log("stopping nginx and gunicorn at once" + (" (drain timed out)" if now > self.deadline else ""))
            self._force_stop(now)
        elif self.forced and now > self.deadline:
            log("killing what is left")
            self.nginx.send(signal.SIGKILL)
            self.gunicorn.send(signal.SIGKILL)
            self.deadline = float("inf")
        if self.stopping and not self.nginx.running and not self.gunicorn_told:
            self.gunicorn_told = True
            if self.gunicorn.running:
                if self.failed is not self.nginx:
                    log(f"nginx stopped ({describe_exit(self.nginx.exit_code)}); stopping gunicorn")
                self.gunicorn.send(signal.SIGTERM)

    def _stop_if_one_exited(self, now: float) -> None:
        for child, other in ((self.nginx, self.gunicorn), (self.gunicorn, self.nginx)):
            if not child.running:
                log(f"{child.name} exited on its own ({describe_exit(child.exit_code)}); stopping {other.name}")
                self.failed = child
                self._begin_stop(now)
                return

    def _begin_stop(self, now: float) -> None:
        self.stopping = True
        self.deadline = now + self.settings.graceful_timeout + STOP_MARGIN_S
        self.nginx.send(signal.SIGQUIT)

    def _force_stop(self, now: float) -> None:
        self.forced = True
        self.deadline = now + KILL_AFTER_S
        self.nginx.send(signal.SIGTERM)
        self.gunicorn.send(signal.SIGQUIT)
        self.gunicorn_told = True

    def _end_orphans(self) -> None:
        """Kill and reap processes orphaned into this one (e.g. nginx workers whose master was killed)."""
        for pid in processes.children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            log(f"ended orphaned process {pid}")
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                return


def check_model_dir(settings: ServerSettings) -> None:
    if not settings.model_dir.is_dir():
        raise SetupError(f"model directory {settings.model_dir} does not exist (SageMaker unpacks model.tar.gz "
                         f"there; on another machine give serve --model-dir DIR)")


def _port(text: str) -> str:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number from 1 to 65535")
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="serve", description="The model server: nginx in front of gunicorn, answering /ping and /invocations.",
        epilog="Other settings come from the environment: MODEL_SERVER_WORKERS, MODEL_SERVER_TIMEOUT, "
               "MODEL_SERVER_GRACEFUL_TIMEOUT, SAGEMAKER_SERVERLESS (see inference/server_settings.py).")
    parser.add_argument("--model-dir", type=Path,
                        help="the model directory to serve (default: $OPT_ML_DIR/model, /opt/ml/model in SageMaker)")
    parser.add_argument("--port", type=_port, help="the port to listen on (default: $SAGEMAKER_BIND_TO_PORT or 8080)")
    return parser.parse_args(argv)


def environment(args: argparse.Namespace) -> dict[str, str]:
    """This process's environment with the flags given put in place of the variables they replace."""
    environ = dict(os.environ)
    if args.model_dir is not None:
        environ[MODEL_DIR_VARIABLE] = str(args.model_dir.absolute())
    if args.port is not None:
        environ["SAGEMAKER_BIND_TO_PORT"] = args.port
    return environ


def socket_path(run_dir: Path) -> Path:
    path = run_dir / SOCKET_NAME
    if len(os.fsencode(path)) > UNIX_SOCKET_PATH_MAX:
        raise SetupError(f"unix socket path {path} is too long: set TMPDIR to a shorter directory")
    return path


# one worker per core: each worker's NumPy (OpenBLAS) and OpenMP code runs on one thread unless told otherwise
WORKER_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


def serve(settings: ServerSettings, nginx_binary: Path, run_dir: Path) -> int:
    """Write this run's nginx config into ``run_dir`` and supervise both servers until they stop."""
    socket = socket_path(run_dir)
    config = nginx_config.write_config(run_dir, port=settings.port, socket=socket,
                                       proxy_timeout=settings.proxy_timeout,
                                       shutdown_timeout=settings.graceful_timeout,
                                       payload_limit=settings.payload_limit)
    gunicorn_argv = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG), WSGI_APP]
    gunicorn_env = {**WORKER_THREADS, **os.environ, **settings.as_env(), "MODEL_SERVER_SOCKET": str(socket),
                    "PYTHONUNBUFFERED": "1"}
    return Supervisor(settings, gunicorn_argv, gunicorn_env, nginx_config.command(nginx_binary, config)).run()


def make_run_dir() -> Path:
    """A new private directory (mode 0700) for this run: under ``$TMPDIR`` when set, else the system's."""
    chosen = os.environ.get("TMPDIR") or None
    try:
        return Path(tempfile.mkdtemp(prefix="serve-", dir=chosen))
    except OSError as error:  # FileNotFoundError from tempfile when no candidate directory is usable
        where = f"TMPDIR={chosen}" if chosen else "the system's temporary directories"
        reason = error.strerror or str(error)
        raise SetupError(f"cannot make the run directory in {where}: {reason}; "
                         f"set TMPDIR to a writable directory") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        settings = ServerSettings.from_env(environment(args))
        nginx_binary = nginx_config.find_nginx()
        check_model_dir(settings)
        run_dir = make_run_dir()
    except (SettingsError, nginx_config.NginxNotFound, SetupError) as error:
        print(f"serve: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_SETUP
    try:
        return serve(settings, nginx_binary, run_dir)
    except SetupError as error:
        print(f"serve: {error}", file=sys.stderr, flush=True)
        return EXIT_BAD_SETUP
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
