"""A batch job's own business rules: ``filters.json`` beside the model files.

A Batch Transform run that names a list file (an in-stock list of 100,000 ids would not fit on every
line of a 6 MB payload) scores with a model of its own whose artifact carries that file next to the
model files; the container runs network-isolated, so the list arrives with the model, never through a
call to S3. The file is ``{"exclude_items": [...], "include_items": [...]}`` (either or both), and its
lists apply to every request and line that does not give its own.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from inference.contracts import ClientError, SessionRequest, item_ids
from model_code.artifacts import ModelDirError

FILTERS_FILE = "filters.json"
MAX_JOB_FILTER_ITEMS = 1_000_000
"""Ids in one list of a job's filters.json at most."""
FIELDS = ("exclude_items", "include_items")


class FiltersFileError(ValueError):
    """A filter list file that cannot be used; the message names the file and the problem."""


def read_job_filters(model_dir: str | os.PathLike) -> SessionRequest | None:
    """The defaults ``filters.json`` sets (None where the model directory has none); ModelDirError names a bad one."""
    path = Path(model_dir) / FILTERS_FILE
    if not path.is_file():
        return None
    try:
        return parse_filters(path.read_bytes(), str(path))
    except FiltersFileError as err:
        raise ModelDirError(str(err)) from None


def parse_filters(data: bytes, where: str) -> SessionRequest:
    """The lists of a filter file's bytes as request defaults; FiltersFileError names ``where`` and the problem."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FiltersFileError(f"{where} is not a JSON file: {err}") from None
    if not isinstance(document, dict) or not document or set(document) - set(FIELDS):
        raise FiltersFileError(f"{where} must be a JSON object with 'exclude_items' and/or 'include_items' (lists "
                               f"of item ids), and nothing else")
    lists = {}
    for field, values in document.items():
        if not isinstance(values, list) or len(values) > MAX_JOB_FILTER_ITEMS:
            raise FiltersFileError(f"'{field}' in {where} must be a list of at most {MAX_JOB_FILTER_ITEMS:,} item ids")
        try:
            lists[field] = item_ids(values, field)
        except ClientError as err:
            raise FiltersFileError(f"{where}: {err.message}") from None
    return SessionRequest(items=[], **lists)
