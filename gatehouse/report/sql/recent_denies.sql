-- name: report_recent_denies
-- description: The newest denied decisions (up to 10,000), with source, request and reasons.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
SELECT
    event_time,
    coalesce(principal.email, principal.subject) AS principal,
    source.ip AS source_ip,
    source.user_agent AS user_agent,
    resource.method AS method,
    resource.path AS path,
    resource.route_id AS route,
    array_join(decision.reasons, ',') AS reasons,
    decision.detail AS detail,
    request.id AS request_id
FROM audit_events
WHERE event_type = 'decision'
    AND decision.outcome = 'deny'
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND from_iso8601_timestamp(event_time) >= :from
    AND from_iso8601_timestamp(event_time) < :to
ORDER BY event_time DESC, event_id DESC
LIMIT 10000
