-- name: session_story
-- description: One browser session's whole story, oldest first: its session events (sign-in, refreshes, sign-out, revocation) and every decision and response made under it.
-- param: session_id varchar  Gatehouse's browser session id (session.session_id)
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- A session event names the session as session.session_id; a decision or
-- response made under it names it as principal.browser_session_id. For a
-- session event, action is what happened to the session (signed_in,
-- refreshed, revoked, ...) and reason why a step failed or the session was
-- revoked; for a decision or response, action is the decision's outcome and
-- reason its reason codes. Status is what the proxy answered (response
-- events). Events of the same millisecond are in ledger order. A window
-- covering the session's lifetime tells all of it; partitions are scanned
-- from a minute before the window to an hour after (the writer files events
-- under the hour it stores them, shortly after they happen).
SELECT
    CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
    event_type,
    CASE
        WHEN event_type = 'session' THEN "session".action
        ELSE decision.outcome
    END AS action,
    CASE
        WHEN event_type = 'session' THEN "session".reason
        ELSE array_join(decision.reasons, ',')
    END AS reason,
    resource.method AS method,
    resource.path AS path,
    outcome.status AS status,
    resource.route_id AS route_id,
    request.id AS request_id,
    coalesce(principal.email, principal.subject) AS principal,
    "session".idp AS idp,
    "session".revoked_by AS revoked_by,
    aws.caller_arn AS operator,
    source.ip AS source_ip,
    event_id
FROM audit_events
WHERE (
        (event_type = 'session' AND "session".session_id = :session_id)
        OR (event_type IN ('decision', 'response')
            AND principal.browser_session_id = :session_id)
    )
    AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
    AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
        OR hour >= hour(:from - INTERVAL '1' MINUTE))
    AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        OR hour <= hour(:to + INTERVAL '1' HOUR))
    AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= :from
    AND CAST(from_iso8601_timestamp(event_time) AS timestamp) < :to
ORDER BY at, ledger.sequence, event_id
