-- name: principal_activity
-- description: Everything a principal did in a window: each request (its decision, reasons and status) and each grant action they took, in time order.
-- param: principal varchar   The principal's email (any case) or subject (exact)
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- A request's events (decision, response, access-log line) are grouped by
-- request id; it is the principal's when any of its events names them. API
-- Gateway's log knows only the subject, so a request answered by API Gateway
-- alone (such as a cached deny) is found by subject, not by email. The
-- request's decision is deny if any event denied, else error, else allow
-- (NULL: no Gatehouse decision), its reasons those of the events that decided
-- so, its status what the client got (API Gateway's, else the proxy's).
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
WITH events AS (
    SELECT
        event_type,
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        action,
        principal,
        source,
        resource,
        decision,
        outcome,
        elevation,
        "grant" AS grant_details
    FROM audit_events
    WHERE event_type IN ('decision', 'response', 'gateway', 'grant')
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
        max(action) AS action,
        max(resource.method) AS method,
        max(resource.host) AS host,
        max(resource.path) AS path,
        max(resource.route_id) AS route_id,
        count_if(decision.outcome = 'deny') AS denies,
        count_if(decision.outcome = 'error') AS errors,
        count_if(decision.outcome = 'allow') AS allows,
        array_sort(array_distinct(flatten(
            array_agg(decision.reasons) FILTER (WHERE decision.outcome = 'deny')))) AS deny_reasons,
        array_sort(array_distinct(flatten(
            array_agg(decision.reasons) FILTER (WHERE decision.outcome = 'error')))) AS error_reasons,
        array_sort(array_distinct(flatten(
            array_agg(decision.reasons) FILTER (WHERE decision.outcome = 'allow')))) AS allow_reasons,
        coalesce(
            max(outcome.status) FILTER (WHERE event_type = 'gateway'),
            max(outcome.status) FILTER (WHERE event_type = 'response')) AS status,
        max(source.ip) AS source_ip,
        max(source.user_agent) AS user_agent,
        max(elevation.grant_id) AS grant_id,
        coalesce(bool_or(elevation.break_glass), false) AS break_glass
    FROM events
    WHERE event_type <> 'grant' AND request_id IS NOT NULL
    GROUP BY request_id
),
mine AS (
    SELECT
        at,
        'request' AS kind,
        request_id,
        action,
        method,
        host,
        path,
        route_id,
        CASE
            WHEN denies > 0 THEN 'deny'
            WHEN errors > 0 THEN 'error'
            WHEN allows > 0 THEN 'allow'
        END AS decision,
        CASE
            WHEN denies > 0 THEN deny_reasons
            WHEN errors > 0 THEN error_reasons
            ELSE allow_reasons
        END AS reasons,
        status,
        source_ip,
        user_agent,
        grant_id,
        break_glass
    FROM requests
    WHERE lower(email) = lower(:principal) OR subject = :principal
    UNION ALL
    SELECT
        at,
        'grant' AS kind,
        request_id,
        grant_details.action AS action,
        NULL AS method,
        NULL AS host,
        NULL AS path,
        NULL AS route_id,
        NULL AS decision,
        NULL AS reasons,
        NULL AS status,
        source.ip AS source_ip,
        source.user_agent AS user_agent,
        grant_details.grant_id AS grant_id,
        false AS break_glass
    FROM events
    WHERE event_type = 'grant'
        AND (lower(principal.email) = lower(:principal) OR principal.subject = :principal)
)
SELECT *
FROM mine
WHERE at >= :from AND at < :to
ORDER BY at, kind, request_id
