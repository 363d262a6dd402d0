"""A request (or response) checked against botocore's service model, the whole way down.

botocore's own parameter validation checks required members, types and minimums; AWS also refuses
values outside an enum, longer than a maximum or not matching a pattern. :func:`problems` checks all
of these, member by member, and names each bad field by its path (``ResourceConfig.InstanceType``).
A value must match a pattern as a whole, as AWS checks it ("Member must satisfy regular expression
pattern"); a pattern the ``regex`` module cannot compile is reported, never skipped.
"""
from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import botocore.session
import regex


@cache
def _service(service: str):
    return botocore.session.get_session().get_service_model(service)


@cache
def _pattern(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def problems(service: str, operation: str, params: dict, output: bool = False) -> list[str]:
    """What AWS would refuse in ``params`` of ``operation`` (its input shape; its output shape with ``output``)."""
    model = _service(service).operation_model(operation)
    shape = model.output_shape if output else model.input_shape
    found: list[str] = []
    if shape is None:
        return [] if not params else [f"{operation} takes no members, got {sorted(params)}"]
    _check(shape, params, operation, found)
    return found


def _check(shape, value: Any, path: str, found: list[str]) -> None:
    kind = shape.type_name
    checker = {"structure": _structure, "list": _list, "map": _map, "string": _string, "integer": _integer,
               "long": _integer, "float": _number, "double": _number, "boolean": _boolean, "blob": _blob,
               "timestamp": _timestamp}.get(kind)
    if checker is None:
        found.append(f"{path}: shape type {kind} is not checked here")
        return
    checker(shape, value, path, found)


def _bounds(shape, size: int | float, path: str, what: str, found: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        found.append(f"{path}: {what} {size} is below the minimum {low}")
    if high is not None and size > high:
        found.append(f"{path}: {what} {size} is above the maximum {high}")


def _structure(shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, dict):
        found.append(f"{path}: expected an object, got {type(value).__name__}")
        return
    for name in shape.required_members:
        if name not in value:
            found.append(f"{path}.{name}: required, missing")
    for name, item in value.items():
        if name not in shape.members:
            found.append(f"{path}.{name}: not a member of {shape.name}")
        elif item is not None:
            _check(shape.members[name], item, f"{path}.{name}", found)


def _list(shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, list):
        found.append(f"{path}: expected a list, got {type(value).__name__}")
        return
    _bounds(shape, len(value), path, "length", found)
    for index, item in enumerate(value):
        _check(shape.member, item, f"{path}[{index}]", found)


def _map(shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, dict):
        found.append(f"{path}: expected a map, got {type(value).__name__}")
        return
    _bounds(shape, len(value), path, "entries", found)
    for key, item in value.items():
        _check(shape.key, key, f"{path}.<key {key}>", found)
        _check(shape.value, item, f"{path}.{key}", found)


def _string(shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, str):
        found.append(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return
    _bounds(shape, len(value), path, "length", found)
    if shape.enum and value not in shape.enum:
        found.append(f"{path}: {value!r} is not one of {shape.enum}")
    pattern = shape.metadata.get("pattern")
    if pattern is not None:
        try:
            matches = _pattern(pattern).fullmatch(value) is not None
        except regex.error as error:
            found.append(f"{path}: the model's pattern {pattern!r} does not compile here ({error})")
            return
        if not matches:
            found.append(f"{path}: {value!r} does not match the pattern {pattern!r}")


def _integer(shape, value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        found.append(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return
    _bounds(shape, value, path, "value", found)


def _number(shape, value: Any, path: str, found: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        found.append(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        return
    _bounds(shape, value, path, "value", found)


def _boolean(_shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, bool):
        found.append(f"{path}: expected a boolean, got {type(value).__name__} {value!r}")


def _blob(shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, (bytes, bytearray, str)) and not hasattr(value, "read"):
        found.append(f"{path}: expected bytes, got {type(value).__name__}")
    elif isinstance(value, (bytes, bytearray, str)):
        _bounds(shape, len(value), path, "length", found)


def _timestamp(_shape, value: Any, path: str, found: list[str]) -> None:
    if not isinstance(value, (datetime, str, int, float)) or isinstance(value, bool):
        found.append(f"{path}: expected a timestamp, got {type(value).__name__}")
