-- The audit trail: one JSON object per line in the ledger's NDJSON.gz objects
-- (chalicelib/audit/schema.py build_event / build_admin_event /
-- build_session_event, chalicelib/audit/gateway_events.py gateway_event; the
-- writer appends "ledger":{"sequence":N}). Columns are the event's top-level
-- fields under their own names; nested sections are structs with the same
-- field names.
-- policy_change.summary varies in shape: the OpenX SerDe hands a nested
-- object declared string over as its JSON text (use json_extract on it).
-- Partitions are the hour the writer stored the object (projection: no
-- partition maintenance). ${AuditBucket} is filled in by the stack / the
-- local engine; ${dt} and ${hour} belong to partition projection.
CREATE EXTERNAL TABLE audit_events (
    schema_version int,
    event_id string,
    event_type string,
    event_time string,
    stage string,
    request struct<
        id: string,
        extended_id: string,
        lambda_request_id: string,
        trace_id: string,
        decision_id: string>,
    principal struct<
        issuer: string,
        subject: string,
        email: string,
        groups: array<string>,
        amr: array<string>,
        auth_time: bigint,
        client_id: string,
        session_id: string,
        token_id: string,
        token_expires_at: bigint,
        browser_session_id: string>,
    source struct<
        ip: string,
        user_agent: string>,
    resource struct<
        host: string,
        method: string,
        path: string,
        query: string,
        route_id: string,
        upstream: string,
        sensitive: boolean>,
    action string,
    decision struct<
        outcome: string,
        reasons: array<string>,
        matched_rules: array<string>,
        policy_version: bigint,
        policy_checksum: string,
        decided_by: string,
        cached: boolean,
        detail: string>,
    outcome struct<
        status: int,
        bytes_in: bigint,
        bytes_out: bigint,
        latency_ms: double,
        upstream_latency_ms: double,
        error: string>,
    elevation struct<
        grant_id: string,
        approver: string,
        justification: string,
        break_glass: boolean>,
    aws struct<
        caller_arn: string,
        role_arn: string,
        session_name: string,
        source_identity: string,
        access_key_id: string,
        region: string,
        service: string>,
    anomalies array<string>,
    policy_change struct<
        action: string,
        activation: bigint,
        from_version: bigint,
        from_checksum: string,
        to_version: bigint,
        to_checksum: string,
        summary: string,
        archive: struct<
            version: string,
            activation: string>,
        reason: string>,
    `grant` struct<
        action: string,
        grant_id: string,
        requester: struct<
            issuer: string,
            subject: string,
            email: string>,
        routes: array<string>,
        actions: array<string>,
        paths: array<string>,
        duration_seconds: bigint,
        justification: string,
        approver: string,
        expires_at: string,
        ended_at: string,
        decision_id: string,
        reason: string,
        attempted: string,
        status: int>,
    gateway struct<
        response_type: string,
        error_message: string,
        authorizer_status: int,
        authorizer_error: string,
        authorizer_latency_ms: bigint,
        authorizer_integration_status: int,
        integration_status: int,
        integration_latency_ms: bigint,
        waf_response_code: string,
        resource_path: string,
        policy_version: bigint,
        served_by: string,
        cached_authorizer: boolean>,
    signing_key struct<
        action: string,
        kid: string,
        certified_by: string,
        not_before: bigint,
        not_after: bigint,
        certificate_sha256: string,
        replaces: string>,
    session struct<
        action: string,
        session_id: string,
        idp: string,
        reason: string,
        revoked_by: string,
        expires_at: bigint,
        detail: string>,
    alert struct<
        alert_id: string,
        rule: string,
        kind: string,
        severity: string,
        subject: string,
        observed: double,
        threshold: int,
        window_from: string,
        window_to: string,
        event_ids: array<string>,
        query: string,
        detail: string>,
    ledger struct<
        sequence: bigint>
)
COMMENT 'Gatehouse audit events (NDJSON.gz ledger objects), partitioned by the hour stored'
PARTITIONED BY (dt string, hour int)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'false')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://${AuditBucket}/audit/v1/events/'
TBLPROPERTIES (
    'projection.enabled' = 'true',
    'projection.dt.type' = 'date',
    'projection.dt.format' = 'yyyy-MM-dd',
    'projection.dt.range' = 'NOW-3YEARS,NOW+1DAYS',
    'projection.dt.interval' = '1',
    'projection.dt.interval.unit' = 'DAYS',
    'projection.hour.type' = 'integer',
    'projection.hour.range' = '0,23',
    'projection.hour.digits' = '2',
    'storage.location.template' = 's3://${AuditBucket}/audit/v1/events/dt=${dt}/hour=${hour}/',
    'classification' = 'json',
    'has_encrypted_data' = 'false'
)
