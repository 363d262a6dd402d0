-- Which answers earned the clicks: the endpoint's captured answers joined to what the same session did
-- next. Athena (Trino) SQL; infra/attribution.py fills the {placeholders}; tests/infra/sql/test_attribute_answers.py
-- runs it on DuckDB.
--
-- The captures table reads SageMaker's data capture files (one JSON object per line, captureData.endpointInput
-- and .endpointOutput each with observedContentType, mode, data and encoding: JSON for the JSON content
-- types the endpoint lists, else BASE64; eventMetadata.eventId and .inferenceTime), partitioned by the
-- production variant and the day (yyyy/MM/dd) of the S3 layout <prefix>/<endpoint>/<variant>/yyyy/mm/dd/hh/.
-- An answer is one session's recommendations in a captured application/json response: the single form
-- {"items": ...} -> {"recommendations": ...} (no session id: counted, never attributed) or each result of
-- the sessions form, whose session_id the response echoes. The events are the runs' good rows read by
-- the rules of event_rows.sql (the same reading as the raw-events grouping); an answer's later events are
-- its session's events after the answer's inferenceTime and at most {window} seconds after it.
--
-- One row per (day, variant, model_version), plus one per (variant, model_version) with day NULL over
-- the whole period (GROUPING SETS): counts only, the ratios are infra/attribution.py's.
--   answers              session answers captured (JSON responses with recommendations)
--   attributable         answers that name a session
--   followed             attributable answers whose session had an event within the window
--   hits                 followed answers whose next event's item was among the recommendations
--   rank_sum             the sum of those items' ranks (1 = first)
--   reciprocal_rank_sum  the sum of 1 / rank over the hits
--   clicks               events within the window on an item the answer recommended
--   sessions             distinct sessions answered
--   requested_items      items the requests named; unknown_items: those the model did not know
--   recommended_items    distinct items recommended; catalogue_items: distinct items in the events of
--                        the same day (of the period, for the period's rows)
-- Placeholders:
--   {rows}        the common table expressions of event_rows.sql over the runs to read ("checked")
--   {captures}    the captures table (columns captureData, eventMetadata; partitions variant, day)
--   {first_day} {last_day}   the period's first and last day, 'yyyy/MM/dd' literals (partition pruning)
--   {start} {end} the period in Unix seconds, DOUBLE literals: answers at start <= t < end
--   {window}      the attribution window in seconds, a DOUBLE literal
WITH {rows},
good_events AS (
    SELECT session_id, item_id, file_path, event_time
    FROM checked
    WHERE bad_reason IS NULL AND event_time >= {start} AND event_time < {end} + {window}
),
captured AS (
    SELECT variant,
           eventMetadata.eventId AS event_id,
           eventMetadata.inferenceTime AS inference_time,
           CASE WHEN captureData.endpointInput.encoding = 'BASE64'
                THEN from_utf8(from_base64(captureData.endpointInput.data))
                ELSE captureData.endpointInput.data END AS request_text,
           CASE WHEN captureData.endpointOutput.encoding = 'BASE64'
                THEN from_utf8(from_base64(captureData.endpointOutput.data))
                ELSE captureData.endpointOutput.data END AS response_text
    FROM {captures}
    WHERE day BETWEEN {first_day} AND {last_day}
      AND captureData.endpointOutput.observedContentType LIKE 'application/json%'
),
responses AS (
    SELECT variant, event_id,
           substr(inference_time, 1, 10) AS day,
           to_unixtime(from_iso8601_timestamp(inference_time)) AS answered_at,
           json_extract_scalar(json_parse(response_text), '$.model_version') AS model_version,
           CAST(COALESCE(json_extract(json_parse(request_text), '$.sessions'),
                         json_parse('[' || request_text || ']')) AS ARRAY(JSON)) AS requests,
           CAST(COALESCE(json_extract(json_parse(response_text), '$.results'),
                         json_parse('[' || response_text || ']')) AS ARRAY(JSON)) AS results
    FROM captured
),
answers AS (
    SELECT r.variant, r.day, r.answered_at, r.model_version,
           r.event_id || '/' || CAST(a.position AS VARCHAR) AS answer_id,
           json_extract_scalar(a.result, '$.session_id') AS session_id,
           json_extract(a.result, '$.recommendations') AS recommendations,
           CAST(json_extract_scalar(a.result, '$.unknown_items') AS BIGINT) AS unknown_items,
           json_array_length(json_extract(element_at(r.requests, a.position), '$.items')) AS requested_items
    FROM responses AS r
    CROSS JOIN UNNEST(r.results) WITH ORDINALITY AS a (result, position)
    WHERE r.answered_at >= {start} AND r.answered_at < {end}
      AND json_extract(a.result, '$.recommendations') IS NOT NULL
),
recommended AS (
    SELECT a.answer_id, json_extract_scalar(rec.recommendation, '$.item_id') AS item_id, min(rec.rank) AS rank
    FROM answers AS a
    CROSS JOIN UNNEST(CAST(a.recommendations AS ARRAY(JSON))) WITH ORDINALITY AS rec (recommendation, rank)
    GROUP BY a.answer_id, json_extract_scalar(rec.recommendation, '$.item_id')
),
later AS (
    SELECT a.answer_id, e.item_id,
           row_number() OVER (PARTITION BY a.answer_id ORDER BY e.event_time, e.file_path, e.item_id) AS nth
    FROM answers AS a
    JOIN good_events AS e
      ON e.session_id = a.session_id AND e.event_time > a.answered_at AND e.event_time <= a.answered_at + {window}
),
outcomes AS (
    SELECT l.answer_id,
           max(CASE WHEN l.nth = 1 THEN r.rank END) AS next_rank,
           count(r.rank) AS clicks
    FROM later AS l
    LEFT JOIN recommended AS r ON r.answer_id = l.answer_id AND r.item_id = l.item_id
    GROUP BY l.answer_id
),
scored AS (
    SELECT a.day, a.variant, a.model_version, a.answer_id, a.session_id, a.requested_items, a.unknown_items,
           o.answer_id IS NOT NULL AS followed, o.next_rank, COALESCE(o.clicks, 0) AS clicks
    FROM answers AS a
    LEFT JOIN outcomes AS o ON o.answer_id = a.answer_id
),
counts AS (
    SELECT day, variant, model_version,
           count(*) AS answers,
           count(session_id) AS attributable,
           sum(CASE WHEN followed THEN 1 ELSE 0 END) AS followed,
           count(next_rank) AS hits,
           COALESCE(sum(next_rank), 0) AS rank_sum,
           COALESCE(sum(1E0 / next_rank), 0E0) AS reciprocal_rank_sum,
           sum(clicks) AS clicks,
           count(DISTINCT session_id) AS sessions,
           COALESCE(sum(requested_items), 0) AS requested_items,
           COALESCE(sum(unknown_items), 0) AS unknown_items
    FROM scored
    GROUP BY GROUPING SETS ((day, variant, model_version), (variant, model_version))
),
coverage AS (
    SELECT a.day, a.variant, a.model_version, count(DISTINCT r.item_id) AS recommended_items
    FROM answers AS a
    JOIN recommended AS r ON r.answer_id = a.answer_id
    GROUP BY GROUPING SETS ((a.day, a.variant, a.model_version), (a.variant, a.model_version))
),
event_days AS (
    SELECT substr(CAST(from_unixtime(event_time) AS VARCHAR), 1, 10) AS day, item_id
    FROM good_events
    WHERE event_time < {end}
),
catalogue AS (
    SELECT day, count(DISTINCT item_id) AS catalogue_items
    FROM event_days
    GROUP BY GROUPING SETS ((day), ())
)
SELECT c.day, c.variant, c.model_version, c.answers, c.attributable, c.followed, c.hits, c.rank_sum,
       c.reciprocal_rank_sum, c.clicks, c.sessions, c.requested_items, c.unknown_items,
       COALESCE(v.recommended_items, 0) AS recommended_items, COALESCE(k.catalogue_items, 0) AS catalogue_items
FROM counts AS c
LEFT JOIN coverage AS v
  ON v.day IS NOT DISTINCT FROM c.day AND v.variant = c.variant
 AND v.model_version IS NOT DISTINCT FROM c.model_version
LEFT JOIN catalogue AS k ON k.day IS NOT DISTINCT FROM c.day
