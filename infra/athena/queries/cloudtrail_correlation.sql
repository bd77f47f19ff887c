-- name: cloudtrail_correlation
-- description: AWS actions joined to the gateway requests that caused them: each request of the window with an AWS upstream, and every CloudTrail record its role session made for it.
-- param: from timestamp      Window start (inclusive), UTC
-- param: to timestamp        Window end (exclusive), UTC
--
-- The proxy calls an AWS upstream with a role session per principal (STS
-- SourceIdentity = the principal) and appends gatehouse/<request id> to the
-- User-Agent of every signed call. A CloudTrail record belongs to a request
-- when it was made with the request's session (userIdentity.accessKeyId =
-- aws.access_key_id) and its userAgent's last gatehouse/ mark names the request
-- (a client-sent mark earlier in the agent cannot claim another request).
-- Requests without a matching record are listed with NULL trail columns
-- (CloudTrail had not delivered it yet, or the call never reached AWS).
-- source_identity_matches compares CloudTrail's sourceIdentity with ours.
-- Audit partitions: a minute before the window to an hour after; CloudTrail
-- partitions (days) from the window start to an hour after its end.
WITH events AS (
    SELECT
        request.id AS request_id,
        CAST(from_iso8601_timestamp(event_time) AS timestamp) AS at,
        principal,
        resource,
        aws
    FROM audit_events
    WHERE event_type IN ('decision', 'response', 'gateway')
        AND dt BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
            AND date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
        AND (dt > date_format(:from - INTERVAL '1' MINUTE, '%Y-%m-%d')
            OR hour >= hour(:from - INTERVAL '1' MINUTE))
        AND (dt < date_format(:to + INTERVAL '1' HOUR, '%Y-%m-%d')
            OR hour <= hour(:to + INTERVAL '1' HOUR))
        AND CAST(from_iso8601_timestamp(event_time) AS timestamp) >= :from - INTERVAL '1' MINUTE
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
        max(aws.role_arn) AS role_arn,
        max(aws.session_name) AS session_name,
        max(aws.source_identity) AS source_identity,
        max(aws.access_key_id) AS access_key_id
    FROM events
    WHERE request_id IS NOT NULL
    GROUP BY request_id
),
trail AS (
    SELECT
        CAST(from_iso8601_timestamp(eventtime) AS timestamp) AS at,
        eventsource,
        eventname,
        awsregion,
        errorcode,
        eventid,
        requestid,
        json_extract_scalar(requestparameters, '$.path') AS request_path,
        useridentity.accesskeyid AS access_key_id,
        useridentity.sessioncontext.sourceidentity AS source_identity,
        element_at(split(useragent, 'gatehouse/'), -1) AS marked_request_id
    FROM cloudtrail_logs
    WHERE "timestamp" BETWEEN date_format(:from - INTERVAL '1' MINUTE, '%Y/%m/%d')
            AND date_format(:to + INTERVAL '1' HOUR, '%Y/%m/%d')
        AND strpos(useragent, 'gatehouse/') > 0
        AND CAST(from_iso8601_timestamp(eventtime) AS timestamp) >= :from - INTERVAL '1' MINUTE
        AND CAST(from_iso8601_timestamp(eventtime) AS timestamp) < :to + INTERVAL '1' HOUR
)
SELECT
    r.at,
    r.request_id,
    r.subject,
    r.email,
    r.method,
    r.path,
    r.route_id,
    r.role_arn,
    r.session_name,
    r.source_identity,
    r.access_key_id,
    t.at AS aws_at,
    t.eventsource AS aws_event_source,
    t.eventname AS aws_event_name,
    t.awsregion AS aws_region,
    t.request_path AS aws_request_path,
    t.errorcode AS aws_error_code,
    t.requestid AS aws_request_id,
    t.eventid AS aws_event_id,
    t.source_identity = r.source_identity AS source_identity_matches
FROM requests AS r
LEFT JOIN trail AS t
    ON t.access_key_id = r.access_key_id AND t.marked_request_id = r.request_id
WHERE r.role_arn IS NOT NULL AND r.at >= :from AND r.at < :to
ORDER BY r.at, r.request_id, aws_at, aws_event_id
