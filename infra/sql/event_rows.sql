-- One run's event rows as read by the rules of model_code/data/event_rules.py: Athena (Trino) SQL, a list of
-- common table expressions that infra/session_query.py puts after WITH in group_sessions.sql and
-- count_events.sql (so both read rows the same way). "checked" has one row per event row:
--   session_id, item_id, file_path, event_time (Unix seconds), and bad_reason: NULL for a good row,
--   'other_kind' for a row of an event kind not read (no bad row), else 'missing_session_id',
--   'missing_item_id' or 'bad_time' (the first that applies, in that order).
-- "visit_events" has the good rows as the sessions hold them: split by the session gap (the session
-- becomes '<session>#<n>') and, with an event column, without consecutive repeats of an item.
-- Placeholders (filled by infra/session_query.py):
--   {table}      the events table (a Glue table over events/incoming/<run>/, partition column "run")
--   {run}        the run, a string literal
--   {session} {item} {time}   the quoted column names
--   {time_form}  'auto', 'epoch_s', 'epoch_ms' or 'datetime' (a %-pattern is not offered here)
--   {datetime}   the date-time form of model_code/data/event_rules.py, anchored, groups unnamed
--   {kind}       the quoted event kind column, or NULL without one
--   {other_kind} a condition on "kind": TRUE for a row of a kind not read (FALSE when all are read)
--   {gap}        the session gap in seconds (a DOUBLE literal), or NULL for none
--   {collapse}   TRUE to collapse consecutive repeats (an event column is named), else FALSE
-- Empty fields count as missing whether the engine reads them as '' or NULL; regexp_extract's "no
-- match" is '' on some engines and NULL on others, hence NULLIF everywhere.
raw AS (
    SELECT NULLIF({session}, '') AS session_id,
           NULLIF({item}, '') AS item_id,
           trim({time}) AS time_text,
           CAST({kind} AS VARCHAR) AS kind,
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
    SELECT session_id, item_id, file_path, kind,
           CASE
               WHEN {time_form} = 'auto' AND is_epoch THEN
                   CASE WHEN abs(TRY_CAST(time_text AS DOUBLE)) >= 1e14 THEN TRY_CAST(time_text AS DOUBLE) / 1e6
                        WHEN abs(TRY_CAST(time_text AS DOUBLE)) >= 1e11 THEN TRY_CAST(time_text AS DOUBLE) / 1e3
                        ELSE TRY_CAST(time_text AS DOUBLE)
                   END
               WHEN {time_form} = 'epoch_s' AND is_epoch THEN TRY_CAST(time_text AS DOUBLE)
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
           CASE WHEN {other_kind} THEN 'other_kind'
                WHEN session_id IS NULL THEN 'missing_session_id'
                WHEN item_id IS NULL THEN 'missing_item_id'
                WHEN event_time IS NULL THEN 'bad_time'
           END AS bad_reason
    FROM timed
),
gaps AS (
    SELECT session_id, item_id, file_path, event_time,
           CASE WHEN event_time - lag(event_time) OVER (PARTITION BY session_id ORDER BY event_time) > {gap}
                THEN 1 ELSE 0 END AS starts_session
    FROM checked
    WHERE bad_reason IS NULL
),
numbered AS (
    SELECT CASE WHEN {gap} IS NULL THEN session_id
                ELSE session_id || '#' || CAST(1 + sum(starts_session) OVER (PARTITION BY session_id ORDER BY event_time)
                                               AS VARCHAR)
           END AS session_id,
           item_id, file_path, event_time
    FROM gaps
),
visit_events AS (
    SELECT session_id, item_id, file_path, event_time
    FROM (SELECT numbered.*,
                 lag(item_id) OVER (PARTITION BY session_id ORDER BY event_time, file_path, item_id) AS previous_item
          FROM numbered) AS ordered
    WHERE NOT {collapse} OR previous_item IS NULL OR previous_item <> item_id
)
