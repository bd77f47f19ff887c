"""The authorizer's and the sweeper's grant permissions are exactly the calls their code makes.

The grant code runs against moto with a DynamoDB client that records each
request as IAM authorises it: one action per item of a transaction, with the
item's partition key (``dynamodb:LeadingKeys``). The calls the authorizer makes
are those of ``GrantUseRecorder.record`` (mark the first use, enqueue its
event, clear it from the outbox; a lost race re-reads the grant) and of the
live grants it loads; the sweeper's those of ``entrypoints.sweep_grants``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit import AuditEmitter, SqsAuditSink
from chalicelib.audit.schema import build_admin_event
from chalicelib.grants import ActiveGrants, Grant, GrantStore, redeliver_outbox, sweep_expired
from chalicelib.grants.events import deliver, grant_details
from chalicelib.grants.sweeper import OUTBOX_GRACE_SECONDS
from tests.unit.test_infra import AUTHORIZER_GRANT_CALLS, SWEEPER_GRANT_CALLS, grant_rights

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

T0 = 1_800_000_000.0
ISSUER, SUBJECT = "https://idp.test", "erin"
# TransactWriteItems is authorised item by item, each with its own action.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


class RecordedCalls:
    """The (IAM action, partition key) pairs a boto3 DynamoDB client was asked for."""

    def __init__(self) -> None:
        self.calls: set[tuple[str, str]] = set()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("provide-client-params.dynamodb.*", self._record)
        return client

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        if operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                [(kind, request)] = item.items()
                self._add(_TRANSACT_ACTIONS[kind], request)
        else:
            self._add(operation, params)

    def _add(self, operation: str, request: dict[str, Any]) -> None:
        if operation == "Query":
            assert request["KeyConditionExpression"].startswith("pk = :pk")
            partition = request["ExpressionAttributeValues"][":pk"]["S"]
        elif "Item" in request:
            partition = request["Item"]["pk"]["S"]
        else:
            partition = request["Key"]["pk"]["S"]
        self.calls.add((f"dynamodb:{operation}", partition))


def _grant(grant_id: str, duration_seconds: int) -> Grant:
    return Grant(
        id=grant_id,
        issuer=ISSUER,
        subject=SUBJECT,
        email="erin@example.com",
        routes=("demo",),
        actions=frozenset({"GET"}),
        paths=(),
        duration_seconds=duration_seconds,
        justification="incident 42",
        status="pending",
        requested_at=T0,
    )


def _approved(aws: Resources, grant_id: str, duration_seconds: int = 600) -> Grant:
    """A grant requested and approved through an unrecorded client (the grant API's part)."""
    setup = GrantStore(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table)
    grant = _grant(grant_id, duration_seconds)
    setup.create(grant)
    return setup.approve(grant, "sam", T0)


def _emitter(aws: Resources) -> AuditEmitter:
    return AuditEmitter(
        SqsAuditSink(boto3.client("sqs", region_name="us-east-1"), aws.audit_queue_url)
    )


def _recording_store(aws: Resources, recorded: RecordedCalls) -> GrantStore:
    client = recorded.attach(boto3.client("dynamodb", region_name="us-east-1"))
    return GrantStore(client, aws.state_table)


def _used_event(grant: Grant) -> dict[str, Any]:
    return build_admin_event(
        "grant",
        stage="test",
        details=grant_details("used", grant, decision_id="01a00000-0000-7000-8000-0000000000d1"),
        operator=None,
    )


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_authorizer_may_make_exactly_the_grant_calls_it_makes(
    aws: Resources, stage: str
) -> None:
    grant = _approved(aws, "01a00000-0000-7000-8000-000000000001")
    recorded = RecordedCalls()
    container = _recording_store(aws, recorded)

    [live] = ActiveGrants(container, refresh_seconds=10).of_principal(ISSUER, SUBJECT).live
    event = _used_event(live)
    assert container.mark_used(live.id, T0 + 5, event=event) is True
    deliver(container, _emitter(aws), event, "used", live.id)
    # Another container lost the race: it re-reads the grant.
    another = _recording_store(aws, recorded)
    assert another.mark_used(grant.id, T0 + 6, event=_used_event(live)) is False

    assert recorded.calls == AUTHORIZER_GRANT_CALLS
    assert grant_rights(stage, "gatehouse_authorizer") == recorded.calls


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_the_sweeper_may_make_exactly_the_grant_calls_it_makes(aws: Resources, stage: str) -> None:
    _approved(aws, "01a00000-0000-7000-8000-000000000002", duration_seconds=60)
    # A lifecycle event its request could not enqueue, left in the outbox.
    stuck = _approved(aws, "01a00000-0000-7000-8000-000000000003", duration_seconds=3600)
    GrantStore(boto3.client("dynamodb", region_name="us-east-1"), aws.state_table).mark_used(
        stuck.id, T0 + 1, event=_used_event(stuck)
    )
    recorded = RecordedCalls()
    sweeper = _recording_store(aws, recorded)
    later = time.time() + OUTBOX_GRACE_SECONDS + 1

    assert len(redeliver_outbox(sweeper, _emitter(aws), later)) == 1
    assert sweep_expired(sweeper, _emitter(aws), "test", T0 + 61) == [
        "01a00000-0000-7000-8000-000000000002"
    ]

    assert recorded.calls == SWEEPER_GRANT_CALLS
    assert grant_rights(stage, "grant_sweeper") == recorded.calls
