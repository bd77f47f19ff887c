-- name: report_session_events
-- description: Browser session events per action, reason and revoker: sign-ins, failed sign-ins, refreshes, sign-outs, revocations.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
SELECT
    "session".action AS action,
    "session".reason AS reason,
    "session".revoked_by AS revoked_by,
    count(*) AS events
FROM audit_events
WHERE event_type = 'session'
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND from_iso8601_timestamp(event_time) >= :from
    AND from_iso8601_timestamp(event_time) < :to
GROUP BY "session".action, "session".reason, "session".revoked_by
ORDER BY events DESC, action, reason NULLS FIRST, revoked_by NULLS FIRST
