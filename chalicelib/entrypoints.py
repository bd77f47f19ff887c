"""The Lambda handlers ``app.py`` wires to Chalice.

Each builds the container on first use (never at import), turns internal
failures into the answers API Gateway understands, and flushes metrics.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from chalicelib import observability

if TYPE_CHECKING:
    from collections.abc import Callable

    from chalicelib.container import Container
    from chalicelib.signing import KeyCertificate

_container: Container | None = None
_container_lock = threading.Lock()


def container() -> Container:
    """This Lambda container's objects, built from the environment once.

    Raises
    ------
    chalicelib.config.SettingsError
        When the stage is misconfigured (every problem listed).
    """
    global _container
    if _container is None:
        with _container_lock:
            if _container is None:
                from chalicelib.config import Settings
                from chalicelib.container import Container

                _container = Container(Settings.from_environment(), metrics=observability.metrics())
    return _container


def use_container(replacement: Container | None) -> None:
    """Replace (or with None, forget) the container: for the local stack and tests."""
    global _container
    with _container_lock:
        _container = replacement


def _lambda_request_id(context: Any) -> str | None:
    request_id = getattr(context, "aws_request_id", None)
    return request_id if isinstance(request_id, str) else None


def authorize(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The REQUEST authorizer Lambda."""
    from chalicelib.audit import AuditUnavailable
    from chalicelib.authorize import AuthorizerFailure

    log = observability.powertools_logger()
    started = time.perf_counter()
    try:
        answer = container().authorizer.handle(event, _lambda_request_id(context))
        if answer.grant_use is not None:
            container().grant_uses.record(answer.grant_use)
        return answer.response
    except AuditUnavailable as exc:
        log.error("denying: the decision could not be audited", extra={"error": str(exc)})
        raise AuthorizerFailure("audit unavailable") from exc
    except AuthorizerFailure as exc:
        log.error("authorizer could not decide", extra={"error": str(exc)})
        raise
    finally:
        # Every answer counts, a 401 (raised) too; a container that failed to build has none.
        if _container is not None:
            elapsed_ms = (time.perf_counter() - started) * 1000
            observability.measure_decision(_container.metrics, elapsed_ms)
        observability.flush_metrics()


def proxy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The proxy Lambda (``/`` and ``/{proxy+}``)."""
    observability.powertools_logger()
    try:
        return container().proxy.handle(event, _lambda_request_id(context))
    finally:
        observability.flush_metrics()


def gateway_jwks(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``GET /.well-known/gatehouse/jwks.json``: every live assertion key, unauthenticated.

    Read from the state table on each request (consistently): a key is
    registered before it signs, so a backend that meets an unknown ``kid``
    and fetches again always finds it.
    """
    from chalicelib.signing.documents import jwks_document

    return _keys_document(jwks_document)


def gateway_key_certificates(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``GET /.well-known/gatehouse/key-certificates.json``: each live key's KMS certificate."""
    from chalicelib.signing.documents import certificates_document

    return _keys_document(certificates_document)


def _keys_document(render: Callable[[list[KeyCertificate]], dict[str, Any]]) -> dict[str, Any]:
    from chalicelib.signing import KeyRegistryError

    try:
        document = render(container().assertion_keys.live())
    except KeyRegistryError as exc:
        observability.powertools_logger().error(
            "cannot publish the signing keys", extra={"error": str(exc)}
        )
        return _json_response(503, {"message": "signing keys unavailable"})
    # Never from a shared cache: a new container's key appears at its first
    # request, and a backend that meets its kid must find it on the next fetch.
    return _json_response(200, document, cache_control="no-cache")


def grants_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``/.gatehouse/grants...``: request, approve, deny, revoke and list grants.

    Not behind the authorizer: grant actions are not access to a route, and
    the handler verifies the caller's token itself.
    """
    observability.powertools_logger()
    try:
        return container().grant_api.handle(event, _lambda_request_id(context))
    finally:
        observability.flush_metrics()


def sign_in(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``/.gatehouse/login``, ``callback``, ``refresh``, ``logout``, ``backchannel-logout``...

    Not behind the authorizer: these routes are how a person gets credentials.
    Every session change is audited before the browser is answered; when it
    cannot be, the answer is 503 and no cookie.
    """
    from chalicelib.apigw.events import MalformedEvent, parse_proxy_event
    from chalicelib.audit import AuditUnavailable

    log = observability.powertools_logger()
    built = container()
    try:
        request = parse_proxy_event(event)
    except MalformedEvent:
        return _json_response(400, {"message": "malformed request"})
    if built.settings.sessions is None:
        return _json_response(404, {"message": "this gateway has no browser sign-in"})
    try:
        return built.sign_in.handle(request).as_lambda_response(request.request_id)
    except AuditUnavailable as exc:
        log.error("sign-in step refused: it could not be audited", extra={"error": str(exc)})
        return _json_response(503, {"message": "audit trail unavailable"})
    finally:
        observability.flush_metrics()


def write_audit_batch(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The audit writer Lambda (SQS event source with partial batch responses)."""
    observability.powertools_logger()
    try:
        result = container().writer.handle_sqs_batch(event)
        if result.stored is not None:
            observability.metrics().add_metric(
                name="AuditEventsStored", unit="Count", value=result.stored.event_count
            )
        return result.as_lambda_response()
    finally:
        observability.flush_metrics()


def sweep_grants() -> None:
    """The scheduled Lambda that ends expired grants and records expired signing keys.

    Expiry is enforced at every decision regardless; this records it (each
    ``expired`` event once), enqueues grant lifecycle events whose enqueue
    failed when they were written, and records each assertion key whose
    certificate ended.
    """
    import time

    from chalicelib.grants import redeliver_outbox, sweep_expired
    from chalicelib.signing.delegated import record_expired_keys

    log = observability.powertools_logger()
    built = container()
    now = time.time()
    try:
        try:
            redelivered = redeliver_outbox(built.grant_store, built.emitter, now)
        finally:
            # Expiry is recorded even when older events are still stuck.
            expired = sweep_expired(built.grant_store, built.emitter, built.settings.stage, now)
    finally:
        ended = record_expired_keys(built.key_registry, built.key_events, now)
    if redelivered:
        log.warning("grant events enqueued from the outbox", extra={"event_ids": redelivered})
    if expired:
        log.info("grants expired", extra={"grant_ids": expired})
    if ended:
        log.info("assertion keys expired", extra={"count": ended})


def ingest_access_logs(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The CloudWatch Logs subscription of the API stage's access log: ``gateway`` events.

    Requests that never reach the authorizer (missing credentials, throttling,
    a cached decision, WAF) enter the trail this way. Each line becomes one
    event with an id derived from its request, so a redelivered batch is
    stored once. If an event cannot be enqueued the invocation fails, and
    CloudWatch Logs (an asynchronous invocation) delivers the batch again.
    """
    from chalicelib.audit.gateway_events import gateway_events

    log = observability.powertools_logger()
    built = container()
    try:
        events, rejected = gateway_events(event, stage=built.settings.stage)
        built.emitter.emit_all(events)
        if rejected:
            log.warning("access log lines rejected", extra={"rejected": rejected[:20]})
            observability.metrics().add_metric(
                name="AccessLogLinesRejected", unit="Count", value=len(rejected)
            )
        return {"events": len(events), "rejected": len(rejected)}
    finally:
        observability.flush_metrics()


def write_digest() -> None:
    """The scheduled Lambda that signs the ledger's digest (also for an empty period)."""
    log = observability.powertools_logger()
    checkpoint = container().digest_writer.write()
    log.info(
        "ledger digest signed",
        extra={"key": checkpoint.key, "tree_size": checkpoint.tree_size, "root": checkpoint.root},
    )


def export_ocsf(event: dict[str, Any]) -> None:
    """The scheduled Lambda that exports what the ledger committed as OCSF (Security Lake).

    The region and account of the files' partitions are the schedule's own
    (an EventBridge event names both).
    """
    log = observability.powertools_logger()
    region, account = str(event.get("region") or ""), str(event.get("account") or "")
    exporter = container().ocsf_exporter(region, account)
    if exporter is None:
        return
    try:
        done = exporter.run()
        observability.metrics().add_metric(
            name="OcsfRecordsExported", unit="Count", value=done.records
        )
    finally:
        observability.flush_metrics()
    log.info(
        "OCSF export",
        extra={"objects": done.objects, "files": len(done.written), "next": done.next_sequence},
    )


def run_detection_checks(clock: Callable[[], float] = time.time) -> None:
    """The scheduled Lambda that runs detection's scheduled rules (DLQ, verify, witnesses).

    It first sends again the alerts still pending delivery (claimed over a
    minute ago and not taken by every channel). One undelivered after
    ``STUCK_AFTER_ATTEMPTS`` attempts counts ``AlertDeliveryFailed`` and
    ``DetectionFailed`` (whose alarm reaches the topic without EventBridge) on
    every run until it is delivered.

    A probe that fails is logged and counted (``DetectionFailed``); the other
    rules still run. So do they when the pending alerts cannot be sent again.
    Invalid rules fail the invocation (the function's errors alarm).
    """
    from chalicelib.audit import uuid7
    from chalicelib.detect.checks import AwsProbes, resend_pending, run_checks
    from chalicelib.detect.errors import DetectionUnavailable

    log = observability.powertools_logger()
    built = container()
    detection = built.settings.detection
    if detection is None:
        return
    metrics = built.metrics if built.metrics is not None else observability.metrics()
    clients = built.clients
    probes = AwsProbes(
        sqs=lambda: clients.sqs,
        dlq_url=detection.dlq_url,
        cloudwatch=lambda: clients.cloudwatch,
        s3=lambda: clients.s3,
        bucket=built.settings.audit_bucket,
        stage=built.settings.stage,
        clock=clock,
    )
    try:
        try:
            resent = resend_pending(built.detection_state, built.alert_channels, now=clock())
        except DetectionUnavailable as exc:
            log.error("pending alerts not sent again", extra={"error": str(exc)})
            metrics.add_metric(name="DetectionFailed", unit="Count", value=1)
        else:
            if resent.delivered:
                log.info("pending alerts sent again", extra={"alert_ids": resent.delivered})
            if resent.stuck:
                stuck = len(resent.stuck)
                metrics.add_metric(name="AlertDeliveryFailed", unit="Count", value=stuck)
                metrics.add_metric(name="DetectionFailed", unit="Count", value=stuck)
            if resent.left_over:
                log.warning("more pending alerts than one run sends; the rest wait a run")
        fired, failed = run_checks(
            built.detection_rules,
            probes,
            built.detection_state,
            built.alert_channels,
            stage=built.settings.stage,
            new_id=uuid7,
            clock=clock,
        )
        for alert in fired:
            log.warning("alert raised", extra={"alert": alert.as_json()})
        if failed:
            log.error("detection checks failed", extra={"failed": failed})
            metrics.add_metric(name="DetectionFailed", unit="Count", value=len(failed))
    finally:
        observability.flush_metrics()


def _json_response(
    status: int, body: dict[str, Any], cache_control: str | None = None
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if cache_control:
        headers["Cache-Control"] = cache_control
    return {
        "statusCode": status,
        "headers": headers,
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }
