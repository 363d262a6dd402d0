"""A training run's data window: the day folders ``dt=YYYY-MM-DD/`` of an event folder that it reads.

Events land in one folder per day (``training/events/dt=2026-11-30/part-0.tsv.gz``, any format and
compression :mod:`model_code.data.events` reads). A run names its window by its first and last day, both
included; :func:`link_window` gathers the event files of those days into one flat folder of links,
which the reader then takes like any folder. Days outside the window are never opened (on a
SageMaker FastFile channel they are never downloaded either), a day of the window with no folder or
no event file is reported, and a window with no event file at all is a :class:`DataError`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from model_code.data.events import DataError, is_event_file

DAY_FOLDER_PREFIX = "dt="
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_day(text: str, field: str) -> date:
    """A ``YYYY-MM-DD`` day; anything else raises DataError naming ``field``."""
    value = str(text).strip()
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise DataError(f"{field}: cannot use {text!r}; allowed: a day as YYYY-MM-DD") from None


def day_folder(day: date) -> str:
    """The folder name of one day: ``dt=2026-11-30``."""
    return f"{DAY_FOLDER_PREFIX}{day.isoformat()}"


@dataclass(frozen=True)
class Window:
    """The days ``first`` to ``last``, both included."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise DataError(f"window_start {self.first} is after window_end {self.last}")

    @classmethod
    def parse(cls, first: str, last: str) -> Window:
        return cls(parse_day(first, "window_start"), parse_day(last, "window_end"))

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    def __str__(self) -> str:
        return f"{self.first} to {self.last} ({len(self.days)} days)"


@dataclass(frozen=True)
class WindowFiles:
    """What :func:`link_window` gathered: the linked folder, the files per day and the days without files."""

    folder: Path
    files: dict[date, list[Path]]
    empty_days: list[date]

    def summary(self, window: Window) -> str:
        """One log line: the window, how many files it read, which of its days had none."""
        count = sum(len(files) for files in self.files.values())
        text = f"data window {window}: {count} event files from {len(self.files)} days"
        if self.empty_days:
            text += "; no event files for " + ", ".join(str(day) for day in self.empty_days)
        return text


def window_files(root: Path, window: Window) -> dict[date, list[Path]]:
    """The event files of each day of ``window`` that has any, from ``root/dt=YYYY-MM-DD/`` (not recursive)."""
    found = {}
    for day in window.days:
        folder = root / day_folder(day)
        if not folder.is_dir():
            continue
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and not p.name.startswith(".") and is_event_file(p.name))
        if files:
            found[day] = files
    return found


def link_window(root: Path, window: Window, target: Path) -> WindowFiles:
    """Link the window's event files into ``target`` (created), named ``dt=YYYY-MM-DD_<file name>``.

    The day in the name keeps files of different days apart and shows in the reader's bad-row report.
    """
    found = window_files(root, window)
    if not found:
        present = (
            sorted(p.name for p in root.iterdir() if p.name.startswith(DAY_FOLDER_PREFIX)) if root.is_dir() else []
        )
        seen = f"the day folders there run from {present[0]} to {present[-1]}" if present else "it holds no day folders"
        raise DataError(f"{root}: no event files for the data window {window} ({DAY_FOLDER_PREFIX}YYYY-MM-DD "
                        f"folders); {seen}")
    target.mkdir(parents=True, exist_ok=True)
    for day, files in found.items():
        for path in files:
            (target / f"{day_folder(day)}_{path.name}").symlink_to(path.resolve())
    return WindowFiles(folder=target, files=found, empty_days=[day for day in window.days if day not in found])
