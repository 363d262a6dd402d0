"""A Batch Transform run's own filter list: a copy of the live model's archive with ``filters.json`` added.

The batch state machine calls this Lambda function when a run's sessions file
``sessions/incoming/NAME.jsonl`` has a list file ``NAME.filters.json`` beside it. The serving container
runs network-isolated, so the list reaches it inside the model archive: SageMaker unpacks the archive
to /opt/ml/model, and the container applies ``filters.json`` to every line that gives no list of its own.

Event: ``{"modelData": "s3://.../model.tar.gz", "filters": "s3://.../NAME.filters.json",
"output": "s3://.../model.tar.gz"}``; result: ``{"modelData": <output>, "excludeItems": N, "includeItems": N}``.
A list file that is not ``{"exclude_items": [...], "include_items": [...]}`` (either or both, item ids
as strings or integers, at most 1,000,000 each) raises ``FiltersError`` naming what is wrong, before
any instance starts. Only the Python standard library and boto3 (in the Lambda runtime) are used.
"""
from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
from urllib.parse import urlparse

import boto3

FILTERS_FILE = "filters.json"
FIELDS = ("exclude_items", "include_items")
MAX_IDS = 1_000_000


class FiltersError(Exception):
    """The list file cannot be used: the message says why (the run fails with it)."""


def handler(event: dict, _context=None, s3=None) -> dict:
    s3 = s3 or boto3.client("s3")
    filters = check_filters(read_json(s3, event["filters"]), event["filters"])
    with tempfile.TemporaryDirectory() as folder:
        original, packed = os.path.join(folder, "model.tar.gz"), os.path.join(folder, "packed.tar.gz")
        s3.download_file(*split(event["modelData"]), original)
        add_to_archive(original, packed, FILTERS_FILE, json.dumps(filters).encode())
        s3.upload_file(packed, *split(event["output"]))
    return {"modelData": event["output"], "excludeItems": len(filters.get("exclude_items", [])),
            "includeItems": len(filters.get("include_items", []))}


def split(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    parts = urlparse(uri)
    if parts.scheme != "s3" or not parts.netloc or not parts.path.lstrip("/"):
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parts.netloc, parts.path.lstrip("/")


def read_json(s3, uri: str):
    body = s3.get_object(Bucket=split(uri)[0], Key=split(uri)[1])["Body"].read()
    try:
        return json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise FiltersError(f"{uri} is not a JSON file: {err}") from None


def check_filters(document, uri: str) -> dict:
    """The lists of ``document``, ids as strings; FiltersError names the first problem."""
    if not isinstance(document, dict) or not document:
        raise FiltersError(f"{uri} must be a JSON object with 'exclude_items' and/or 'include_items'")
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise FiltersError(f"{uri} has unknown field(s) {', '.join(map(repr, unknown))}: the fields are "
                           f"'exclude_items' and 'include_items'")
    lists = {}
    for field, values in document.items():
        if not isinstance(values, list):
            raise FiltersError(f"'{field}' in {uri} must be a list of item ids")
        if len(values) > MAX_IDS:
            raise FiltersError(f"'{field}' in {uri} holds {len(values):,} ids: at most {MAX_IDS:,}")
        for i, value in enumerate(values):
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise FiltersError(f"'{field}[{i}]' in {uri} must be an item id (a string or an integer)")
        lists[field] = [value if isinstance(value, str) else str(value) for value in values]
    return lists


def add_to_archive(source: str, target: str, name: str, data: bytes) -> None:
    """Copy the gzip tar ``source`` to ``target`` with the file ``name`` (at the archive's root) set to ``data``."""
    with tarfile.open(source, "r:gz") as original, tarfile.open(target, "w:gz") as packed:
        for member in original:
            if os.path.normpath(member.name) == name:
                continue
            packed.addfile(member, original.extractfile(member) if member.isfile() else None)
        entry = tarfile.TarInfo(name)
        entry.size, entry.mode = len(data), 0o644
        packed.addfile(entry, io.BytesIO(data))
