"""What a training run reads: the training events, the validation sessions set apart from them (or read), the
item index built from the training sessions left, and the test events; with the figures metadata.json keeps.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from model_code.data.event_rules import ITEM, ReadOptions
from model_code.data.event_table import read_event_codes, read_events
from model_code.data.events import DataError
from model_code.data.item_index import ItemIndex
from model_code.data.read_summary import read_notes, time_span
from model_code.data.session_batches import SessionArrays


@dataclass
class TrainingData:
    """A run's sessions as the model sees them, the item index built from the training ones, and their figures.

    ``valid_events`` (a frame) are the validation events as read, for scoring a champion on the same sessions.
    """

    index: ItemIndex
    train: SessionArrays
    test: SessionArrays | None
    valid: SessionArrays | None
    stats: dict
    valid_events: object = None



def load_training_data(train_path: str, *, valid_path: str | None, valid_days: float | None, test_path: str | None,
                       read: ReadOptions, log: Callable[[str], None]) -> TrainingData:
    """Read the training events, set the validation sessions apart (``valid_days`` or ``valid_path``), build the
    item index from what is left, and read the test events; one log line summarises what was read."""
    started = time.perf_counter()
    train_events = read_event_codes(train_path, read, log)
    read_stats = _read_stats(train_events)
    span, notes = time_span(train_events.times), read_notes(train_events)
    train_events, valid_events, valid_source = _validation_split(
        train_events, span, train_path, valid_path, valid_days, read, log
    )
    index = ItemIndex.from_codes(train_events)
    train = SessionArrays.from_codes(train_events, index)
    del train_events
    if train.n_examples == 0:
        raise DataError(f"{train_path}: no session has two or more events: nothing to train on")
    stats = {"train": {"source": str(train_path), "items": len(index), **read_stats, **train.stats()}}
    summary = [f"train: {train.n_events} events, {train.sessions_summary()}, {len(index)} items, "
               + ", ".join([span, *notes])]
    valid = None
    if valid_events is not None:
        valid = _held_out(valid_events, index, valid_source, "validation", stats, summary)
        stats["validation"]["unknown_items"] = _unknown_items(valid_events, index)
        summary[-1] += f", {stats['validation']['unknown_items']} items seen only there (unknown to the model)"
    test = None
    if test_path:
        test_events = read_events(test_path, read, log)
        test = _held_out(test_events, index, str(test_path), "test", stats, summary)
        stats["test"].update(_read_stats(test_events))
    log("; ".join(summary) + f"; read in {time.perf_counter() - started:.1f} s")
    return TrainingData(index, train, test, valid, stats, valid_events)


def _read_stats(events) -> dict:
    """What reading the file skipped and changed, as metadata.json records it."""
    keys = ("rows_read", "skipped_rows", "other_kinds", "sessions_split", "repeats_collapsed")
    return {key: events.attrs[key] for key in keys}


def _validation_split(train_events, span: str, train_path: str, valid_path: str | None, valid_days: float | None,
                      read: ReadOptions, log: Callable[[str], None]):
    """(training events as codes, validation events as a frame or None, where the validation events come from)."""
    if valid_days is not None:
        from model_code.data.preprocess import split_codes_by_time

        source = f"the last {valid_days:g} days of {train_path}"
        train_events, valid_events = split_codes_by_time(train_events, valid_days)
        if not len(train_events) or not len(valid_events):
            raise DataError(f"--valid-days {valid_days:g}: {source} leave "
                            f"{'no training' if not len(train_events) else 'no validation'} session ({span} "
                            f"read with --time-format {read.time_format})")
        return train_events, valid_events.to_frame(), source
    if valid_path:
        return train_events, read_events(valid_path, read, log), str(valid_path)
    return train_events, None, None


def _held_out(events, index: ItemIndex, source: str, name: str, stats: dict, summary: list[str]) -> SessionArrays:
    """Validation or test events as sessions of known items; their figures go into ``stats`` and ``summary``."""
    data = SessionArrays.from_events(events, index)
    if data.n_examples == 0:
        raise DataError(f"{source}: no {name} session has two events with items known to training")
    stats[name] = {"source": source, **data.stats()}
    summary.append(f"{name}: {data.n_events} events, {data.sessions_summary()}, {data.n_examples} next-item cases, "
                   f"{data.dropped_unknown} events with items unknown to training dropped")
    return data


def _unknown_items(events, index: ItemIndex) -> int:
    """How many distinct items of ``events`` the index does not know."""
    _, known = index.lookup(events[ITEM])
    return int(events[ITEM][~known].nunique())
