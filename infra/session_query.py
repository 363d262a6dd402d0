"""The Athena queries of an events run, from the files in ``infra/sql/``.

``event_rows.sql`` reads a run's rows by the rules of :mod:`model_code.data.event_rules` (one source of
those rules for both queries over the events); ``group_sessions.sql`` groups the good rows into
sessions and ``count_events.sql`` counts the rows read, skipped (per reason) and the sessions;
``count_answers.sql`` counts the Batch Transform answers. This module fills their placeholders from
the reading options and wraps the grouping in the ``UNLOAD`` that writes JSON lines. Athena's
UNLOAD: https://docs.aws.amazon.com/athena/latest/ug/unload.html
"""
from __future__ import annotations

import re
from pathlib import Path

from model_code.data.event_rules import BAD_ROW_REASONS, DATETIME_PATTERN, SESSION_ITEMS_KEPT, OptionError, ReadOptions

SQL_FOLDER = Path(__file__).parent / "sql"
RUN_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]{0,127}")
"""A run's name (the folder under ``events/incoming/``): it goes into the query as a literal."""
ATHENA_TIME_FORMS = ("auto", "epoch_s", "epoch_ms", "datetime")
"""The time forms infra/sql/group_sessions.sql reads (a %-pattern is the local reader's only)."""
REASON_COLUMNS = {reason: reason.replace(" ", "_") for reason in BAD_ROW_REASONS}
"""count_events.sql's column of each bad-row reason of :mod:`model_code.data.event_rules`."""


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def check_run(run: str) -> str:
    if not RUN_PATTERN.fullmatch(run):
        raise ValueError(f"run {run!r}: a run is named by 1-128 letters, digits, '.', '_', '=' or '-'"
                         f" (starting with a letter or digit)")
    return run


def rows_sql(table: str, run_literal: str, options: ReadOptions = ReadOptions()) -> str:
    """The common table expressions that read the run's rows (``event_rows.sql``), the last one ``checked``."""
    if options.time_form not in ATHENA_TIME_FORMS:
        raise OptionError(options.time_format, f"{', '.join(ATHENA_TIME_FORMS)} (the Athena query reads no %-pattern)")
    plain_groups = re.sub(r"\(\?P<\w+>", "(", DATETIME_PATTERN.pattern)
    kind, kinds, gap = options.kind_column, options.kinds, options.gap_seconds
    return _sql("event_rows.sql").format(
        table=table, run=run_literal, session=quote_identifier(options.session_column),
        item=quote_identifier(options.item_column), time=quote_identifier(options.time_column),
        time_form=quote_string(options.time_form), datetime=f"^(?:{plain_groups})$",
        kind="NULL" if kind is None else quote_identifier(kind),
        other_kind="FALSE" if kinds is None else
        f"(kind IS NULL OR kind NOT IN ({', '.join(quote_string(k) for k in sorted(kinds))}))",
        gap="CAST(NULL AS DOUBLE)" if gap is None else f"CAST({gap!r} AS DOUBLE)",
        collapse="FALSE" if kind is None else "TRUE",
    )


def select_sql(
    table: str, run_literal: str, options: ReadOptions = ReadOptions(), max_items: int = SESSION_ITEMS_KEPT
) -> str:
    """The grouping SELECT over ``table`` for the run that ``run_literal`` (an SQL expression) names."""
    return _sql("group_sessions.sql").format(rows=rows_sql(table, run_literal, options), max_items=int(max_items))


def count_sql(table: str, run_literal: str, options: ReadOptions = ReadOptions()) -> str:
    """One row: ``rows_read``, one column per bad-row reason (:data:`REASON_COLUMNS`), ``sessions`` and
    ``other_kinds`` (rows of event kinds not read)."""
    return _sql("count_events.sql").format(rows=rows_sql(table, run_literal, options))


def answers_sql(table: str, run_literal: str) -> str:
    """One row over the run's transform output: ``answer_lines``, ``sessions_scored``, ``fallback_sessions``,
    ``error_lines``."""
    return _sql("count_answers.sql").format(table=table, run=run_literal)


def _sql(name: str) -> str:
    """A file of ``infra/sql/`` without its comment lines and its last line break."""
    text = (SQL_FOLDER / name).read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.startswith("--"))


def unload_sql(select: str, destination: str) -> str:
    """``select`` written as gzip-compressed JSON lines under ``destination`` (an empty ``s3://`` prefix)."""
    return f"UNLOAD (\n{select}\n) TO {quote_string(destination)} WITH (format = 'JSON', compression = 'GZIP')"
