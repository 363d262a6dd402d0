"""Process trees from Linux's /proc: who a process's children are, what they run, how much memory they hold.

``serve`` reaps its own children with it; the serving tests and benchmark find gunicorn's workers
with it. Where /proc does not list children, the lists are empty.
"""
from __future__ import annotations

from pathlib import Path


def children(pid: int | str = "self") -> list[int]:
    """Pids of the direct children of ``pid`` (default: this process)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid``, children before their own children."""
    return [found for child in children(pid) for found in [child, *descendants(child)]]


def command_line(pid: int) -> str:
    """The process's command line with spaces between arguments; empty once it has gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_mib(pid: int) -> float | None:
    """Resident memory in MiB; None once the process has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return None if kib is None else kib / 1024.0
