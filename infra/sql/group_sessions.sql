-- Group one run's click events into sessions: Athena (Trino) SQL, the same rules as
-- model_code/sessions.py and model_code/event_rules.py. infra/session_query.py fills the {placeholders}
-- and wraps the SELECT in UNLOAD; tests/infra/test_group_sessions_sql.py runs it on DuckDB.
--   {table}      the events table (a Glue table over events/incoming/<run>/, partition column "run")
--   {run}        the run, a string literal
--   {session} {item} {time}   the quoted column names
--   {time_form}  'auto', 'epoch_s', 'epoch_ms' or 'datetime' (a %-pattern is not offered here)
--   {datetime}   the date-time form of model_code/event_rules.py, anchored, groups unnamed
--   {max_items}  items kept per session: the latest ones
-- Empty fields count as missing whether the engine reads them as '' or NULL; regexp_extract's "no
-- match" is '' on some engines and NULL on others, hence NULLIF everywhere.
WITH raw AS (
    SELECT NULLIF({session}, '') AS session_id,
           NULLIF({item}, '') AS item_id,
           trim({time}) AS time_text,
           "$path" AS file_path
    FROM {table}
    WHERE run = {run}
),
parts AS (
    SELECT raw.*,
           regexp_like(time_text, '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$') AS is_epoch,
           CASE WHEN regexp_extract(time_text, '{datetime}', 1) <> '' THEN substr(time_text, 1, 10) END AS day_text,
           CAST(NULLIF(regexp_extract(time_text, '{datetime}', 4), '') AS DOUBLE) AS hours,
           CAST(NULLIF(regexp_extract(time_text, '{datetime}', 5), '') AS DOUBLE) AS minutes,
           CAST(NULLIF(regexp_extract(time_text, '{datetime}', 6), '') AS DOUBLE) AS seconds,
           NULLIF(regexp_extract(time_text, '{datetime}', 7), '') AS fraction,
           NULLIF(regexp_extract(time_text, '{datetime}', 8), '') AS zone
    FROM raw
),
zoned AS (
    SELECT parts.*,
           CASE WHEN zone IS NULL OR zone IN ('Z', 'UTC') THEN 0.0
                WHEN CAST(substr(zone, 2, 2) AS INTEGER) > 23
                  OR CAST(COALESCE(NULLIF(regexp_extract(zone, '^[+-][0-9]{{2}}:?([0-9]{{2}})$', 1), ''), '0') AS INTEGER) > 59
                THEN NULL
                ELSE (CASE WHEN substr(zone, 1, 1) = '-' THEN -1.0 ELSE 1.0 END)
                     * (CAST(substr(zone, 2, 2) AS DOUBLE) * 3600
                        + CAST(COALESCE(NULLIF(regexp_extract(zone, '^[+-][0-9]{{2}}:?([0-9]{{2}})$', 1), ''), '0') AS DOUBLE) * 60)
           END AS offset_seconds
    FROM parts
),
timed AS (
    SELECT session_id, item_id, file_path,
           CASE
               WHEN {time_form} IN ('auto', 'epoch_s') AND is_epoch THEN TRY_CAST(time_text AS DOUBLE)
               WHEN {time_form} = 'epoch_ms' AND is_epoch THEN TRY_CAST(time_text AS DOUBLE) / 1000.0
               WHEN {time_form} IN ('auto', 'datetime') AND day_text IS NOT NULL
                    AND COALESCE(hours, 0) <= 23 AND COALESCE(minutes, 0) <= 59 AND COALESCE(seconds, 0) <= 59
               THEN CAST(date_diff('day', DATE '1970-01-01', TRY_CAST(day_text AS DATE)) AS DOUBLE) * 86400
                    + COALESCE(hours, 0) * 3600 + COALESCE(minutes, 0) * 60 + COALESCE(seconds, 0)
                    + CAST('0.' || COALESCE(fraction, '0') AS DOUBLE) - offset_seconds
           END AS event_time
    FROM zoned
),
good AS (
    SELECT session_id, item_id, file_path, event_time,
           row_number() OVER (PARTITION BY session_id
                              ORDER BY event_time DESC, file_path DESC, item_id DESC) AS from_latest
    FROM timed
    WHERE session_id IS NOT NULL AND item_id IS NOT NULL AND event_time IS NOT NULL
)
SELECT session_id,
       array_agg(item_id ORDER BY event_time, file_path, item_id) AS items
FROM good
WHERE from_latest <= {max_items}
GROUP BY session_id
