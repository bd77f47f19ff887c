-- name: policy_changes
-- description: Policy changes in a window: each activation (apply or rollback) with the versions and checksums before and after, the operator and the diff summary as stored.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- A policy_change event is built when the version is activated (its
-- event_time) but may be stored later: when the queue was down it waits on
-- the activation record until the next policy command. Partitions are
-- therefore scanned from a minute before the window to a day after it.
SELECT
    CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
    policy_change.action AS action,
    policy_change.activation AS activation,
    policy_change.from_version AS from_version,
    policy_change.from_checksum AS from_checksum,
    policy_change.to_version AS to_version,
    policy_change.to_checksum AS to_checksum,
    aws.caller_arn AS operator,
    policy_change.summary AS summary,
    event_id
FROM audit_events
WHERE event_type = 'policy_change'
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' DAY, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' DAY, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' DAY))
    AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= :from
    AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to
ORDER BY at, activation, event_id
