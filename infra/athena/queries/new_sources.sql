-- name: new_sources
-- description: Source IPs and user agents each principal used in a window but not in the lookback_days before it.
-- param: from timestamp          Window start (inclusive), UTC
-- param: to timestamp            Window end (exclusive), UTC
-- param: lookback_days integer   Days before the window that count as known history
--
-- Every event that names a principal and a source counts (requests,
-- access-log lines, grant API calls). A principal is its subject (API
-- Gateway's log knows no more of it). A value is new when the principal's
-- events in [from - lookback_days, from) never had it; principal_is_new says
-- the principal had no event there at all, and days_since_principal_seen how
-- many whole days (truncated, as Athena's date_diff counts) lie between their
-- last event there and the value's first use. Partitions: from lookback_days
-- (and a minute) before the window to an hour after (events are filed under
-- the hour the writer stores them).
WITH events AS (
    SELECT
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        principal.subject AS subject,
        principal.email AS email,
        source.ip AS source_ip,
        source.user_agent AS user_agent
    FROM audit_events
    WHERE principal.subject IS NOT NULL
        AND dt BETWEEN date_format(date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE), '%Y-%m-%d')
            AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        AND (dt > date_format(date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE), '%Y-%m-%d')
            OR hour >= hour(date_add('day', -:lookback_days, :from - INTERVAL '1' MINUTE)))
        AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
            OR hour <= hour(:to + INTERVAL '1' HOUR))
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= date_add('day', -:lookback_days, :from)
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to
),
sources AS (
    SELECT request_id, at, subject, email, 'source_ip' AS kind, source_ip AS value
    FROM events
    WHERE source_ip IS NOT NULL
    UNION ALL
    SELECT request_id, at, subject, email, 'user_agent' AS kind, user_agent AS value
    FROM events
    WHERE user_agent IS NOT NULL
),
in_window AS (
    SELECT
        subject,
        kind,
        value,
        max(email) AS email,
        min(at) AS first_seen,
        max(at) AS last_seen,
        count(DISTINCT request_id) AS requests
    FROM sources
    WHERE at >= :from
    GROUP BY subject, kind, value
),
known AS (
    SELECT DISTINCT subject, kind, value
    FROM sources
    WHERE at < :from
),
known_principals AS (
    SELECT subject, max(at) AS last_seen
    FROM sources
    WHERE at < :from
    GROUP BY subject
)
SELECT
    w.subject,
    w.email,
    w.kind,
    w.value,
    w.first_seen,
    w.last_seen,
    w.requests,
    p.subject IS NULL AS principal_is_new,
    date_diff('day', p.last_seen, w.first_seen) AS days_since_principal_seen
FROM in_window AS w
LEFT JOIN known AS k ON k.subject = w.subject AND k.kind = w.kind AND k.value = w.value
LEFT JOIN known_principals AS p ON p.subject = w.subject
WHERE k.subject IS NULL
ORDER BY w.subject, w.kind, w.first_seen, w.value
