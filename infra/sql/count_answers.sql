-- One row of counts over one run's Batch Transform output (sessions/scored/<run>/*.out: one JSON line
-- per session, the container's answer, see inference/contracts.py): the lines, the sessions scored
-- (no "error"), those answered with the popular items ("fallback": true) and the lines that carry an
-- "error" (a session the container refused). Only the .out files: summary.json is no answer.
--   {table}  the answers table (a Glue table over sessions/scored/<run>/, partition column "run")
--   {run}    the run, a string literal
SELECT count(*) AS answer_lines,
       count(CASE WHEN error IS NULL THEN 1 END) AS sessions_scored,
       count(CASE WHEN fallback THEN 1 END) AS fallback_sessions,
       count(error) AS error_lines
FROM {table}
WHERE run = {run} AND "$path" LIKE '%.out'
