-- name: route_usage
-- description: Per API host and route in a window: requests, decisions, status classes, p50/p95 latency and bytes (requests API Gateway answered alone under route NULL).
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- A request's events are grouped by request id; it is placed at its first
-- event and counted once. Its status, latency and bytes out are API
-- Gateway's (what the client saw) when its access-log line is there, else
-- the proxy's; bytes in are the proxy's. Its decision is deny if any event
-- denied, else error, else allow, else none (no Gatehouse decision: API
-- Gateway answered alone). Latency percentiles are approx_percentile, as
-- Athena computes them. Partitions: from a minute before the window to an
-- hour after (events are filed under the hour the writer stores them).
WITH events AS (
    SELECT
        event_type,
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        resource,
        decision,
        outcome
    FROM audit_events
    WHERE event_type IN ('decision', 'response', 'gateway')
        AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
            AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
            OR hour >= hour(:from - INTERVAL '1' MINUTE))
        AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
            OR hour <= hour(:to + INTERVAL '1' HOUR))
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= :from - INTERVAL '1' MINUTE
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to + INTERVAL '1' MINUTE
),
requests AS (
    SELECT
        request_id,
        min(at) AS at,
        max(resource.host) AS host,
        max(resource.route_id) AS route_id,
        CASE
            WHEN count_if(decision.outcome = 'deny') > 0 THEN 'deny'
            WHEN count_if(decision.outcome = 'error') > 0 THEN 'error'
            WHEN count_if(decision.outcome = 'allow') > 0 THEN 'allow'
        END AS decision,
        coalesce(
            max(outcome.status) FILTER (WHERE event_type = 'gateway'),
            max(outcome.status) FILTER (WHERE event_type = 'response')) AS status,
        coalesce(
            max(CAST(outcome.latency_ms AS double)) FILTER (WHERE event_type = 'gateway'),
            max(CAST(outcome.latency_ms AS double)) FILTER (WHERE event_type = 'response')) AS latency_ms,
        max(outcome.bytes_in) FILTER (WHERE event_type = 'response') AS bytes_in,
        coalesce(
            max(outcome.bytes_out) FILTER (WHERE event_type = 'gateway'),
            max(outcome.bytes_out) FILTER (WHERE event_type = 'response')) AS bytes_out
    FROM events
    WHERE request_id IS NOT NULL
    GROUP BY request_id
)
SELECT
    host,
    route_id,
    count(*) AS requests,
    count_if(decision = 'allow') AS allowed,
    count_if(decision = 'deny') AS denied,
    count_if(decision = 'error') AS errors,
    count_if(decision IS NULL) AS gateway_only,
    count_if(status BETWEEN 200 AND 299) AS status_2xx,
    count_if(status BETWEEN 300 AND 399) AS status_3xx,
    count_if(status BETWEEN 400 AND 499) AS status_4xx,
    count_if(status BETWEEN 500 AND 599) AS status_5xx,
    approx_percentile(latency_ms, 0.5) AS latency_p50_ms,
    approx_percentile(latency_ms, 0.95) AS latency_p95_ms,
    coalesce(sum(bytes_in), 0) AS bytes_in,
    coalesce(sum(bytes_out), 0) AS bytes_out
FROM requests
WHERE at >= :from AND at < :to
GROUP BY host, route_id
ORDER BY requests DESC, host NULLS LAST, route_id NULLS LAST
