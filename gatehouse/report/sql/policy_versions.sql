-- name: report_policy_versions
-- description: The policy versions (and checksums) that decided requests in the window.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
SELECT
    decision.policy_version AS policy_version,
    decision.policy_checksum AS policy_checksum,
    count(*) AS decisions,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen
FROM audit_events
WHERE event_type = 'decision'
    AND decision.policy_version IS NOT NULL
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND from_iso8601_timestamp(event_time) >= :from
    AND from_iso8601_timestamp(event_time) < :to
GROUP BY decision.policy_version, decision.policy_checksum
ORDER BY first_seen, policy_version
