-- One run's event rows as read by the rules of model_code/event_rules.py: Athena (Trino) SQL, a list of
-- common table expressions that infra/session_query.py puts after WITH in group_sessions.sql and
-- count_events.sql (so both read rows the same way). The last one, "checked", has one row per event row:
--   session_id, item_id, file_path, event_time (Unix seconds), and bad_reason: NULL for a good row, else
--   'missing_session_id', 'missing_item_id' or 'bad_time' (the first that applies, in that order).
-- Placeholders (filled by infra/session_query.py):
--   {table}      the events table (a Glue table over events/incoming/<run>/, partition column "run")
--   {run}        the run, a string literal
--   {session} {item} {time}   the quoted column names
--   {time_form}  'auto', 'epoch_s', 'epoch_ms' or 'datetime' (a %-pattern is not offered here)
--   {datetime}   the date-time form of model_code/event_rules.py, anchored, groups unnamed
-- Empty fields count as missing whether the engine reads them as '' or NULL; regexp_extract's "no
-- match" is '' on some engines and NULL on others, hence NULLIF everywhere.
raw AS (
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
checked AS (
    SELECT session_id, item_id, file_path, event_time,
           CASE WHEN session_id IS NULL THEN 'missing_session_id'
                WHEN item_id IS NULL THEN 'missing_item_id'
                WHEN event_time IS NULL THEN 'bad_time'
           END AS bad_reason
    FROM timed
)
