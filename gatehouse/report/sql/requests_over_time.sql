-- name: report_requests_over_time
-- description: Requests per minute of the window, by decision (the report sums minutes into its buckets).
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- A request's events (the authorizer's decision, the proxy's response, API
-- Gateway's access-log line) are grouped by request id, and the request is
-- counted once, at its first event, as the named queries count it: deny if any
-- event denied, else error, else allow; NULL when API Gateway answered alone.
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
WITH events AS (
    SELECT
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        principal,
        resource,
        decision
    FROM audit_events
    WHERE event_type IN ('decision', 'response', 'gateway')
        AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
            AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
            OR hour >= hour(:from - INTERVAL '1' MINUTE))
        AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
            OR hour <= hour(:to + INTERVAL '1' HOUR))
        AND from_iso8601_timestamp(event_time) >= :from - INTERVAL '1' MINUTE
        AND from_iso8601_timestamp(event_time) < :to + INTERVAL '1' MINUTE
),
requests AS (
    SELECT
        request_id,
        min(at) AS at,
        coalesce(max(principal.email), max(principal.subject)) AS principal,
        max(resource.route_id) AS route_id,
        CASE
            WHEN count_if(decision.outcome = 'deny') > 0 THEN 'deny'
            WHEN count_if(decision.outcome = 'error') > 0 THEN 'error'
            WHEN count_if(decision.outcome = 'allow') > 0 THEN 'allow'
        END AS decision
    FROM events
    WHERE request_id IS NOT NULL
    GROUP BY request_id
)
SELECT
    date_trunc('minute', at) AS bucket_start,
    decision,
    count(*) AS requests
FROM requests
WHERE at >= :from AND at < :to
GROUP BY date_trunc('minute', at), decision
ORDER BY bucket_start, decision
