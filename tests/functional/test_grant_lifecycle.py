"""Just-in-time grants against moto: the lifecycle, its state changes, every refusal, the sweeper.

People are real: their identities come from tokens signed with real keys and
verified by the verifier the authorizer uses. Audit events are read back
from the SQS queue. The shared helpers (``desk``, ``ask``, ``store``,
``people``...) are in ``conftest.py``; the HTTP API in front of these rules is
in ``test_grant_api.py``, what the authorizer honours in
``test_grant_authorizer.py``; the CLI, through the local stack, in the e2e tests.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit import emitter as emitter_module
from chalicelib.grants import (
    GrantConflict,
    GrantInvalid,
    GrantNotAudited,
    GrantNotFound,
    redeliver_outbox,
    sweep_expired,
)
from chalicelib.grants.sweeper import OUTBOX_GRACE_SECONDS
from tests.functional.conftest import (
    GRANTS,
    NO_SUCH_GRANT,
    OPERATOR,
    T0,
    Clock,
    ask,
    desk,
    emitter,
    grant_events,
    queued_events,
    store,
)
from tests.helpers import ISSUER

if TYPE_CHECKING:
    from chalicelib.identity import Identity
    from gatehouse.dev.bootstrap import Resources


def live_item(aws: Resources, grant_id: str) -> dict[str, Any] | None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    key = {"pk": {"S": "GRANT-LIVE"}, "sk": {"S": grant_id}}
    item: dict[str, Any] | None = dynamodb.get_item(
        TableName=aws.state_table, Key=key, ConsistentRead=True
    ).get("Item")
    return item


class Records(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def emitter_log() -> Iterator[list[logging.LogRecord]]:
    """What the audit emitter logs (on its own logger: propagation may be off)."""
    handler = Records()
    emitter_module.logger.addHandler(handler)
    yield handler.records
    emitter_module.logger.removeHandler(handler)


def audit_queue_down(aws: Resources) -> Callable[[], None]:
    """Delete the audit queue; return a function that brings it back (same URL)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    sqs.delete_queue(QueueUrl=aws.audit_queue_url)

    def back() -> None:
        sqs.create_queue(QueueName=aws.audit_queue_url.rsplit("/", 1)[1])

    return back


# --- the lifecycle -----------------------------------------------------------------------------


def test_requested_approved_used_revoked_each_stored_and_audited(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    grants = desk(aws, clock)

    pending = ask(grants, people["erin"])
    stored = store(aws).get(pending.id)
    clock.now += 300
    approved = grants.approve(pending.id, people["sam"])
    live = live_item(aws, pending.id)
    assert store(aws).mark_used(pending.id, clock.now + 10) is True
    clock.now += 60
    revoked = grants.revoke(pending.id, people["erin"], reason="done early")

    assert stored == pending
    assert (stored.status, stored.principal, stored.email) == (
        "pending",
        (ISSUER, "erin"),
        "erin@example.com",
    )
    assert (stored.routes, stored.actions, [p.pattern for p in stored.paths]) == (
        ("demo",),
        frozenset({"GET"}),
        ["/api/customers/**"],
    )
    assert (stored.duration_seconds, stored.requested_at) == (7200, T0)
    assert (approved.approved_at, approved.expires_at) == (T0 + 300, T0 + 300 + 7200)
    assert approved.approver == f"{ISSUER}|sam (sam@example.com)"
    assert live is not None
    assert live["status"] == {"S": "approved"}
    assert live["ttl"] == {"N": str(int(T0 + 300 + 7200 + 86400))}  # clean-up only
    final = store(aws).get(pending.id)
    assert final == replace(revoked, first_used_at=T0 + 310)
    assert (final.status, final.ended_at, final.ended_by) == (
        "revoked",
        T0 + 360,
        f"{ISSUER}|erin (erin@example.com)",
    )
    assert live_item(aws, pending.id) is None
    assert store(aws).live_grants() == []

    events = grant_events(aws)
    assert [e["grant"]["action"] for e in events] == ["requested", "approved", "revoked"]
    assert [e["principal"]["subject"] for e in events] == ["erin", "sam", "erin"]
    assert {e["aws"]["caller_arn"] for e in events} == {OPERATOR}
    assert {e["stage"] for e in events} == {"test"}
    assert events[1]["grant"] == {
        "action": "approved",
        "grant_id": pending.id,
        "requester": {"issuer": ISSUER, "subject": "erin", "email": "erin@example.com"},
        "routes": ["demo"],
        "actions": ["GET"],
        "paths": ["/api/customers/**"],
        "duration_seconds": 7200,
        "justification": "TICKET-9 customer escalation",
        "approver": f"{ISSUER}|sam (sam@example.com)",
        "expires_at": "2027-01-15T10:05:00.000Z",
    }
    assert events[2]["grant"]["reason"] == "done early"
    assert "reason" not in events[1]["grant"]


def test_a_requester_withdraws_a_pending_request(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])

    grants.revoke(pending.id, people["erin"])

    withdrawn = store(aws).get(pending.id)
    assert (withdrawn.status, withdrawn.approved_at, withdrawn.in_force_at(T0)) == (
        "revoked",
        None,
        False,
    )
    with pytest.raises(GrantConflict, match="was already revoked"):
        grants.approve(pending.id, people["sam"])
    assert [e["grant"]["action"] for e in grant_events(aws)] == ["requested", "revoked"]


def test_a_denied_grant_never_goes_live(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])

    grants.deny(pending.id, people["sam"], reason="use the read-only dashboard")

    denied = store(aws).get(pending.id)
    assert (denied.status, denied.ended_at, denied.approved_at) == ("denied", T0, None)
    with pytest.raises(GrantConflict, match="was already denied"):
        grants.approve(pending.id, people["tess"])
    assert live_item(aws, pending.id) is None
    events = grant_events(aws)
    assert [e["grant"]["action"] for e in events] == ["requested", "denied"]
    assert events[1]["grant"]["reason"] == "use the read-only dashboard"
    assert events[1]["principal"]["subject"] == "sam"


def test_the_clock_starts_at_approval_however_long_the_request_waited(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    grants = desk(aws, clock)
    pending = ask(grants, people["erin"], duration="30m")

    clock.now += 3 * 86400
    approved = grants.approve(pending.id, people["sam"])

    assert approved.expires_at == clock.now + 1800
    assert approved.in_force_at(clock.now + 1799) is True
    assert approved.in_force_at(clock.now + 1800) is False


def test_a_request_is_stored_normalised(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(T0))

    everything = ask(grants, people["erin"], actions=["*", "get"], paths=[])
    read_only = ask(grants, people["erin"], actions=[], routes=["demo", "ops", "demo"])
    padded = ask(grants, people["erin"], justification="  TICKET-10  ", paths=["/a/**", "/a/**"])

    assert everything.actions == {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
    assert everything.paths == ()
    assert (read_only.actions, read_only.routes) == ({"GET", "HEAD"}, ("demo", "ops"))
    assert (padded.justification, [g.pattern for g in padded.paths]) == ("TICKET-10", ["/a/**"])
    assert store(aws).get(padded.id).justification == "TICKET-10"


# --- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "messages"),
    [
        pytest.param({"routes": ["nope"]}, ["unknown route 'nope'"], id="unknown route"),
        pytest.param({"routes": []}, ["at least one route"], id="no route"),
        pytest.param({"duration": "5h"}, ["duration 5h exceeds", "max_duration 4h"], id="5h"),
        pytest.param(
            {"duration": "241m"}, ["duration 241m (4h1m) exceeds", "max_duration 4h"], id="241m"
        ),
        pytest.param({"duration": "soon"}, ["is not like"], id="bad duration"),
        pytest.param({"duration": "0m"}, ["is not like"], id="zero duration"),
        pytest.param({"actions": ["FETCH"]}, ["'FETCH' is not an HTTP method"], id="bad method"),
        pytest.param({"actions": ["*", "FETCH"]}, ["'FETCH'"], id="star does not hide typos"),
        pytest.param({"paths": ["api/**"]}, ["does not start with /"], id="bad glob"),
        pytest.param({"justification": "   "}, ["justification"], id="blank justification"),
        pytest.param({"justification": "x" * 501}, ["justification"], id="501 characters"),
        pytest.param({"justification": "ok\nforged: line"}, ["justification"], id="newline"),
        pytest.param({"justification": "ok\x1b[2J"}, ["justification"], id="escape sequence"),
        pytest.param({"justification": "ok \u202egnp.exe"}, ["justification"], id="bidi override"),
        pytest.param(
            {"routes": ["nope"], "duration": "9h", "justification": ""},
            ["unknown route 'nope'", "max_duration 4h", "justification"],
            id="every problem at once",
        ),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_stored(
    aws: Resources, people: dict[str, Identity], changes: dict[str, Any], messages: list[str]
) -> None:
    grants = desk(aws, Clock(T0))

    with pytest.raises(GrantInvalid) as refused:
        ask(grants, people["erin"], **changes)

    for message in messages:
        assert message in str(refused.value)
    assert store(aws).list_grants() == []
    assert grant_events(aws) == []


def test_a_justification_of_exactly_500_characters_is_fine(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    assert len(ask(grants, people["erin"], justification="x" * 500).justification) == 500


def test_nothing_is_requested_or_approved_without_a_grants_block(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    pending = ask(desk(aws, clock), people["erin"])
    disabled = desk(aws, clock, grants=None)

    with pytest.raises(GrantInvalid, match="grants are not enabled by the active policy"):
        ask(disabled, people["erin"])
    # Nor are requests made before the block was removed approved afterwards.
    with pytest.raises(GrantInvalid, match="grants are not enabled"):
        disabled.approve(pending.id, people["sam"])
    assert store(aws).get(pending.id).status == "pending"


@pytest.mark.parametrize(
    ("approver", "message"),
    [
        ("mallory", "only members of security may approve or deny"),
        ("erin-approver", "nobody approves or denies their own grant"),
        ("erin-alias", "nobody approves or denies their own grant"),
        ("erin-shouting", "nobody approves or denies their own grant"),
    ],
)
def test_only_another_approver_may_approve_or_deny(
    aws: Resources, people: dict[str, Identity], approver: str, message: str
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])

    with pytest.raises(GrantInvalid, match=message):
        grants.approve(pending.id, people[approver])
    with pytest.raises(GrantInvalid, match=message):
        grants.deny(pending.id, people[approver])

    assert store(aws).get(pending.id).status == "pending"
    assert live_item(aws, pending.id) is None
    assert [e["grant"]["action"] for e in grant_events(aws)] == ["requested"]


def test_approval_is_refused_when_the_policy_now_allows_less(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    pending = ask(desk(aws, clock), people["erin"], duration="3h")
    tightened = desk(aws, clock, grants={**GRANTS, "max_duration": "1h"})

    with pytest.raises(GrantInvalid, match=r"asks for 3h, more than .* max_duration 1h"):
        tightened.approve(pending.id, people["sam"])

    tightened.deny(pending.id, people["sam"])  # what the message says to do
    assert store(aws).get(pending.id).status == "denied"


@pytest.mark.parametrize(
    ("before", "action", "message"),
    [
        pytest.param(["approve"], "approve", "is already approved", id="double approval"),
        pytest.param(["approve"], "deny", "is already approved", id="deny approved"),
        pytest.param(["deny"], "deny", "was already denied", id="double denial"),
        pytest.param(["deny"], "revoke", "was already denied", id="revoke denied"),
        pytest.param(["revoke"], "approve", "was already revoked", id="approve withdrawn"),
        pytest.param(["approve", "revoke"], "revoke", "was already revoked", id="double revoke"),
    ],
)
def test_actions_on_a_grant_in_the_wrong_state_conflict(
    aws: Resources, people: dict[str, Identity], before: list[str], action: str, message: str
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])
    for step in before:
        getattr(grants, step)(pending.id, people["sam"])
    status = store(aws).get(pending.id).status

    with pytest.raises(GrantConflict, match=f"cannot {action} grant {pending.id}: it {message}"):
        getattr(grants, action)(pending.id, people["tess"])

    assert store(aws).get(pending.id).status == status
    assert len(grant_events(aws)) == 1 + len(before)


def test_the_requester_or_any_approver_may_revoke_and_nobody_else(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    first, second = ask(grants, people["erin"]), ask(grants, people["erin"])
    grants.approve(first.id, people["sam"])
    grants.approve(second.id, people["sam"])

    with pytest.raises(GrantInvalid, match="only the requester or an approver may revoke"):
        grants.revoke(first.id, people["mallory"])
    assert store(aws).get(first.id).status == "approved"
    grants.revoke(first.id, people["tess"], reason="incident closed")  # any approver
    grants.revoke(second.id, people["erin"])  # the requester

    assert {g.status for g in store(aws).list_grants()} == {"revoked"}
    revocations = [e for e in grant_events(aws) if e["grant"]["action"] == "revoked"]
    assert [e["principal"]["subject"] for e in revocations] == ["tess", "erin"]


def test_a_grant_past_expiry_is_not_revoked_but_swept(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    grants = desk(aws, clock)
    pending = ask(grants, people["erin"], duration="10m")
    grants.approve(pending.id, people["sam"])

    clock.now += 600
    with pytest.raises(GrantConflict, match="has already expired"):
        grants.revoke(pending.id, people["sam"])
    assert live_item(aws, pending.id) is not None  # the sweeper's to end
    assert sweep_expired(store(aws), emitter(aws), "test", clock.now) == [pending.id]

    assert store(aws).get(pending.id).status == "expired"
    assert [e["grant"]["action"] for e in grant_events(aws)] == [
        "requested",
        "approved",
        "expired",
    ]


def test_a_revocation_that_lost_a_race_with_expiry_conflicts(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"], duration="10m")
    approved = grants.approve(pending.id, people["sam"])

    # The store itself refuses to end early a grant that ended on its own.
    with pytest.raises(GrantConflict, match="has already expired"):
        store(aws).revoke(approved, "someone", T0 + 600)
    assert store(aws).get(pending.id).status == "approved"


@pytest.mark.parametrize(
    "grant_id",
    [NO_SUCH_GRANT, "", "not-a-grant", "x" * 5000, "../GRANT", NO_SUCH_GRANT.upper()],
    ids=["unknown", "empty", "word", "huge", "path", "upper case"],
)
def test_unknown_and_malformed_ids_are_not_found(
    aws: Resources, people: dict[str, Identity], grant_id: str
) -> None:
    grants = desk(aws, Clock(T0))

    with pytest.raises(GrantNotFound, match="no grant"):
        grants.approve(grant_id, people["sam"])
    with pytest.raises(GrantNotFound):
        grants.revoke(grant_id, people["sam"])
    with pytest.raises(GrantNotFound):
        store(aws).get(grant_id)


def test_two_approvers_racing_yield_one_approval(
    aws: Resources, people: dict[str, Identity]
) -> None:
    pending = ask(desk(aws, Clock(T0)), people["erin"])
    seen_by_both = store(aws).get(pending.id)

    store(aws).approve(seen_by_both, "first", T0 + 100)
    with pytest.raises(GrantConflict, match="it is already approved"):
        store(aws).approve(seen_by_both, "second", T0 + 200)

    assert (store(aws).get(pending.id).approver, store(aws).get(pending.id).expires_at) == (
        "first",
        T0 + 100 + 7200,
    )
    assert [g.approver for g in store(aws).live_grants()] == ["first"]


def test_an_approval_racing_a_withdrawal_never_goes_live(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])
    seen_by_approver = store(aws).get(pending.id)

    grants.revoke(pending.id, people["erin"])
    with pytest.raises(GrantConflict, match="was already revoked"):
        store(aws).approve(seen_by_approver, "sam", T0 + 1)

    assert live_item(aws, pending.id) is None
    assert store(aws).get(pending.id).status == "revoked"


# --- audit failures ----------------------------------------------------------------------------


def test_a_change_that_cannot_be_audited_is_reported_loudly(
    aws: Resources, people: dict[str, Identity], emitter_log: list[logging.LogRecord]
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])
    queued_events(aws)
    audit_queue_down(aws)

    with pytest.raises(GrantNotAudited, match=f"grant {pending.id} approved, but") as failed:
        grants.approve(pending.id, people["sam"])

    assert (failed.value.grant_ids, failed.value.action) == ((pending.id,), "approved")
    assert store(aws).get(pending.id).status == "approved"  # the change stands...
    logged = [r.getMessage() for r in emitter_log if r.levelno == logging.ERROR]
    assert len(logged) == 1  # ...and its event is in the log, in full
    event = json.loads(logged[0].split("event follows: ", 1)[1])
    assert (event["grant"]["action"], event["grant"]["grant_id"]) == ("approved", pending.id)


# --- the sweeper -------------------------------------------------------------------------------


def test_the_sweeper_ends_each_grant_on_its_second_and_audits_it_once(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    short = ask(grants, people["erin"], duration="10m")
    long = ask(grants, people["erin"], duration="2h")
    grants.approve(short.id, people["sam"])
    grants.approve(long.id, people["sam"])
    queued_events(aws)
    sweeps = emitter(aws)

    assert sweep_expired(store(aws), sweeps, "test", T0 + 599.999) == []
    assert sweep_expired(store(aws), sweeps, "test", T0 + 600) == [short.id]
    assert sweep_expired(store(aws), sweeps, "test", T0 + 601) == []
    assert sweep_expired(store(aws), sweeps, "test", T0 + 7200) == [long.id]
    assert sweep_expired(store(aws), sweeps, "test", T0 + 9999) == []

    ended = {g.id: (g.status, g.ended_at) for g in store(aws).list_grants()}
    assert ended == {short.id: ("expired", T0 + 600), long.id: ("expired", T0 + 7200)}
    assert store(aws).live_grants() == []
    events = grant_events(aws)
    assert [(e["grant"]["action"], e["grant"]["grant_id"]) for e in events] == [
        ("expired", short.id),
        ("expired", long.id),
    ]
    assert events[0]["grant"]["ended_at"] == "2027-01-15T08:10:00.000Z"
    assert (events[0]["principal"], events[0]["aws"]) == (None, None)  # nobody acted


def test_a_grant_is_never_expired_early(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(T0))
    approved = grants.approve(ask(grants, people["erin"], duration="10m").id, people["sam"])

    assert store(aws).expire(approved, T0 + 599) is False
    assert store(aws).get(approved.id).status == "approved"


class Turns:
    """Runs the calls of several threads one at a time, in a scripted order.

    Each call waits until the script names it, then runs holding the lock,
    so moto only ever serves one call at a time.
    """

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.done = 0
        self._turn = threading.Condition()

    def call(self, name: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        with self._turn:
            ours = self._turn.wait_for(
                lambda: self.done < len(self.script) and self.script[self.done] == name,
                timeout=10,
            )
            assert ours, f"{name} never got its turn (script step {self.done})"
            try:
                return method(**kwargs)
            finally:
                self.done += 1
                self._turn.notify_all()


class ScriptedClient:
    """A boto3 client whose calls take their turn (the AWS SDK, not our code)."""

    def __init__(self, client: Any, who: str, turns: Turns) -> None:
        self._client, self._who, self._turns = client, who, turns

    def __getattr__(self, operation: str) -> Callable[..., Any]:
        method = getattr(self._client, operation)
        return lambda **kwargs: self._turns.call(f"{self._who}.{operation}", method, **kwargs)


def test_two_sweepers_interleaved_expire_each_grant_exactly_once(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    first = grants.approve(ask(grants, people["erin"], duration="10m").id, people["sam"])
    second = grants.approve(ask(grants, people["erin"], duration="10m").id, people["sam"])
    queued_events(aws)
    # Both read the same two live grants; then each wins the grant the other tries second.
    turns = Turns(
        [
            "A.query",
            "B.query",
            "B.transact_write_items",  # B expires the first grant
            "B.send_message",
            "A.transact_write_items",  # A tries the first: already gone
            "A.transact_write_items",  # A expires the second
            "A.send_message",
            "B.transact_write_items",  # B tries the second: already gone
        ]
    )

    def sweeper(who: str) -> list[str]:
        dynamodb = ScriptedClient(boto3.client("dynamodb", region_name="us-east-1"), who, turns)
        sqs = ScriptedClient(boto3.client("sqs", region_name="us-east-1"), who, turns)
        return sweep_expired(store(aws, dynamodb), emitter(aws, sqs), "test", T0 + 600)

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = pool.submit(sweeper, "A"), pool.submit(sweeper, "B")
        swept_by = {"A": a.result(timeout=30), "B": b.result(timeout=30)}

    assert turns.done == len(turns.script)
    assert swept_by == {"A": [second.id], "B": [first.id]}
    events = grant_events(aws)
    assert sorted(e["grant"]["grant_id"] for e in events) == sorted([first.id, second.id])
    assert {e["grant"]["action"] for e in events} == {"expired"}
    assert {g.status for g in store(aws).list_grants()} == {"expired"}
    assert store(aws).live_grants() == []


def test_a_sweep_stops_when_the_audit_queue_is_down_and_loses_no_event(
    aws: Resources, people: dict[str, Identity], emitter_log: list[logging.LogRecord]
) -> None:
    grants = desk(aws, Clock(T0))
    first = grants.approve(ask(grants, people["erin"], duration="10m").id, people["sam"])
    second = grants.approve(ask(grants, people["erin"], duration="10m").id, people["sam"])
    queued_events(aws)
    queue_back = audit_queue_down(aws)

    with pytest.raises(GrantNotAudited, match=f"grant {first.id} expired, but") as failed:
        sweep_expired(store(aws), emitter(aws), "test", T0 + 600)

    assert failed.value.grant_ids == (first.id,)
    assert store(aws).get(first.id).status == "expired"
    assert [g.id for g in store(aws).live_grants()] == [second.id]  # no unrecorded endings
    assert first.id in "".join(r.getMessage() for r in emitter_log)
    [kept] = store(aws).outbox(written_before=time.time() + 1)
    assert (kept["grant"]["action"], kept["grant"]["grant_id"]) == ("expired", first.id)
    queue_back()
    assert sweep_expired(store(aws), emitter(aws), "test", T0 + 660) == [second.id]
    assert [e["grant"]["grant_id"] for e in grant_events(aws)] == [second.id]
    # The first ending's event was kept with it; the next sweeper run enqueues it.
    later = time.time() + OUTBOX_GRACE_SECONDS + 1
    assert redeliver_outbox(store(aws), emitter(aws), later) == [kept["event_id"]]
    assert grant_events(aws) == [kept]
    assert store(aws).outbox(written_before=later) == []


# --- reading grants ----------------------------------------------------------------------------


def test_a_persons_grants_are_listed_in_every_state_newest_first_and_only_theirs(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    grants = desk(aws, clock)
    made = []
    for step in ("approve", "deny", "revoke", None):
        grant = ask(grants, people["erin"])
        if step:
            getattr(grants, step)(grant.id, people["sam"])
        made.append(grant.id)
    ask(grants, people["mallory"])

    theirs = store(aws).grants_for_principal(ISSUER, "erin")

    assert [g.id for g in theirs] == made[::-1]
    assert [g.status for g in theirs] == ["pending", "revoked", "denied", "approved"]
    assert store(aws).grants_for_principal("https://other", "erin") == []


def test_listed_grants_can_leave_out_ended_ones_and_be_limited(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(T0)
    grants = desk(aws, clock)
    lapsed = grants.approve(ask(grants, people["erin"], duration="10m").id, people["sam"])
    in_force = grants.approve(ask(grants, people["erin"], duration="2h").id, people["sam"])
    denied = grants.deny(ask(grants, people["erin"]).id, people["sam"])
    pending = ask(grants, people["erin"])

    every = store(aws).list_grants(at=T0 + 600)
    open_ = store(aws).list_grants(include_ended=False, at=T0 + 600)

    assert [g.id for g in every] == [pending.id, denied.id, in_force.id, lapsed.id]
    # An approved grant past expiry has ended, swept or not.
    assert [g.id for g in open_] == [pending.id, in_force.id]
    assert [g.id for g in store(aws).list_grants(2)] == [pending.id, denied.id]
    assert store(aws).list_grants(0) == []


@pytest.mark.parametrize(
    "issuer", ["https://other-idp.test.example", "https://idp.test.example.evil.com"]
)
def test_another_issuers_security_group_does_not_approve(
    aws: Resources, people: dict[str, Identity], issuer: str
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])
    # Same subject, same group name, another identity provider: not our approver.
    impostor = replace(people["sam"], issuer=issuer)
    with pytest.raises(GrantInvalid, match="only members of security"):
        grants.approve(pending.id, impostor)
    # The default issuer's own, spelled with a trailing slash, still is.
    ours = replace(people["sam"], issuer=ISSUER + "/")
    assert grants.approve(pending.id, ours).status == "approved"
