-- One row of counts over one run's event rows, read by the same rules as group_sessions.sql (the rows
-- of event_rows.sql in {rows}): the rows read, the rows skipped per reason (one column per reason,
-- named as model_code/data/event_rules.py's BAD_ROW_REASONS with '_' for ' '), the sessions that
-- group_sessions.sql writes (one line each) and the rows of event kinds not read (no bad rows).
-- No column is ever NULL: count() of no rows is 0.
WITH {rows}
SELECT count(*) AS rows_read,
       count(CASE WHEN bad_reason = 'missing_session_id' THEN 1 END) AS missing_session_id,
       count(CASE WHEN bad_reason = 'missing_item_id' THEN 1 END) AS missing_item_id,
       count(CASE WHEN bad_reason = 'bad_time' THEN 1 END) AS bad_time,
       (SELECT count(DISTINCT session_id) FROM visit_events) AS sessions,
       count(CASE WHEN bad_reason = 'other_kind' THEN 1 END) AS other_kinds
FROM checked
