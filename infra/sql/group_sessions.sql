-- Group one run's click events into sessions: Athena (Trino) SQL, the same rules as
-- model_code/data/sessions.py and model_code/data/event_rules.py. infra/session_query.py puts the rows of
-- event_rows.sql in {rows}, fills the other {placeholders} and wraps the SELECT in UNLOAD;
-- tests/infra/sql/test_group_sessions.py runs it on DuckDB.
--   {rows}       the common table expressions of event_rows.sql, the sessions' events in "visit_events"
--   {max_items}  items kept per session: the latest ones
WITH {rows},
good AS (
    SELECT session_id, item_id, file_path, event_time,
           row_number() OVER (PARTITION BY session_id
                              ORDER BY event_time DESC, file_path DESC, item_id DESC) AS from_latest
    FROM visit_events
)
SELECT session_id,
       array_agg(item_id ORDER BY event_time, file_path, item_id) AS items
FROM good
WHERE from_latest <= {max_items}
GROUP BY session_id
