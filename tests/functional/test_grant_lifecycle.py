"""Just-in-time grants against moto: the lifecycle, every refusal, the sweeper, the cache,
and a grant used through the real authorizer handler.

People are real: their identities come from tokens signed with real keys and
verified by the same verifier the authorizer uses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.audit import AuditEmitter, SqsAuditSink
from chalicelib.config import TrustedIssuer
from chalicelib.grants import (
    ActiveGrants,
    GrantConflict,
    GrantDesk,
    GrantInvalid,
    GrantNotFound,
    GrantStore,
    GrantsUnavailable,
    sweep_expired,
)
from chalicelib.identity import Identity, JwksCache, TokenVerifier
from chalicelib.policy import parse_policy
from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_access_policy import decide, effect
from tests.helpers import AUDIENCE, ISSUER, FakeIdp, claims, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

GRANTS = {"approver_groups": ["security"], "max_duration": "4h"}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def people(idp: FakeIdp, rsa_key: Any) -> dict[str, Identity]:
    verifier = TokenVerifier(
        (TrustedIssuer(ISSUER, (AUDIENCE,)),),
        JwksCache(idp, cooldown_seconds=30, max_age_seconds=3600),
    )

    def verified(sub: str, groups: list[str], email: str | None = None) -> Identity:
        token = make_token(
            rsa_key,
            "RS256",
            "rsa-1",
            claims(sub=sub, groups=groups, email=email or f"{sub}@example.com"),
        )
        return verifier.verify(token)

    return {
        "erin": verified("erin", ["support"]),
        "sam": verified("sam", ["security"]),
        "sam-alias": verified("sam-2", ["security"], email="erin@example.com"),
        "erin-approver": verified("erin", ["security"]),
        "mallory": verified("mallory", ["support"]),
    }


def store(aws: Resources) -> GrantStore:
    return GrantStore(boto3.client("dynamodb", region_name="us-east-1"), aws.policy_table)


def desk(aws: Resources, clock: Clock, **blocks: Any) -> GrantDesk:
    document = policy_document("http://127.0.0.1:9")
    document.update(blocks if blocks else {"grants": GRANTS})
    sqs = boto3.client("sqs", region_name="us-east-1")
    return GrantDesk(
        store(aws),
        parse_policy(document),
        AuditEmitter(SqsAuditSink(sqs, aws.audit_queue_url)),
        stage="test",
        operator="arn:aws:iam::123456789012:user/ops",
        clock=clock,
    )


def ask(grants: GrantDesk, who: Identity, **changes: Any) -> Any:
    request: dict[str, Any] = {
        "routes": ["demo"],
        "actions": ["GET"],
        "paths": ["/api/customers/**"],
        "duration": "2h",
        "justification": "TICKET-9 customer escalation",
    }
    request.update(changes)
    return grants.request(who, **request)


def grant_events(aws: Resources) -> list[dict[str, Any]]:
    return [e for e in queued_events(aws) if e["event_type"] == "grant"]


def test_requested_approved_revoked_each_audited(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(1_800_000_000.0)
    grants = desk(aws, clock)

    pending = ask(grants, people["erin"])
    clock.now += 300
    approved = grants.approve(pending.id, people["sam"])
    clock.now += 60
    revoked = grants.revoke(pending.id, people["erin"], reason="done early")

    assert pending.status == "pending"
    assert pending.principal == (ISSUER, "erin")
    assert (approved.approved_at, approved.expires_at) == (clock.now - 60, clock.now - 60 + 7200)
    assert revoked.status == "revoked"
    assert revoked.ended_at == clock.now
    assert store(aws).get(pending.id).status == "revoked"
    assert store(aws).live_grants() == []
    events = grant_events(aws)
    assert [e["grant"]["action"] for e in events] == ["requested", "approved", "revoked"]
    assert [e["principal"]["subject"] for e in events] == ["erin", "sam", "erin"]
    assert events[1]["grant"]["approver"].startswith(f"{ISSUER}|sam")
    assert events[2]["grant"]["reason"] == "done early"
    assert all(e["aws"]["caller_arn"].endswith("user/ops") for e in events)


def test_a_denied_grant_never_goes_live(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))
    pending = ask(grants, people["erin"])

    grants.deny(pending.id, people["sam"], reason="not needed")

    assert store(aws).get(pending.id).status == "denied"
    with pytest.raises(GrantConflict):
        grants.approve(pending.id, people["sam"])
    assert store(aws).live_grants() == []
    assert [e["grant"]["action"] for e in grant_events(aws)] == ["requested", "denied"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"routes": ["nope"]}, "unknown route 'nope'"),
        ({"routes": []}, "at least one route"),
        ({"duration": "5h"}, "exceeds the policy's max_duration"),
        ({"duration": "soon"}, "is not like"),
        ({"actions": ["FETCH"]}, "'FETCH' is not an HTTP method"),
        ({"paths": ["api/**"]}, "does not start with /"),
        ({"justification": "   "}, "justification"),
        ({"justification": "x" * 501}, "justification"),
        ({"justification": "ok\nforged line"}, "justification"),
    ],
    ids=[
        "unknown route",
        "no route",
        "too long",
        "bad duration",
        "bad method",
        "bad glob",
        "blank reason",
        "long reason",
        "control characters",
    ],
)
def test_bad_requests_are_refused_and_nothing_is_stored(
    aws: Resources, people: dict[str, Identity], changes: dict[str, Any], message: str
) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))

    with pytest.raises(GrantInvalid, match=message):
        ask(grants, people["erin"], **changes)

    assert store(aws).list_grants() == []
    assert grant_events(aws) == []


def test_no_grants_without_a_grants_block(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(1_800_000_000.0), break_glass={"groups": ["oncall"]})
    with pytest.raises(GrantInvalid, match="not enabled"):
        ask(grants, people["erin"])


@pytest.mark.parametrize(
    ("approver", "message"),
    [
        ("mallory", "only members of security"),
        ("erin-approver", "own grant"),  # the requester, even in the approver group
        ("sam-alias", "own grant"),  # another subject with the requester's verified email
    ],
)
def test_who_may_approve(
    aws: Resources, people: dict[str, Identity], approver: str, message: str
) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))
    pending = ask(grants, people["erin"])

    with pytest.raises(GrantInvalid, match=message):
        grants.approve(pending.id, people[approver])
    with pytest.raises(GrantInvalid, match=message):
        grants.deny(pending.id, people[approver])

    assert store(aws).get(pending.id).status == "pending"


def test_double_approval_and_strangers_are_refused(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))
    pending = ask(grants, people["erin"])
    grants.approve(pending.id, people["sam"])

    with pytest.raises(GrantConflict):
        grants.approve(pending.id, people["sam"])
    with pytest.raises(GrantInvalid, match="requester or an approver"):
        grants.revoke(pending.id, people["mallory"])
    grants.revoke(pending.id, people["sam"])
    with pytest.raises(GrantConflict, match="already revoked"):
        grants.revoke(pending.id, people["erin"])
    with pytest.raises(GrantNotFound):
        grants.approve("01a00000-0000-7000-8000-000000000000", people["sam"])


def test_two_approvers_racing_yield_one_approval(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))
    pending = ask(grants, people["erin"])
    seen_by_both = store(aws).get(pending.id)

    store(aws).approve(seen_by_both, "first", 1_800_000_100.0)
    with pytest.raises(GrantConflict):
        store(aws).approve(seen_by_both, "second", 1_800_000_200.0)

    assert store(aws).get(pending.id).approver == "first"
    assert len(store(aws).live_grants()) == 1


def test_the_sweeper_expires_each_grant_exactly_once(
    aws: Resources, people: dict[str, Identity]
) -> None:
    clock = Clock(1_800_000_000.0)
    grants = desk(aws, clock)
    short = ask(grants, people["erin"], duration="10m")
    long = ask(grants, people["erin"], duration="2h")
    grants.approve(short.id, people["sam"])
    grants.approve(long.id, people["sam"])
    queued_events(aws)
    sqs = boto3.client("sqs", region_name="us-east-1")
    emitter = AuditEmitter(SqsAuditSink(sqs, aws.audit_queue_url))

    assert sweep_expired(store(aws), emitter, "test", clock.now + 599) == []
    # Two sweepers that both saw the grant live: one wins, one does nothing.
    live = store(aws).live_grants()
    expired_now = [g for g in live if g.id == short.id]
    assert store(aws).expire(expired_now[0], clock.now + 600) is True
    assert store(aws).expire(expired_now[0], clock.now + 601) is False
    assert sweep_expired(store(aws), emitter, "test", clock.now + 600) == []
    assert sweep_expired(store(aws), emitter, "test", clock.now + 7200) == [long.id]

    assert {g.id: g.status for g in store(aws).list_grants()} == {
        short.id: "expired",
        long.id: "expired",
    }
    assert [e["grant"]["grant_id"] for e in grant_events(aws)] == [long.id]


def test_mark_used_answers_true_once(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))
    pending = ask(grants, people["erin"])

    assert store(aws).mark_used(pending.id, 1.0) is True
    assert store(aws).mark_used(pending.id, 2.0) is False
    assert store(aws).mark_used("01a00000-0000-7000-8000-000000000000", 3.0) is False
    grants.approve(pending.id, people["sam"])  # an update: keeps first_used_at
    assert store(aws).get(pending.id).first_used_at == 1.0


def test_active_grants_refresh_go_stale_then_fail_closed(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(1_800_000_000.0))
    cache_clock = Clock(100.0)
    cache = ActiveGrants(store(aws), refresh_seconds=10, max_stale_seconds=60, clock=cache_clock)
    assert cache.for_principal(ISSUER, "erin") == ()

    pending = ask(grants, people["erin"])
    grants.approve(pending.id, people["sam"])
    cache_clock.now += 9.9
    assert cache.for_principal(ISSUER, "erin") == ()
    cache_clock.now += 0.1
    assert [g.id for g in cache.for_principal(ISSUER, "erin")] == [pending.id]
    assert cache.for_principal(ISSUER, "sam") == ()

    boto3.client("dynamodb", region_name="us-east-1").delete_table(TableName=aws.policy_table)
    cache_clock.now += 59
    assert [g.id for g in cache.for_principal(ISSUER, "erin")] == [pending.id]
    cache_clock.now += 1
    with pytest.raises(GrantsUnavailable):
        cache.for_principal(ISSUER, "erin")


def test_a_grant_through_the_authorizer_is_used_once_and_ends_on_its_second(
    stage: Container,
    aws: Resources,
    backend: DemoBackend,
    rsa_key: Any,
    people: dict[str, Identity],
) -> None:
    document = policy_document(backend.url)
    document["grants"] = GRANTS
    stage.policy_store.publish(document, actor="test")
    token = make_token(rsa_key, "RS256", "rsa-1", claims(sub="erin", groups=["support"]))
    path = "/api/customers/42"
    assert effect(decide(token, path=path)) == "Deny"

    # Approved 2 h minus 3 s ago: three seconds of the grant are left.
    clock = Clock(time.time() - 7200 + 3)
    grants = desk(aws, clock)
    pending = ask(grants, people["erin"])
    grants.approve(pending.id, people["sam"])
    queued_events(aws)

    first, second = decide(token, path=path), decide(token, path=path)
    elsewhere = decide(token, path="/api/billing/1")

    assert (effect(first), effect(second), effect(elsewhere)) == ("Allow", "Allow", "Deny")
    assert first["context"]["grant_id"] == pending.id
    events = queued_events(aws)
    allowed = [
        e for e in events if e["event_type"] == "decision" and e["decision"]["outcome"] == "allow"
    ]
    assert [e["decision"]["reasons"] for e in allowed] == [["grant_matched"]] * 2
    assert {e["elevation"]["grant_id"] for e in allowed} == {pending.id}
    assert {e["elevation"]["approver"] for e in allowed} == {f"{ISSUER}|sam (sam@example.com)"}
    used = [e for e in events if e["event_type"] == "grant"]
    assert [(e["grant"]["action"], e["grant"]["grant_id"]) for e in used] == [("used", pending.id)]

    expires_at = store(aws).get(pending.id).expires_at
    assert expires_at is not None
    time.sleep(max(0.0, expires_at - time.time()))
    assert effect(decide(token, path=path)) == "Deny"
