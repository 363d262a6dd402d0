"""The item catalogue: item id strings <-> contiguous indices 0..n_items-1.

The index is saved with every model as ``items.json`` (index -> id), so that
serving maps the same ids to the same rows of the output layer.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from model_code import artifacts
from model_code.data.event_rules import ITEM


class ItemIndex:
    """A fixed, ordered set of item ids; index i is the item ``ids[i]``."""

    def __init__(self, ids: Sequence[str]):
        ids = list(ids)
        not_strings = [item for item in ids if not isinstance(item, str)]
        if not_strings:
            raise TypeError(f"item ids must be strings, got {type(not_strings[0]).__name__} {not_strings[0]!r}")
        self._index = pd.Index(ids, dtype=object)
        if not self._index.is_unique:
            duplicate = self._index[self._index.duplicated()][0]
            raise ValueError(f"item id {duplicate!r} appears more than once")
        self._ids = ids

    @classmethod
    def from_events(cls, events: pd.DataFrame, column: str = ITEM) -> ItemIndex:
        """Every distinct item of ``events``, in order of first appearance."""
        return cls(pd.unique(events[column].to_numpy(dtype=object)).tolist())

    @classmethod
    def from_codes(cls, events) -> ItemIndex:
        """Every distinct item of :class:`~model_code.data.event_table.EventCodes`, in order of first appearance."""
        return cls(events.item_ids.take(pd.unique(events.items)).to_pylist())

    @property
    def ids(self) -> list[str]:
        return self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"ItemIndex({len(self)} items)"

    def lookup(self, ids: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """Indices (int32) of ``ids`` and a mask of those known; unknown ids get index -1."""
        if isinstance(ids, pd.Series):
            ids = ids.to_numpy(dtype=object)
        elif not isinstance(ids, np.ndarray):
            ids = np.asarray(list(ids), dtype=object)
        indices = self._index.get_indexer(pd.Index(ids, dtype=object)).astype(np.int32)
        return indices, indices >= 0

    def save(self, model_dir: str | os.PathLike) -> None:
        """Write ``items.json`` into ``model_dir`` atomically."""
        artifacts.write_json(Path(model_dir) / artifacts.ITEMS_FILE, self._ids)

    @classmethod
    def load(cls, model_dir: str | os.PathLike) -> ItemIndex:
        return cls(artifacts.read_items(model_dir))
