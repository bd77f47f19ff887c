"""What the authorizer honours: grants in force through the real handler, their first use,
the per-container cache of live grants, and never a grant no approval could have written.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.grants import ActiveGrants, Grant, GrantsUnavailable, sweep_expired
from chalicelib.grants.items import grant_item
from chalicelib.grants.store import ENDED_GRANTS_KEPT_SECONDS
from chalicelib.policy.globs import compile_glob
from tests.functional.conftest import (
    NO_SUCH_GRANT,
    T0,
    Clock,
    ask,
    desk,
    emitter,
    queued_events,
    store,
)
from tests.functional.test_access_policy import decide, effect
from tests.functional.test_grant_api import token_for
from tests.helpers import ISSUER, claims, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from chalicelib.identity import Identity
    from gatehouse.dev.bootstrap import Resources


# --- a grant in force, through the authorizer handler ----------------------------------------


def test_a_grant_through_the_authorizer_is_used_once_and_ends_on_its_second(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    people: dict[str, Identity],
) -> None:
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
    assert store(aws).outbox(written_before=time.time() + 1) == []  # enqueued, so cleared

    expires_at = store(aws).get(pending.id).expires_at
    assert expires_at is not None
    time.sleep(max(0.0, expires_at - time.time()))
    queued_events(aws)
    assert effect(decide(token, path=path)) == "Deny"
    [refused] = [e for e in queued_events(aws) if e["event_type"] == "decision"]
    assert refused["decision"]["reasons"] == ["grant_expired"]  # not swept yet: still named


# --- a refusal names the grant that ended ---------------------------------------------------


@pytest.mark.parametrize(
    ("ending", "reason"),
    [
        ("revoke", "grant_revoked"),
        ("deny", "grant_denied"),
        ("sweep", "grant_expired"),
        ("withdraw", None),  # a request withdrawn before approval never gave access
    ],
)
def test_a_refusal_names_the_ended_grant_that_would_have_covered_it(
    granting: Container,
    aws: Resources,
    rsa_key: Any,
    people: dict[str, Identity],
    ending: str,
    reason: str | None,
) -> None:
    token = make_token(rsa_key, "RS256", "rsa-1", claims(sub="erin", groups=["support"]))
    # A sweep needs a grant past expiry: approved 2 h and 5 s ago.
    clock = Clock(time.time() - (7205 if ending == "sweep" else 0))
    grants = desk(aws, clock)
    pending = ask(grants, people["erin"])
    if ending == "deny":
        grants.deny(pending.id, people["sam"])
    elif ending == "withdraw":
        grants.revoke(pending.id, people["erin"])
    else:
        grants.approve(pending.id, people["sam"])
        if ending == "revoke":
            grants.revoke(pending.id, people["sam"])
        else:
            assert sweep_expired(store(aws), emitter(aws), "test", time.time()) == [pending.id]
    queued_events(aws)

    covered = decide(token, path="/api/customers/42")
    elsewhere = decide(token, path="/api/billing/1")

    assert (effect(covered), effect(elsewhere)) == ("Deny", "Deny")
    events = queued_events(aws)
    decisions = [e for e in events if e["event_type"] == "decision"]
    assert [e["decision"]["reasons"] for e in decisions] == [
        [reason or "no_matching_rule"],
        ["no_matching_rule"],
    ]
    detail = decisions[0]["decision"].get("detail") or ""
    assert (pending.id in detail) is (reason is not None)
    # A refusal is no use of the grant, and no elevation.
    assert not [e for e in events if e["event_type"] == "grant"]
    assert decisions[0].get("elevation") is None


def test_ended_grants_are_named_for_a_day_only(aws: Resources, people: dict[str, Identity]) -> None:
    grants = desk(aws, Clock(T0))
    old, recent = ask(grants, people["erin"]), ask(grants, people["erin"])
    grants.deny(old.id, people["sam"])
    desk(aws, Clock(T0 + ENDED_GRANTS_KEPT_SECONDS)).deny(recent.id, people["sam"])

    withdrawn = ask(grants, people["erin"])
    grants.revoke(withdrawn.id, people["erin"])  # never approved: nothing to name
    ended = store(aws).recently_ended(T0 + 1)

    assert [(g.id, g.status) for g in ended] == [(recent.id, "denied")]
    assert {g.id for g in store(aws).recently_ended(T0)} == {old.id, recent.id}
    assert store(aws).live_grants() == []


# --- only what an approval could have written ------------------------------------------------


def written_past_the_api(aws: Resources, grant: Grant) -> None:
    """Write a grant's record and live copy straight into the table, as an attacker with
    table access would (bypassing the grant API)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    for item in (grant_item("GRANT", grant), grant_item("GRANT-LIVE", grant)):
        dynamodb.put_item(TableName=aws.state_table, Item=item)


@pytest.mark.parametrize(
    ("changes", "honoured"),
    [
        pytest.param({}, True, id="as the API writes it"),
        pytest.param({"approver": None}, False, id="no approver"),
        pytest.param({"approver": ""}, False, id="empty approver"),
        pytest.param({"expires_at": 3650 * 86400.0}, False, id="ten years"),
        pytest.param(
            {"expires_at": 8 * 86400.0, "duration_seconds": 8 * 86400},
            False,
            id="beyond the 7-day hard maximum",
        ),
        # Longer than the policy's max_duration now allows: capped to it, not voided.
        pytest.param(
            {"expires_at": 6 * 3600.0, "duration_seconds": 6 * 3600}, True, id="capped, within"
        ),
        pytest.param(
            {"expires_at": 6 * 3600.0, "duration_seconds": 6 * 3600, "approved_at": -5 * 3600.0},
            False,
            id="capped, past the policy's max_duration",
        ),
        pytest.param({"expires_at": 2 * 3600 + 1.0}, False, id="longer than it asked for"),
        pytest.param({"requested_at": 60.0}, False, id="approved before it was requested"),
    ],
)
def test_the_authorizer_honours_only_grants_an_approval_could_have_written(
    granting: Container, aws: Resources, rsa_key: Any, changes: dict[str, Any], honoured: bool
) -> None:
    approved_at = time.time() - 60
    fields: dict[str, Any] = {
        "id": "01a00000-0000-7000-8000-0000000000aa",
        "issuer": ISSUER,
        "subject": "erin",
        "email": "erin@example.com",
        "routes": ("demo",),
        "actions": frozenset({"GET"}),
        "paths": (compile_glob("/api/customers/**"),),
        "duration_seconds": 7200,
        "justification": "forged?",
        "status": "approved",
        "requested_at": approved_at - 30,
        "approved_at": approved_at,
        "expires_at": 7200.0,
        "approver": f"{ISSUER}|sam (sam@example.com)",
    }
    for name, value in changes.items():
        fields[name] = value
    if "approved_at" in changes:  # an offset from a minute ago
        fields["approved_at"] = approved_at + changes["approved_at"]
        fields["requested_at"] = fields["approved_at"] - 30
    fields["expires_at"] += fields["approved_at"]  # offsets from the approval
    if "requested_at" in changes:
        fields["requested_at"] += approved_at
    written_past_the_api(aws, Grant(**fields))

    answer = decide(token_for(rsa_key, "erin", ["support"]), path="/api/customers/42")

    assert effect(answer) == ("Allow" if honoured else "Deny")


# --- first use ---------------------------------------------------------------------------------


def test_only_the_first_caller_records_a_grants_first_use(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])
    grants.approve(pending.id, people["sam"])
    one_container, another = store(aws), store(aws)

    assert one_container.mark_used(pending.id, T0 + 5.5) is True
    assert another.mark_used(pending.id, T0 + 6) is False
    assert one_container.mark_used(pending.id, T0 + 7) is False
    assert another.mark_used(NO_SUCH_GRANT, T0 + 8) is False

    grants.revoke(pending.id, people["sam"])  # an update: keeps first_used_at
    assert store(aws).get(pending.id).first_used_at == T0 + 5.5


# --- the per-container cache -------------------------------------------------------------------


def test_approvals_and_revocations_reach_the_authorizer_within_the_refresh_bound(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    monotonic = Clock(100.0)
    cache = ActiveGrants(store(aws), refresh_seconds=10, max_stale_seconds=60, clock=monotonic)
    assert cache.of_principal(ISSUER, "erin").live == ()

    pending = ask(grants, people["erin"])
    grants.approve(pending.id, people["sam"])
    # The same subject at another issuer is another principal.
    stranger = replace(pending, id=NO_SUCH_GRANT, issuer="https://other")
    store(aws).create(stranger)
    store(aws).approve(store(aws).get(NO_SUCH_GRANT), "sam", T0)

    monotonic.now += 9.9
    assert cache.of_principal(ISSUER, "erin").live == ()
    monotonic.now += 0.1
    assert [g.id for g in cache.of_principal(ISSUER, "erin").live] == [pending.id]
    assert [g.id for g in cache.of_principal("https://other", "erin").live] == [NO_SUCH_GRANT]
    assert cache.of_principal(ISSUER, "sam").live == ()

    grants.revoke(pending.id, people["sam"])
    monotonic.now += 9.9
    seen = [(g.id, g.status) for g in cache.of_principal(ISSUER, "erin").live]
    assert seen == [(pending.id, "approved")]
    monotonic.now += 0.1
    assert cache.of_principal(ISSUER, "erin").live == ()
    # Still known, as ended: never offered to allow, only to name a refusal.
    seen_now = cache.of_principal(ISSUER, "erin")
    assert seen_now.live == ()
    assert [(g.id, g.status) for g in seen_now.ended] == [(pending.id, "revoked")]


def test_unreadable_grants_are_served_stale_then_fail_closed_then_recover(
    aws: Resources, people: dict[str, Identity]
) -> None:
    grants = desk(aws, Clock(T0))
    pending = ask(grants, people["erin"])
    grants.approve(pending.id, people["sam"])
    monotonic = Clock(100.0)
    cache = ActiveGrants(store(aws), refresh_seconds=10, max_stale_seconds=60, clock=monotonic)
    assert [g.id for g in cache.of_principal(ISSUER, "erin").live] == [pending.id]
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    table = dynamodb.describe_table(TableName=aws.state_table)["Table"]
    dynamodb.delete_table(TableName=aws.state_table)

    monotonic.now += 59.9  # refreshes fail; the last good set serves
    assert [g.id for g in cache.of_principal(ISSUER, "erin").live] == [pending.id]
    monotonic.now += 0.1
    with pytest.raises(GrantsUnavailable, match="cannot read grants"):
        cache.of_principal(ISSUER, "erin")

    dynamodb.create_table(
        TableName=aws.state_table,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    assert cache.of_principal(ISSUER, "erin").live == ()  # recovered: the new table is empty


def test_live_grants_beyond_the_first_page_are_honoured(aws: Resources) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    # About 3 KB an item: 400 of them fill more than one 1 MB page.
    paths = tuple(compile_glob(f"/api/customers/{n:04d}/" + "x" * 40 + "/**") for n in range(40))
    template = Grant(
        id=NO_SUCH_GRANT,
        issuer=ISSUER,
        subject="erin",
        email="erin@example.com",
        routes=("demo",),
        actions=frozenset({"GET"}),
        paths=paths,
        duration_seconds=3600,
        justification="y" * 500,
        status="approved",
        requested_at=T0,
        approved_at=T0,
        expires_at=T0 + 3600,
    )
    ids = [f"01a00000-0000-7000-8000-{n:012d}" for n in range(400)]
    for start in range(0, len(ids), 25):
        requests = [
            {"PutRequest": {"Item": grant_item("GRANT-LIVE", replace(template, id=grant_id))}}
            for grant_id in ids[start : start + 25]
        ]
        dynamodb.batch_write_item(RequestItems={aws.state_table: requests})
    first_page = dynamodb.query(
        TableName=aws.state_table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "GRANT-LIVE"}},
    )
    assert "LastEvaluatedKey" in first_page  # so the cache must follow pages

    cache = ActiveGrants(store(aws), refresh_seconds=10)

    assert [g.id for g in cache.of_principal(ISSUER, "erin").live] == ids
