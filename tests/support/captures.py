"""Captured answers and later events with known outcomes, and the attribution query run on DuckDB.

The capture files follow SageMaker's data capture layout and format
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html):
``<prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl``, one JSON object per line with
``captureData.endpointInput`` / ``endpointOutput`` (``observedContentType``, ``mode``, ``data``,
``encoding``: ``JSON`` for the content types the endpoint lists as JSON, else ``BASE64``) and
``eventMetadata`` (``eventId``, ``inferenceTime``).

DuckDB stands in for Athena's engine (Trino); the bridges between the dialects, beside those of
tests/infra/sql/test_group_sessions.py (``regexp_like``, ``"$path"``, ``run``):

- Trino's JSON functions have DuckDB twins under other names: ``json_extract_scalar`` is
  ``json_extract_string``, ``json_parse`` a cast to JSON, and ``CAST(.. AS ARRAY(JSON))`` is written
  ``CAST(.. AS JSON[])`` (the one text the bridge rewrites: the type has no macro form).
- ``element_at(array, i)`` is ``list_extract``; ``from_utf8`` is ``decode``;
  ``to_unixtime(from_iso8601_timestamp(t))`` is ``epoch`` of a TIMESTAMPTZ; ``from_unixtime`` is a UTC
  timestamp (Athena's session time zone is UTC).
- The captures table's partitions (``variant``, ``day`` as yyyy/MM/dd) come from the file's path,
  as the Glue table's projection reads them.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import duckdb

ENDPOINT = "gru4rec-test"
DAY = dt.date(2026, 12, 1)
T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC).timestamp()
WINDOW_MINUTES = 30
_PART = "STRUCT(observedContentType VARCHAR, mode VARCHAR, data VARCHAR, encoding VARCHAR)"
CAPTURE_COLUMNS = {
    "captureData": f"STRUCT(endpointInput {_PART}, endpointOutput {_PART})",
    "eventMetadata": "STRUCT(eventId VARCHAR, inferenceTime VARCHAR)",
    "eventVersion": "VARCHAR",
}
BRIDGES = (
    "CREATE MACRO regexp_like(text, pattern) AS regexp_matches(text, pattern)",
    "CREATE MACRO json_extract_scalar(doc, path) AS json_extract_string(doc, path)",
    "CREATE MACRO json_parse(text) AS CAST(text AS JSON)",
    "CREATE MACRO element_at(items, i) AS list_extract(items, i)",
    "CREATE MACRO from_utf8(data) AS decode(data)",
    "CREATE MACRO from_iso8601_timestamp(text) AS CAST(text AS TIMESTAMPTZ)",
    "CREATE MACRO to_unixtime(moment) AS epoch(moment)",
    "CREATE MACRO from_unixtime(seconds) AS make_timestamp(CAST(seconds * 1000000 AS BIGINT))",
)


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capture_line(
    event_id: str,
    at: float,
    request: dict,
    response: dict,
    encoding: str = "JSON",
    content_type: str = "application/json",
) -> str:
    """One captured invocation as SageMaker writes it."""

    def part(mode: str, body: dict) -> dict:
        text = json.dumps(body)
        data = base64.b64encode(text.encode()).decode() if encoding == "BASE64" else text
        return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}

    return json.dumps(
        {
            "captureData": {"endpointInput": part("INPUT", request), "endpointOutput": part("OUTPUT", response)},
            "eventMetadata": {"eventId": event_id, "inferenceTime": iso(at)},
            "eventVersion": "0",
        }
    )


def _recs(*items: str) -> list[dict]:
    return [{"item_id": item, "score": float(10 - rank)} for rank, item in enumerate(items)]


def write_captures(prefix: Path) -> None:
    """The captured answers of two variants on :data:`DAY` (and one the day before, outside the period)."""

    def write(variant: str, at: float, lines: list[str]) -> None:
        moment = dt.datetime.fromtimestamp(at, dt.UTC)
        folder = prefix / ENDPOINT / variant / moment.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{moment:%M-%S}-{len(lines)}.jsonl").open("a", encoding="utf-8") as out:
            out.write("".join(line + "\n" for line in lines))

    write(
        "Champion",
        T0,
        [
            capture_line(
                "e1",
                T0,
                {"sessions": [{"session_id": "s1", "items": ["a", "b"]}, {"session_id": "s2", "items": ["x", "zz"]}]},
                {
                    "results": [
                        {"session_id": "s1", "recommendations": _recs("c", "d", "e"), "unknown_items": 0},
                        {"session_id": "s2", "recommendations": _recs("a", "c", "f"), "unknown_items": 1},
                    ],
                    "model_version": "v1",
                },
            ),
            capture_line(
                "e2",
                T0 + 60,
                {"items": ["a"]},
                {"recommendations": _recs("b", "c"), "unknown_items": 0, "model_version": "v1"},
            ),
        ],
    )
    write(
        "Challenger",
        T0 + 120,
        [
            capture_line(
                "e3",
                T0 + 120,
                {
                    "sessions": [
                        {"session_id": "s3", "items": ["c"]},
                        {"session_id": "s4", "items": ["a"]},
                        {"session_id": "s5", "items": ["q"]},
                    ],
                    "k": 3,
                },
                {
                    "results": [
                        {"session_id": "s3", "recommendations": _recs("d", "a", "b"), "unknown_items": 0},
                        {"session_id": "s4", "recommendations": _recs("b"), "unknown_items": 0},
                        {"session_id": "s5", "recommendations": _recs("r"), "unknown_items": 1},
                    ],
                    "model_version": "v2",
                },
                encoding="BASE64",
            ),
            capture_line("e4", T0 + 130, {"items": "a"}, {"error": "'items' must be a list"}),
        ],
    )
    # the day before the period: never read
    write(
        "Challenger",
        T0 - 86400,
        [
            capture_line(
                "e0",
                T0 - 86400,
                {"sessions": [{"session_id": "s1", "items": ["a"]}]},
                {
                    "results": [{"session_id": "s1", "recommendations": _recs("d"), "unknown_items": 0}],
                    "model_version": "v2",
                },
            ),
        ],
    )


EVENTS = {
    "r1": [
        ("s1", "a", T0 - 100),
        ("s1", "b", T0 - 50),
        ("s1", "", T0 + 20),
        ("s1", "d", T0 + 30),
        ("s1", "x", T0 + 100),
        ("s1", "e", T0 + 200),
        ("s1", "c", T0 + 3000),
        ("s2", "f", T0 + 10),
        ("s2", "a", T0 + 20),
        ("s3", "z", T0 + 130),
        ("s3", "a", T0 + 140),
        ("s4", "b", T0 + 500),
    ],
    "r-other": [("s3", "d", T0 + 125)],
}
"""Visitors' events per run: s1's empty item is a bad row; run r-other is not attributed to."""

EXPECTED = {
    ("Champion", "v1"): {
        "answers": 3,
        "attributable": 2,
        "followed": 2,
        "hits": 2,
        "rank_sum": 5,
        "reciprocal_rank_sum": 1 / 2 + 1 / 3,
        "clicks": 4,
        "sessions": 2,
        "requested_items": 5,
        "unknown_items": 1,
        "recommended_items": 6,
        "catalogue_items": 8,
    },
    ("Challenger", "v2"): {
        "answers": 3,
        "attributable": 3,
        "followed": 2,
        "hits": 1,
        "rank_sum": 1,
        "reciprocal_rank_sum": 1.0,
        "clicks": 2,
        "sessions": 3,
        "requested_items": 3,
        "unknown_items": 1,
        "recommended_items": 4,
        "catalogue_items": 8,
    },
}
"""Worked out by hand from the answers and events above (window 30 minutes):

- s1 (v1, at T0, recommended c d e): the empty-item row is skipped, so the next event is d (rank 2); d and
  e are clicks on recommended items, x is not, c at T0 + 3000 s is past the window.
- s2 (v1, a c f): next f (rank 3); f and a are clicks. The single-form answer (b c) names no session.
- s3 (v2, at T0 + 120, d a b): next z, a miss (run r-other's d at T0 + 125 is not read); a is a click.
- s4 (v2, b): next b (rank 1), one click. s5 (v2, r): no later event. The error response is no answer.
- items requested: v1 2 + 2 + 1, v2 1 + 1 + 1; unknown: s2's zz, s5's q.
- recommended: v1 {c, d, e, a, f, b}, v2 {d, a, b, r}; the day's events name {a, b, c, d, e, f, x, z}.
"""


def write_events(incoming: Path) -> None:
    for run, rows in EVENTS.items():
        folder = incoming / run
        folder.mkdir(parents=True)
        (folder / "part-1.tsv").write_text(
            "SessionId\tItemId\tTime\n" + "".join(f"{s}\t{i}\t{t:.0f}\n" for s, i, t in rows), encoding="utf-8"
        )


def on_duckdb(capture: Path, incoming: Path, schema: str = "main") -> duckdb.DuckDBPyConnection:
    """A connection with the views ``events`` (as tests/infra/sql/test_group_sessions.py reads them) and
    ``captures`` over ``capture/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``, in ``schema`` (a Glue database)."""
    connection = duckdb.connect()
    for bridge in BRIDGES:
        connection.execute(bridge)
    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    connection.execute(f"""
        CREATE VIEW "{schema}".events AS
        SELECT *, filename AS "$path", regexp_extract(filename, '/([^/]+)/[^/]+$', 1) AS run
        FROM read_csv('{incoming}/*/part-*', delim = '\t', header = true, all_varchar = true,
                      filename = true, quote = '', escape = '')""")
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in CAPTURE_COLUMNS.items())
    connection.execute(f"""
        CREATE VIEW "{schema}".captures AS
        SELECT captureData, eventMetadata,
               regexp_extract(filename, '/([^/]+)/[0-9]{{4}}/[0-9]{{2}}/[0-9]{{2}}/[0-9]{{2}}/[^/]+$', 1) AS variant,
               regexp_extract(filename, '/([0-9]{{4}}/[0-9]{{2}}/[0-9]{{2}})/[0-9]{{2}}/[^/]+$', 1) AS day
        FROM read_json('{capture}/*/*/*/*/*/*/*.jsonl', format = 'newline_delimited', filename = true,
                       columns = {{{columns}}})""")
    return connection


def run_attribution(connection: duckdb.DuckDBPyConnection, query: str) -> list[dict]:
    """The query's rows as dicts, with the one dialect rewrite the bridge needs."""
    result = connection.execute(query.replace("AS ARRAY(JSON)", "AS JSON[]"))
    names = [column[0] for column in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]
