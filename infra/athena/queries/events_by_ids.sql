-- name: events_by_ids
-- description: The events an alert names: every event whose id is in a comma-separated list, in a window, oldest first (gatehouse alerts explain prints this command).
-- param: ids varchar        Event ids, comma-separated (an alert's event_ids)
-- param: from timestamp     Window start (inclusive), UTC
-- param: to timestamp       Window end (exclusive), UTC
--
-- Partitions are the hours the writer stored events in, at or shortly after
-- their event_time: the scan runs from the window's start to an hour after
-- its end.
SELECT
    event_id,
    event_type,
    event_time,
    principal.subject AS subject,
    principal.token_id AS token_id,
    source.ip AS source_ip,
    resource.method AS method,
    resource.path AS path,
    resource.route_id AS route_id,
    decision.outcome AS outcome,
    array_join(decision.reasons, ',') AS reasons,
    elevation.break_glass AS break_glass,
    ledger.sequence AS sequence
FROM audit_events
WHERE dt BETWEEN date_format(:from, '%Y-%m-%d') AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from, '%Y-%m-%d') OR hour >= hour(:from))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d') OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= :from
    AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to
    AND strpos(',' || :ids || ',', ',' || event_id || ',') > 0
ORDER BY ledger.sequence
