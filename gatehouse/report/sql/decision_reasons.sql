-- name: report_decision_reasons
-- description: Decision events per outcome and reason codes.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- Partitions: from a minute before the window to an hour after (the writer
-- files events under the hour it stores them, shortly after they happen).
SELECT
    decision.outcome AS outcome,
    array_join(decision.reasons, ',') AS reasons,
    count(*) AS decisions
FROM audit_events
WHERE event_type = 'decision'
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND from_iso8601_timestamp(event_time) >= :from
    AND from_iso8601_timestamp(event_time) < :to
GROUP BY decision.outcome, array_join(decision.reasons, ',')
ORDER BY decisions DESC, outcome, reasons
