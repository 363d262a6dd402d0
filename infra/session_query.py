"""The Athena query that groups one run's events into sessions, from ``infra/sql/group_sessions.sql``.

The SQL file is the grouping; this module fills its placeholders from the reading options of
:mod:`model_code.event_rules` and wraps it in the ``UNLOAD`` that writes JSON lines. Athena's
UNLOAD: https://docs.aws.amazon.com/athena/latest/ug/unload.html
"""
from __future__ import annotations

import re
from pathlib import Path

from infra.config import ATHENA_TIME_FORMS
from model_code.event_rules import DATETIME_PATTERN, OptionError, ReadOptions
from model_code.sessions import MAX_ITEMS

SQL_FILE = Path(__file__).parent / "sql" / "group_sessions.sql"
RUN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]{0,127}")
"""A run's name (the folder under ``events/incoming/``): it goes into the query as a literal."""


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_run(run: str) -> str:
    if not RUN_PATTERN.fullmatch(run):
        raise ValueError(f"run {run!r}: a run is named by 1-128 letters, digits, '.', '_', '=' or '-'"
                         f" (starting with a letter or digit)")
    return run


def select_sql(table: str, run_literal: str, options: ReadOptions = ReadOptions(), max_items: int = MAX_ITEMS) -> str:
    """The grouping SELECT over ``table`` for the run that ``run_literal`` (an SQL expression) names."""
    if options.time_form not in ATHENA_TIME_FORMS:
        raise OptionError(options.time_format, f"{', '.join(ATHENA_TIME_FORMS)} (the Athena query reads no %-pattern)")
    plain_groups = re.sub(r"\(\?P<\w+>", "(", DATETIME_PATTERN.pattern)
    body = "\n".join(line for line in SQL_FILE.read_text(encoding="utf-8").splitlines() if not line.startswith("--"))
    return body.format(
        table=table, run=run_literal, session=quote_identifier(options.session_column),
        item=quote_identifier(options.item_column), time=quote_identifier(options.time_column),
        time_form=quote_string(options.time_form), max_items=int(max_items), datetime=f"^(?:{plain_groups})$",
    )


def unload_sql(select: str, destination: str) -> str:
    """``select`` written as gzip-compressed JSON lines under ``destination`` (an empty ``s3://`` prefix)."""
    return f"UNLOAD (\n{select}\n) TO {quote_string(destination)} WITH (format = 'JSON', compression = 'GZIP')"
