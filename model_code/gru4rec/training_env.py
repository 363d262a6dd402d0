"""The training process's environment: Keras on JAX, glibc's large allocations on huge pages.

Both settings are read once, when the process starts, so neither can be changed from inside it:
Keras picks its backend (``KERAS_BACKEND``) when it is first imported, and glibc reads
``GLIBC_TUNABLES`` before any Python runs (https://www.gnu.org/software/libc/manual/html_node/Tunables.html:
a colon-separated list of ``name=value``, read at program start). The commands that train or
evaluate (``python -m model_code.commands.train``, ``python -m model_code.commands.evaluate``, the container's
``train``) call :func:`use_training_environment` before anything imports Keras: where the environment
lacks either setting, the process replaces itself (``os.execve``: same process id, same command line)
with one that has them. A ``glibc.malloc.hugetlb`` value the caller set is kept, other tunables too.

``glibc.malloc.hugetlb=1``: malloc asks for transparent huge pages (``madvise``) for its large
allocations; the training steps gather and scatter rows all over the item tables, and fewer TLB
misses make that faster (README, "Training speed on a CPU").
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

BACKEND_VARIABLE = "KERAS_BACKEND"
BACKEND = "jax"
TUNABLES_VARIABLE = "GLIBC_TUNABLES"
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
HUGE_PAGES = f"{HUGE_PAGES_TUNABLE}=1"


def training_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with Keras on JAX and, unless ``environ`` already sets that tunable, huge pages."""
    env = dict(environ)
    env[BACKEND_VARIABLE] = BACKEND
    tunables = [entry for entry in env.get(TUNABLES_VARIABLE, "").split(":") if entry]
    if not any(entry.partition("=")[0] == HUGE_PAGES_TUNABLE for entry in tunables):
        env[TUNABLES_VARIABLE] = ":".join([*tunables, HUGE_PAGES])
    return env


def use_training_environment() -> None:
    """Re-execute this process's command line with :func:`training_environment`, unless it already has it.

    Call it first in a command's ``__main__`` block, before Keras is imported; after the re-execution
    the environment matches and the call returns.
    """
    env = training_environment(os.environ)
    if env == dict(os.environ):
        return
    if "keras" in sys.modules:
        raise RuntimeError("use_training_environment() must run before Keras is imported")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def startup_variable(name: str) -> str | None:
    """The value ``name`` had when this process started (what glibc read), not what Python set since.

    Linux keeps the process's initial environment in ``/proc/self/environ``; elsewhere the current
    ``os.environ`` value is the best answer.
    """
    try:
        entries = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return os.environ.get(name)
    prefix = f"{name}=".encode()
    return next((entry[len(prefix):].decode(errors="replace") for entry in entries if entry.startswith(prefix)), None)
