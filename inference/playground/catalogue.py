"""The model's items as the playground shows them: id, and where an items file gives them, name, category
and image.

The optional items file is CSV with a header row: ``item_id`` (required) and any of ``name``,
``category``, ``image_url``. Rows for ids the model does not know are counted and left out; items the
file does not describe are shown by id alone. Browsing lists the items most popular first (the model's
``popular_items``), then the rest in the model's order.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ID_COLUMN = "item_id"
DETAIL_COLUMNS = ("name", "category", "image_url")
IMAGE_SCHEMES = ("http://", "https://", "data:image/")


class ItemsFileError(ValueError):
    """The items file cannot be read; the message names the file, the line and what is wrong."""


@dataclass(frozen=True)
class Item:
    item_id: str
    name: str = ""
    category: str = ""
    image_url: str = ""

    def matches(self, words: Sequence[str]) -> bool:
        """Whether every word (lower case) is in the id, name or category."""
        text = f"{self.item_id}\n{self.name}\n{self.category}".lower()
        return all(word in text for word in words)

    def to_json(self) -> dict:
        return asdict(self)


def read_items_file(path: str | Path) -> dict[str, Item]:
    """The items file's rows by id; :class:`ItemsFileError` for a missing file, column or id, or a repeated id."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _rows(csv.DictReader(handle), path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ItemsFileError(f"cannot read the items file {path}: {err}") from err


def _rows(reader: csv.DictReader, path: Path) -> dict[str, Item]:
    columns = reader.fieldnames or []
    if ID_COLUMN not in columns:
        raise ItemsFileError(f"{path}: the header row has no {ID_COLUMN!r} column (it has {columns})")
    described: dict[str, Item] = {}
    for row in reader:
        where = f"{path}, line {reader.line_num}"
        if None in row:
            raise ItemsFileError(f"{where}: more fields than the header row names (quote a field holding a comma)")
        item_id = (row.get(ID_COLUMN) or "").strip()
        if not item_id:
            raise ItemsFileError(f"{where}: empty {ID_COLUMN}")
        if item_id in described:
            raise ItemsFileError(f"{where}: {ID_COLUMN} {item_id!r} given twice")
        details = {column: (row.get(column) or "").strip() for column in DETAIL_COLUMNS}
        if details["image_url"] and not details["image_url"].startswith(IMAGE_SCHEMES):
            raise ItemsFileError(f"{where}: image_url must start with one of {IMAGE_SCHEMES}")
        described[item_id] = Item(item_id, **details)
    return described


class Catalogue:
    """The model's items in browsing order, each with what the items file says of it."""

    def __init__(self, model_items: Sequence[str], popular: Iterable[str], described: dict[str, Item] | None = None):
        described = described or {}
        known = set(model_items)
        order = [item for item in dict.fromkeys(popular) if item in known]
        first = set(order)
        order += [item for item in model_items if item not in first]
        self.items = [described.get(item_id) or Item(item_id) for item_id in order]
        self.by_id = {item.item_id: item for item in self.items}
        self.unknown_described = sum(1 for item_id in described if item_id not in known)
        self.described = len(described) - self.unknown_described

    def search(self, query: str, limit: int) -> list[Item]:
        """At most ``limit`` items whose id, name or category hold every word of ``query`` (all for no words)."""
        words = query.lower().split()
        found = []
        for item in self.items:
            if item.matches(words):
                found.append(item)
                if len(found) == limit:
                    break
        return found

    def describe(self, item_ids: Iterable[str]) -> list[Item]:
        """Each id's item; an id the model does not know comes back by itself."""
        return [self.by_id.get(item_id) or Item(item_id) for item_id in item_ids]
