-- name: elevated_access
-- description: Break-glass and JIT grant evidence: every request in a window made under a grant or break-glass, with the grant's lifecycle (requested, approved, first used, ended) where recorded.
-- param: from timestamp          Window start (inclusive), UTC
-- param: to timestamp            Window end (exclusive), UTC
-- param: lookback_days integer   How many days before the window to look for the grants' lifecycle events (a grant lasts at most 7 days after approval)
--
-- A request is elevated when any of its events (the authorizer's decision,
-- the proxy's response) records an elevation; its events are grouped by
-- request id and it is placed at its first event. The grant's lifecycle comes
-- from its grant events in [from - lookback_days, to): the earliest
-- requested, approved, used and ending (revoked or expired) event each. A
-- break-glass request has no grant: its justification is the one it carried.
-- Partitions: request events from a minute before the window to an hour after
-- (events are filed under the hour the writer stores them); grant events from
-- lookback_days before.
WITH events AS (
    SELECT
        event_type,
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        principal,
        resource,
        decision,
        outcome,
        elevation,
        "grant" AS grant_details
    FROM audit_events
    WHERE event_type IN ('decision', 'response', 'gateway', 'grant')
        AND dt BETWEEN date_format(date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE), '%Y-%m-%d')
            AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        AND (dt > date_format(date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE), '%Y-%m-%d')
            OR hour >= hour(date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE)))
        AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
            OR hour <= hour(:to + INTERVAL '1' HOUR))
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp)
            >= date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE)
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to + INTERVAL '1' MINUTE
),
requests AS (
    SELECT
        request_id,
        min(at) AS at,
        max(principal.subject) AS subject,
        max(principal.email) AS email,
        max(resource.method) AS method,
        max(resource.path) AS path,
        max(resource.route_id) AS route_id,
        CASE
            WHEN count_if(decision.outcome = 'deny') > 0 THEN 'deny'
            WHEN count_if(decision.outcome = 'error') > 0 THEN 'error'
            WHEN count_if(decision.outcome = 'allow') > 0 THEN 'allow'
        END AS decision,
        coalesce(
            max(outcome.status) FILTER (WHERE event_type = 'gateway'),
            max(outcome.status) FILTER (WHERE event_type = 'response')) AS status,
        count(elevation) AS elevated_events,
        max(elevation.grant_id) AS grant_id,
        coalesce(bool_or(elevation.break_glass), false) AS break_glass,
        max(elevation.justification) AS justification
    FROM events
    WHERE event_type <> 'grant' AND request_id IS NOT NULL
    GROUP BY request_id
),
lifecycle AS (
    SELECT
        grant_details.grant_id AS grant_id,
        max(coalesce(grant_details.requester.email, grant_details.requester.subject)) AS requested_by,
        min(at) FILTER (WHERE grant_details.action = 'requested') AS requested_at,
        min(at) FILTER (WHERE grant_details.action = 'approved') AS approved_at,
        max(grant_details.approver) FILTER (WHERE grant_details.action = 'approved') AS approved_by,
        CAST(from_iso8601_timestamp(max(grant_details.expires_at)
            FILTER (WHERE grant_details.action = 'approved')) AS timestamp) AS expires_at,
        min(at) FILTER (WHERE grant_details.action = 'used') AS first_used_at,
        min(at) FILTER (WHERE grant_details.action IN ('revoked', 'expired')) AS ended_at
    FROM events
    WHERE event_type = 'grant'
        AND grant_details.grant_id IS NOT NULL
        AND grant_details.action <> 'refused'
        AND at < :to
    GROUP BY grant_details.grant_id
)
SELECT
    r.at,
    r.request_id,
    r.subject,
    r.email,
    r.method,
    r.path,
    r.route_id,
    r.decision,
    r.status,
    r.break_glass,
    r.grant_id,
    r.justification,
    l.requested_by,
    l.requested_at,
    l.approved_by,
    l.approved_at,
    l.expires_at,
    l.first_used_at,
    l.ended_at
FROM requests AS r
LEFT JOIN lifecycle AS l ON l.grant_id = r.grant_id
WHERE r.elevated_events > 0 AND r.at >= :from AND r.at < :to
ORDER BY r.at, r.request_id
