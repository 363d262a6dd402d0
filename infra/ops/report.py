"""`infra.ops report`: which model earns the clicks, from the endpoint's captured answers.

The attribution query (``infra/sql/attribute_answers.sql``) runs in the stage's events workgroup over
the captures table and the event runs whose ``_SUCCESS`` marker arrived from the period's first day on
(later events of the period's answers can only be in those); its rows become a table per production
variant and model version, per day and for the period, and, where two variants answered, their
comparison (:mod:`infra.ab_test`).
"""
from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from infra.ab_test import Arm, Comparison, compare
from infra.attribution import Period, attribution_sql, figures, read_rows
from infra.layout import (
    CAPTURES_TABLE,
    CHALLENGER_VARIANT,
    EVENTS_TABLE,
    INCOMING_EVENTS_PREFIX,
    LIVE_VARIANT,
    RUN_MARKER,
)
from infra.ops.errors import OpsError
from model_code.data.event_rules import ReadOptions

FINISHED = ("SUCCEEDED", "FAILED", "CANCELLED")
POLL_SECONDS = 3.0
COLUMNS = (("answers", "answers", "{:d}"), ("followed", "followed", "{:d}"), ("hit_rate", "hit rate", "{:.3f}"),
           ("mean_rank", "mean rank", "{:.2f}"), ("mrr", "MRR", "{:.3f}"),
           ("clicks_per_answer", "clicks/answer", "{:.2f}"),
           ("coverage", "coverage", "{:.1%}"), ("unknown_share", "unknown", "{:.1%}"))


def runs_since(s3, bucket: str, since: dt.datetime) -> list[str]:
    """The runs under ``events/incoming/`` whose marker was written at or after ``since``, by name."""
    runs = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=INCOMING_EVENTS_PREFIX, Delimiter="/")
    for page in pages:
        for prefix in page.get("CommonPrefixes", []):
            run = prefix["Prefix"][len(INCOMING_EVENTS_PREFIX):].rstrip("/")
            marker = s3.list_objects_v2(Bucket=bucket, Prefix=f"{INCOMING_EVENTS_PREFIX}{run}/{RUN_MARKER}", MaxKeys=1)
            if any(item["Key"].endswith(f"/{RUN_MARKER}") and item["LastModified"] >= since
                   for item in marker.get("Contents", [])):
                runs.append(run)
    return sorted(runs)


def run_query(athena, sql: str, workgroup: str, database: str,
              sleep: Callable[[float], None] = time.sleep) -> tuple[list[str], list[list[str | None]]]:
    """The query's column names and rows, once it has finished; OpsError with Athena's reason if it failed."""
    query_id = athena.start_query_execution(QueryString=sql, WorkGroup=workgroup,
                                            QueryExecutionContext={"Database": database})["QueryExecutionId"]
    while True:
        status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        if status["State"] in FINISHED:
            break
        sleep(POLL_SECONDS)
    if status["State"] != "SUCCEEDED":
        reason = status.get("StateChangeReason", "no reason given")
        raise OpsError(f"attribution query {query_id} {status['State'].lower()}: {reason}")
    header, rows = None, []
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
        for row in page["ResultSet"]["Rows"]:
            values = [cell.get("VarCharValue") for cell in row["Data"]]
            if header is None:
                header = values
            else:
                rows.append(values)
    return header or [], rows


def render(rows: list[dict], period: Period, runs: list[str], window_minutes: int) -> str:
    """The report's text: a line per variant, model version and day (the period's line first), then the A/B verdict."""
    lines = [f"answers from {period.first} to {period.last} (UTC), events of {len(runs)} run(s) within "
             f"{window_minutes} min after each answer"]
    if not rows:
        return "\n".join(lines + ["no captured answers in the period: is data capture on (data_capture_percent)?"])
    header = f"{'variant':<12} {'model version':<40} {'day':<10} " + " ".join(f"{title:>13}" for _, title, _ in COLUMNS)
    lines.append(header)
    ordered = sorted(rows, key=lambda r: (r["variant"] or "", r["model_version"] or "", r["day"] is not None,
                                          r["day"] or ""))
    for row in ordered:
        rates = {**row, **figures(row)}
        cells = " ".join(f"{'-' if rates[key] is None else form.format(rates[key]):>13}" for key, _, form in COLUMNS)
        key = f"{row['variant'] or '-':<12} {row['model_version'] or '-':<40} {row['day'] or 'period':<10}"
        lines.append(f"{key} {cells}")
    comparison = ab_comparison(rows)
    if comparison is not None:
        lines.append("A/B: " + comparison.sentence())
    return "\n".join(lines)


def ab_comparison(rows: list[dict]) -> Comparison | None:
    """The challenger against the live variant over the period, when both answered."""
    arms = {}
    for row in rows:
        if row["day"] is None and row["variant"] in (LIVE_VARIANT, CHALLENGER_VARIANT):
            hits, trials = arms.get(row["variant"], (0, 0))
            arms[row["variant"]] = (hits + row["hits"], trials + row["followed"])
    if len(arms) < 2:
        return None
    return compare(Arm(LIVE_VARIANT, *arms[LIVE_VARIANT]), Arm(CHALLENGER_VARIANT, *arms[CHALLENGER_VARIANT]))


def report(session, deployment, days: int, today: dt.date | None = None,
           sleep: Callable[[float], None] = time.sleep) -> str:
    """The last ``days`` whole days (UTC) before ``today``."""
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        period = Period.ending(today - dt.timedelta(days=1), days)
    except ValueError as error:
        raise OpsError(f"--{error}") from None
    since = dt.datetime.combine(period.first, dt.time(), tzinfo=dt.UTC)
    runs = runs_since(session.client("s3"), deployment.data_bucket, since)
    if not runs:
        markers = f"s3://{deployment.data_bucket}/{INCOMING_EVENTS_PREFIX}<run>/{RUN_MARKER}"
        raise OpsError(f"no event run arrived since {period.first} ({markers}): the answers have no later events "
                       "to be attributed to")
    database = deployment.events_database
    sql = attribution_sql(f'"{database}"."{CAPTURES_TABLE}"', f'"{database}"."{EVENTS_TABLE}"', runs, period,
                          deployment.attribution_minutes, ReadOptions(**deployment.event_read_options))
    header, values = run_query(session.client("athena"), sql, deployment.events_workgroup, database, sleep)
    return render(read_rows(header, values), period, runs, deployment.attribution_minutes)
