-- name: denies_with_reasons
-- description: Denied requests in a window, counted per reason code, principal and route; refusals by API Gateway alone count under gateway:<response type>.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- A request's events are grouped by request id and the request is placed at
-- its first event. It is denied if any of its events denied (deny beats
-- allow); its reasons are those of its deny events, each counted once per
-- request (the authorizer and the proxy often both record the same one). A
-- request with no Gatehouse decision that API Gateway answered 4xx (a missing
-- token, a throttle, a WAF block, a cached deny) counts as denied for reason
-- gateway:<errorResponseType>. Partitions: from a minute before the window to
-- an hour after (events are filed under the hour the writer stores them).
WITH events AS (
    SELECT
        event_type,
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        principal,
        resource,
        decision,
        outcome,
        gateway
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
        max(principal.email) AS email,
        max(resource.route_id) AS route_id,
        count(decision) AS decisions,
        flatten(array_agg(decision.reasons) FILTER (WHERE decision.outcome = 'deny')) AS deny_reasons,
        max(outcome.status) FILTER (WHERE event_type = 'gateway') AS gateway_status,
        max(gateway.response_type) AS response_type
    FROM events
    WHERE request_id IS NOT NULL
    GROUP BY request_id
),
denied AS (
    SELECT request_id, at, subject, email, route_id, deny_reasons AS reasons
    FROM requests
    WHERE deny_reasons IS NOT NULL
    UNION ALL
    SELECT
        request_id, at, subject, email, route_id,
        ARRAY['gateway:' || coalesce(response_type, 'status_' || CAST(gateway_status AS varchar))]
    FROM requests
    WHERE decisions = 0 AND gateway_status BETWEEN 400 AND 499
)
SELECT
    reason,
    subject,
    max(email) AS email,
    route_id,
    count(DISTINCT request_id) AS requests,
    min(at) AS first_seen,
    max(at) AS last_seen
FROM denied
CROSS JOIN UNNEST(reasons) AS r (reason)
WHERE at >= :from AND at < :to
GROUP BY reason, subject, route_id
ORDER BY requests DESC, reason, subject NULLS LAST, route_id NULLS LAST
