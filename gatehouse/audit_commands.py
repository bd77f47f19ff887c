"""``gatehouse audit ...``: flush the queue into the bucket, show the newest events, the DLQ."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.audit import AuditWriter
from chalicelib.audit.reader import newest_events
from gatehouse.dev.event_source import DrainResult, drain_queue

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from chalicelib.ledger import LedgerState
    from chalicelib.ledger.digest import S3Anchor
    from chalicelib.ledger.findings import Report
    from chalicelib.ledger.records import Checkpoint
    from gatehouse.report import Window, WrittenReport
    from gatehouse.target import Target


def flush(target: Target) -> DrainResult:
    """Run the audit writer now on everything queued."""
    writer = AuditWriter(target.client("s3"), target.audit_bucket, _ledger_state(target))

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return writer.handle_sqs_batch(event).as_lambda_response()

    return drain_queue(target.client("sqs"), target.audit_queue_url, handler, region=target.region)


@dataclass(frozen=True)
class DeadLetter:
    """One message the writer gave up on, and why it could not be stored."""

    message_id: str
    receive_count: int
    sent_at: str
    event_id: str | None
    problem: str
    preview: str
    receipt_handle: str = field(repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "receive_count": self.receive_count,
            "sent_at": self.sent_at,
            "event_id": self.event_id,
            "problem": self.problem,
            "preview": self.preview,
        }


class StageIncomplete(RuntimeError):
    """The stage's description lacks what a command needs (a queue, a key)."""


class NoDeadLetterQueue(StageIncomplete):
    """The stage names no dead-letter queue."""


def dead_letters(target: Target, limit: int = 100) -> list[DeadLetter]:
    """Up to ``limit`` messages in the audit DLQ, left there (visible again at once).

    Raises
    ------
    NoDeadLetterQueue
        When the target has no DLQ URL.
    """
    from chalicelib.audit.writer import message_problem

    queue = _dlq_url(target)
    sqs = target.client("sqs")
    found: dict[str, DeadLetter] = {}
    while len(found) < limit:
        received = sqs.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=min(10, limit - len(found)),
            VisibilityTimeout=30,  # hidden while listed, so each is seen once
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            body = message.get("Body", "")
            event_id, problem = message_problem(body)
            attributes = message.get("Attributes", {})
            sent = int(attributes.get("SentTimestamp", "0")) / 1000
            found[message["MessageId"]] = DeadLetter(
                message_id=message["MessageId"],
                receive_count=int(attributes.get("ApproximateReceiveCount", "0")),
                sent_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sent)),
                event_id=event_id,
                problem=problem or "valid event (the writer could not store it in time)",
                preview=body[:120],
                receipt_handle=message["ReceiptHandle"],
            )
    for letter in found.values():  # listing is not taking: visible again now
        sqs.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0
        )
    return list(found.values())


def redrive(target: Target, limit: int = 100) -> int:
    """Move up to ``limit`` messages from the DLQ back to the audit queue; how many moved.

    Each is sent first and deleted second: a failure in between leaves it in
    both queues, and the ledger stores its event once.
    """
    queue = _dlq_url(target)
    sqs = target.client("sqs")
    moved = 0
    while moved < limit:
        received = sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=min(10, limit - moved), VisibilityTimeout=30
        ).get("Messages", [])
        if not received:
            break
        for message in received:
            sqs.send_message(QueueUrl=target.audit_queue_url, MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def _dlq_url(target: Target) -> str:
    if not target.audit_dlq_url:
        raise NoDeadLetterQueue(
            "no dead-letter queue: set GATEHOUSE_AUDIT_DLQ_URL (or start the local stack)"
        )
    return target.audit_dlq_url


def sign_digest(target: Target) -> Checkpoint:
    """Sign the ledger's next digest now, as the hourly schedule does (local stack)."""
    from chalicelib.aws.signers import KmsSigner
    from chalicelib.ledger.digest import DigestWriter

    writer = DigestWriter(
        target.client("s3"),
        target.audit_bucket,
        _ledger_state(target),
        KmsSigner(target.client("kms"), _signing_key(target)),
        stage=target.stage,
        anchor=_anchor(target),
    )
    return writer.write()


def verify(
    target: Target,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    public_key_file: Path | None = None,
    jobs: int | None = None,
) -> Report:
    """Verify the ledger from the bucket, the public key and the anchor.

    Only digests whose period ends within ``since``..``until`` (inclusive,
    either open) are checked; see :func:`gatehouse.times.parse_window`.
    """
    from chalicelib.ledger.verify import LedgerVerifier
    from gatehouse.times import utc_text

    if public_key_file is not None:
        public_key = load_public_key(public_key_file.read_bytes())
    else:
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        der = target.client("kms").get_public_key(KeyId=_signing_key(target))["PublicKey"]
        public_key = _p256(load_der_public_key(der))
    anchor = _anchor(target)
    verifier = LedgerVerifier(target.client("s3"), target.audit_bucket, public_key, jobs=jobs)
    # The verifier compares digests' period ends as text: give it theirs.
    return verifier.verify(
        anchor_versions=anchor.versions() if anchor else (),
        since=utc_text(since) if since is not None else None,
        until=utc_text(until) if until is not None else None,
    )


# What `gatehouse audit verify --publish-metric` puts, and the stage's
# LedgerVerifyAlarm (infra/gatehouse.yaml) watches.
VERIFY_METRIC_NAMESPACE = "Gatehouse"
VERIFY_METRIC_NAME = "LedgerVerifyFindings"


def verified_nothing(report: Report) -> bool:
    """Whether the verification checked no digest at all: it then proves nothing."""
    return report.digests == 0


def verify_metric_value(report: Report) -> float:
    """The findings, plus one when nothing was verified.

    The alarm fires above 0: a verification that checked nothing (an empty
    window, no digest yet, every digest unreadable) must not report a clean
    ledger, whatever ``--allow-empty`` did to the exit status.
    """
    return float(len(report.findings) + (1 if verified_nothing(report) else 0))


def publish_verify_metric(target: Target, report: Report) -> None:
    """Put :func:`verify_metric_value` (0 only when digests verified clean) for the alarm."""
    target.client("cloudwatch").put_metric_data(
        Namespace=VERIFY_METRIC_NAMESPACE,
        MetricData=[
            {
                "MetricName": VERIFY_METRIC_NAME,
                "Dimensions": [{"Name": "Stage", "Value": target.stage}],
                "Value": verify_metric_value(report),
                "Unit": "Count",
            }
        ],
    )


def report(
    target: Target,
    window: Window,
    out: Path,
    engine: str | None = None,
    cache_dir: Path | None = None,
) -> WrittenReport:
    """Run the audit report over ``window`` and write it into ``out`` (JSON, CSV, HTML).

    ``engine`` is ``local`` or ``athena`` (default: local for the local stack);
    ``cache_dir`` is the local engine's cache (default: the one ``audit query`` uses).
    """
    from gatehouse.query.command import build_engine
    from gatehouse.report import collect_report, write_report

    query_engine = build_engine(target, engine, cache_dir)
    return write_report(collect_report(query_engine, window, stage=target.stage), out)


def prove(target: Target, event_id: str) -> dict[str, Any]:
    """The inclusion proof of ``event_id`` against the signed digest listing its object."""
    from chalicelib.ledger.proof import Prover

    return Prover(target.client("s3"), target.audit_bucket, _ledger_state(target)).prove(event_id)


def load_public_key(data: bytes) -> EllipticCurvePublicKey:
    """A P-256 public key from PEM, a JWK, or a JWKS (its first EC key).

    Raises
    ------
    ValueError
        When ``data`` holds none.
    """
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        return _p256(load_pem_public_key(text))
    document = json.loads(text)
    keys = document.get("keys", [document]) if isinstance(document, dict) else []
    for jwk in keys:
        if isinstance(jwk, dict) and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            from chalicelib.identity.keys import parse_jwk

            return _p256(parse_jwk({"kid": "ledger", **jwk}).public_key)
    raise ValueError("no P-256 public key (PEM, JWK or JWKS) in the file")


def _p256(key: Any) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the ledger is signed with a P-256 key; this is not one")
    return key


def _ledger_state(target: Target) -> LedgerState:
    from chalicelib.ledger import LedgerState

    return LedgerState(target.client("dynamodb"), target.state_table)


def _anchor(target: Target) -> S3Anchor | None:
    from chalicelib.ledger.digest import S3Anchor

    if not target.ledger_anchor:
        return None
    return S3Anchor.from_uri(target.client("s3"), target.ledger_anchor, target.stage)


def _signing_key(target: Target) -> str:
    if not target.signing_key_id:
        raise StageIncomplete(
            "no signing key: set GATEHOUSE_ASSERTION_KEY_ID (or start the local stack)"
        )
    return target.signing_key_id


def tail(target: Target, count: int) -> list[dict[str, Any]]:
    """The newest ``count`` stored events, oldest first."""
    return newest_events(target.client("s3"), target.audit_bucket, count)


def format_event(event: dict[str, Any]) -> str:
    """One line per event for humans, client text (paths, emails...) shown escaped.

    Paths, subjects and grant ids come from clients: :func:`gatehouse.terminal.visible`
    keeps ESC sequences, ``\\r`` and bidi overrides from rewriting the terminal.
    """
    from gatehouse.terminal import visible

    return visible(_event_line(event))


def _event_line(event: dict[str, Any]) -> str:
    principal = event.get("principal") or {}
    who = principal.get("email") or principal.get("subject") or "-"
    if event.get("event_type") in ("policy_change", "grant"):
        return _format_admin_event(event, who)
    decision = event.get("decision") or {}
    resource = event.get("resource") or {}
    outcome = event.get("outcome") or {}
    status = outcome.get("status", "")
    reasons = ",".join(decision.get("reasons") or [])
    flags = ",".join(event.get("anomalies") or [])
    request_id = (event.get("request") or {}).get("id", "")
    return (
        f"{event.get('event_time', '')}  {event.get('event_type', ''):8}  "
        f"{decision.get('outcome', ''):5}  {status!s:>3}  {who:22}  "
        f"{resource.get('method', '')} {resource.get('path', '')}  "
        f"[{reasons}]{'  !' + flags if flags else ''}  request={request_id}"
    )


def _format_admin_event(event: dict[str, Any], who: str) -> str:
    operator = (event.get("aws") or {}).get("caller_arn") or "-"
    if event["event_type"] == "policy_change":
        change = event.get("policy_change") or {}
        what = (
            f"{change.get('action', '')} v{change.get('from_version') or 0} -> "
            f"v{change.get('to_version')}"
        )
    else:
        grant = event.get("grant") or {}
        what = f"{grant.get('action', '')} {grant.get('grant_id', '')}"
    return (
        f"{event.get('event_time', '')}  {event['event_type']:8}  {what}  "
        f"by {who if who != '-' else operator}"
    )


def print_events(events: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print events as NDJSON or as one line each (both inert in a terminal).

    ``json.dumps`` escapes every control and non-ASCII character (``ensure_ascii``).
    """
    for event in events:
        print(json.dumps(event, sort_keys=True) if as_json else format_event(event))
