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
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

BACKEND_VARIABLE = "KERAS_BACKEND"
BACKEND = "jax"
TUNABLES_VARIABLE = "GLIBC_TUNABLES"
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb"
HUGE_PAGES = f"{HUGE_PAGES_TUNABLE}=1"


CPUINFO = Path("/proc/cpuinfo")
SPEED_FLAGS = re.compile(r"avx512\w*|amx\w*|avx2|fma")
"""The CPU flags that decide the matrix products' speed: AVX2, FMA, every AVX-512 and AMX extension."""


class CpuDescription(NamedTuple):
    """What a CPU reports about itself; figures from CPUs that differ here are not comparable."""

    vendor: str
    family: str
    model: str
    name: str
    flags: tuple[str, ...]  # the :data:`SPEED_FLAGS` it has, sorted

    def __str__(self) -> str:
        flags = " ".join(self.flags) or "no AVX2/AVX-512/AMX"
        return f"{self.name} ({self.vendor}, family {self.family}, model {self.model}; {flags})"


def describe_cpu(cpuinfo: str) -> CpuDescription:
    """The first processor of ``cpuinfo`` (the text of Linux's ``/proc/cpuinfo``); fields it lacks are ``"?"``."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = sorted({flag for flag in fields.get("flags", "").split() if SPEED_FLAGS.fullmatch(flag)})
    return CpuDescription(fields.get("vendor_id", "?"), fields.get("cpu family", "?"), fields.get("model", "?"),
                          fields.get("model name", "?"), tuple(flags))


def this_cpu() -> CpuDescription:
    """:func:`describe_cpu` of this machine; all fields ``"?"`` where ``/proc/cpuinfo`` cannot be read."""
    try:
        return describe_cpu(CPUINFO.read_text())
    except OSError:
        return describe_cpu("")


BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
"""CPU flags of bfloat16 dot-product instructions: with one of them, bfloat16 products run at twice float32's rate."""


BFLOAT16_MIN_UNITS = 256
"""``auto`` takes bfloat16 products for a model whose widest GRU layer has at least this many units.

Measured on a Zen 4 CPU (``benchmarks/train_speed.py --compare``): a step of the diginetica preset (512 units)
0.83x float32's time, of yoochoose (480) 0.91x, of rsc15 (100) 1.27x: below some width the copies and
conversions around each product cost more than its bfloat16 rate saves."""


def matmul_dtype(precision: str, cpu: CpuDescription, units: int = BFLOAT16_MIN_UNITS) -> str:
    """The dtype of the training step's matrix products for ``precision`` (``float32``, ``bfloat16`` or ``auto``) on
    ``cpu``, for a model whose widest GRU layer has ``units`` units."""
    if precision == "auto":
        has_bfloat16 = any(flag in cpu.flags for flag in BFLOAT16_FLAGS)
        return "bfloat16" if has_bfloat16 and units >= BFLOAT16_MIN_UNITS else "float32"
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"matmul_precision must be float32, bfloat16 or auto, got {precision!r}")
    return precision


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
