-- name: accesses_by_path
-- description: Who accessed a route or a path in a window: per principal, requests, their decisions, first and last time (requests API Gateway answered alone included).
-- param: route_id varchar      Route id to match; empty matches any route
-- param: path_prefix varchar   Path prefix to match on whole segments (/api matches /api and /api/x, not /apix); empty matches any path
-- param: from timestamp        Window start (inclusive), UTC
-- param: to timestamp          Window end (exclusive), UTC
--
-- One request has up to three events (the authorizer's decision, the proxy's
-- response, API Gateway's access-log line): they are grouped by request id and
-- the request is counted once, at the time of its first event. Its decision is
-- deny if any of its events denied, else error, else allow; "gateway_only" counts
-- requests with no Gatehouse decision at all (refused or answered by API Gateway
-- before the authorizer, such as a missing token). The route is the one the
-- policy matched (gateway events carry none). A principal is its subject (API
-- Gateway's log knows no more of it); its issuer and email come from the
-- Gatehouse events. Partitions are the hours the writer stored events in, at
-- or shortly after their event_time: the scan runs from a minute before the
-- window (for requests straddling its start) to an hour after.
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
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= :from - INTERVAL '1' MINUTE
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to + INTERVAL '1' MINUTE
),
requests AS (
    SELECT
        request_id,
        min(at) AS at,
        max(principal.subject) AS subject,
        max(principal.issuer) AS issuer,
        max(principal.email) AS email,
        max(resource.route_id) AS route_id,
        max(resource.path) AS path,
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
    subject,
    max(issuer) AS issuer,
    max(email) AS email,
    count(*) AS requests,
    count_if(decision = 'allow') AS allowed,
    count_if(decision = 'deny') AS denied,
    count_if(decision = 'error') AS errors,
    count_if(decision IS NULL) AS gateway_only,
    min(at) AS first_seen,
    max(at) AS last_seen
FROM requests
WHERE at >= :from
    AND at < :to
    AND (:route_id = '' OR route_id = :route_id)
    AND (:path_prefix = ''
        OR path = :path_prefix
        OR starts_with(path, CASE WHEN :path_prefix LIKE '%/' THEN :path_prefix ELSE :path_prefix || '/' END))
GROUP BY subject
ORDER BY requests DESC, subject NULLS LAST
