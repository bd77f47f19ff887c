-- name: report_grant_events
-- description: Grant lifecycle events: requested, approved, denied, revoked, used, expired, refused.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
SELECT
    event_time,
    "grant".action AS action,
    "grant".grant_id AS grant_id,
    coalesce("grant".requester.email, "grant".requester.subject) AS requester,
    coalesce(principal.email, principal.subject, aws.caller_arn) AS actor,
    "grant".approver AS approver,
    "grant".justification AS justification,
    array_join("grant".routes, ' ') AS routes,
    "grant".expires_at AS expires_at
FROM audit_events
WHERE event_type = 'grant'
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND from_iso8601_timestamp(event_time) >= :from
    AND from_iso8601_timestamp(event_time) < :to
ORDER BY event_time, event_id
