-- name: report_sensitive_access
-- description: Allowed decisions on routes marked sensitive, per principal and route.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
SELECT
    coalesce(principal.email, principal.subject) AS principal,
    resource.route_id AS route,
    count(*) AS allowed,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen
FROM audit_events
WHERE event_type = 'decision'
    AND decision.outcome = 'allow'
    AND resource.sensitive
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND from_iso8601_timestamp(event_time) >= :from
    AND from_iso8601_timestamp(event_time) < :to
GROUP BY coalesce(principal.email, principal.subject), resource.route_id
ORDER BY allowed DESC, principal, route
