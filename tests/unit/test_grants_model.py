"""Grants as values: in force to the second, what they cover, how they are stored and read back.

Pure: no AWS. The DynamoDB item shape is tested through the store's own
encode/decode functions, as the store and the authorizer use them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.grants import Grant, GrantConflict, GrantsUnavailable
from chalicelib.grants.events import grant_details
from chalicelib.grants.items import grant_from_item, grant_item
from chalicelib.grants.lifecycle import format_duration
from chalicelib.grants.store import state_conflict
from chalicelib.policy.globs import compile_glob
from chalicelib.policy.model import MAX_GRANT_DURATION_SECONDS, parse_duration

APPROVED_AT = 1_800_000_000.0
EXPIRES_AT = APPROVED_AT + 3600
GRANT_ID = "01a223c4-9e94-74b6-80d1-3a77d8d34270"


def grant(**changes: Any) -> Grant:
    """An approved one-hour grant for erin: GET on /api/customers/** of route demo."""
    fields: dict[str, Any] = {
        "id": GRANT_ID,
        "issuer": "https://idp.test.example",
        "subject": "erin",
        "email": "erin@example.com",
        "routes": ("demo",),
        "actions": frozenset({"GET"}),
        "paths": (compile_glob("/api/customers/**"),),
        "duration_seconds": 3600,
        "justification": "TICKET-9",
        "status": "approved",
        "requested_at": APPROVED_AT - 600,
        "approved_at": APPROVED_AT,
        "expires_at": EXPIRES_AT,
        "approver": "https://idp.test.example|sam (sam@example.com)",
    }
    fields.update(changes)
    return Grant(**fields)


PENDING = grant(status="pending", approved_at=None, expires_at=None, approver=None)
DENIED = grant(
    status="denied", approved_at=None, expires_at=None, ended_at=APPROVED_AT, ended_by="sam"
)
REVOKED = grant(status="revoked", ended_at=APPROVED_AT + 100, ended_by="erin")
EXPIRED = grant(status="expired", ended_at=EXPIRES_AT + 30)


@pytest.mark.parametrize(
    ("the_grant", "at", "in_force"),
    [
        pytest.param(grant(), APPROVED_AT - 1, False, id="the second before approval"),
        pytest.param(grant(), APPROVED_AT - 0.001, False, id="a millisecond before approval"),
        pytest.param(grant(), APPROVED_AT, True, id="the second of approval"),
        pytest.param(grant(), EXPIRES_AT - 1, True, id="the last second"),
        pytest.param(grant(), EXPIRES_AT - 0.001, True, id="the last millisecond"),
        pytest.param(grant(), EXPIRES_AT, False, id="expires_at itself: over"),
        pytest.param(grant(), EXPIRES_AT + 86400, False, id="long after, not yet swept"),
        pytest.param(PENDING, APPROVED_AT, False, id="pending"),
        pytest.param(DENIED, APPROVED_AT, False, id="denied"),
        pytest.param(REVOKED, APPROVED_AT + 99, True, id="replay: the second before revocation"),
        pytest.param(REVOKED, APPROVED_AT + 100, False, id="the second of revocation"),
        pytest.param(REVOKED, APPROVED_AT + 101, False, id="after revocation"),
        pytest.param(
            grant(status="revoked", approved_at=None, expires_at=None, ended_at=APPROVED_AT),
            APPROVED_AT,
            False,
            id="withdrawn while pending",
        ),
        pytest.param(EXPIRED, EXPIRES_AT - 1, True, id="replay of a swept grant: last second"),
        pytest.param(EXPIRED, EXPIRES_AT, False, id="swept: expires_at itself"),
    ],
)
def test_in_force_to_the_second(the_grant: Grant, at: float, in_force: bool) -> None:
    assert the_grant.in_force_at(at) is in_force


@pytest.mark.parametrize(
    ("the_grant", "route", "method", "path", "covered"),
    [
        pytest.param(grant(), "demo", "GET", "/api/customers/42", True, id="in scope"),
        pytest.param(grant(), "demo", "GET", "/api/customers/42/notes/1", True, id="deep"),
        pytest.param(grant(), "demo", "GET", "/api/customers", True, id="** matches nothing"),
        pytest.param(grant(), "demo", "GET", "/api/billing/1", False, id="other path"),
        pytest.param(grant(), "demo", "GET", "/API/customers/42", False, id="case-sensitive"),
        pytest.param(grant(), "demo", "POST", "/api/customers/42", False, id="other method"),
        pytest.param(grant(), "demo", "HEAD", "/api/customers/42", False, id="GET is not HEAD"),
        pytest.param(grant(), "ops", "GET", "/api/customers/42", False, id="other route"),
        pytest.param(grant(paths=()), "demo", "GET", "/anything/at/all", True, id="whole route"),
        pytest.param(
            grant(routes=("demo", "ops"), paths=(compile_glob("/a/*"), compile_glob("/b/**"))),
            "ops",
            "GET",
            "/b/c/d",
            True,
            id="any route, any glob",
        ),
        pytest.param(grant(paths=(compile_glob("/a/*"),)), "demo", "GET", "/a/b/c", False, id="*"),
    ],
)
def test_what_a_grant_covers(
    the_grant: Grant, route: str, method: str, path: str, covered: bool
) -> None:
    assert the_grant.covers(route, method, path) is covered


@pytest.mark.parametrize(
    ("the_grant", "at", "status"),
    [
        pytest.param(grant(), EXPIRES_AT - 1, "approved", id="approved, in force"),
        pytest.param(grant(), EXPIRES_AT, "expired", id="approved, past expiry, not swept"),
        pytest.param(PENDING, EXPIRES_AT * 2, "pending", id="pending waits"),
        pytest.param(REVOKED, EXPIRES_AT * 2, "revoked", id="revoked stays revoked"),
        pytest.param(DENIED, EXPIRES_AT * 2, "denied", id="denied stays denied"),
        pytest.param(EXPIRED, EXPIRES_AT * 2, "expired", id="swept"),
    ],
)
def test_effective_status(the_grant: Grant, at: float, status: str) -> None:
    assert the_grant.effective_status(at) == status


@pytest.mark.parametrize(
    ("the_grant", "max_duration", "plausible"),
    [
        pytest.param(grant(), 3600, True, id="as an approval writes it"),
        pytest.param(grant(), 4 * 3600, True, id="under a longer max_duration"),
        pytest.param(grant(expires_at=EXPIRES_AT + 0.0005), 3600, True, id="float rounding"),
        pytest.param(grant(approver=None), 4 * 3600, False, id="no approver"),
        pytest.param(grant(approver=""), 4 * 3600, False, id="empty approver"),
        pytest.param(grant(approved_at=None), 4 * 3600, False, id="no approval time"),
        pytest.param(grant(expires_at=None), 4 * 3600, False, id="no expiry"),
        pytest.param(grant(), 1800, False, id="longer than the policy now allows"),
        pytest.param(grant(expires_at=EXPIRES_AT + 1), 4 * 3600, False, id="longer than asked"),
        pytest.param(
            grant(expires_at=APPROVED_AT + 3650 * 86400.0), 7 * 86400, False, id="ten years"
        ),
        pytest.param(grant(expires_at=APPROVED_AT), 3600, False, id="zero length"),
        pytest.param(grant(expires_at=APPROVED_AT - 5), 3600, False, id="ends before it starts"),
        pytest.param(
            grant(requested_at=APPROVED_AT + 1), 3600, False, id="approved before requested"
        ),
    ],
)
def test_only_a_record_an_approval_could_write_is_plausible(
    the_grant: Grant, max_duration: int, plausible: bool
) -> None:
    assert the_grant.plausible_under(max_duration) is plausible


def test_a_grant_is_looked_up_by_issuer_and_subject() -> None:
    assert grant().principal == ("https://idp.test.example", "erin")


# --- the stored item ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "the_grant",
    [
        pytest.param(grant(), id="approved"),
        pytest.param(PENDING, id="pending"),
        pytest.param(DENIED, id="denied"),
        pytest.param(REVOKED, id="revoked"),
        pytest.param(grant(first_used_at=APPROVED_AT + 0.25), id="used"),
        pytest.param(grant(email=None, paths=()), id="no email, whole route"),
        pytest.param(grant(justification="Kunde München — 顧客 ✓"), id="unicode"),
    ],
)
def test_an_item_reads_back_as_the_grant_it_stores(the_grant: Grant) -> None:
    item = grant_item("GRANT", the_grant)

    assert item["pk"] == {"S": "GRANT"}
    assert item["sk"] == {"S": the_grant.id}
    assert grant_from_item(item) == the_grant


def test_fractional_moments_survive_the_round_trip_exactly() -> None:
    moment = 1_800_000_000.123456
    stored = grant_from_item(grant_item("GRANT", grant(approved_at=moment)))
    assert stored.approved_at == moment


def _corrupt(change: str) -> dict[str, Any]:
    item = grant_item("GRANT", grant())
    if change == "no status":
        del item["status"]
    elif change == "unknown status":
        item["status"] = {"S": "active"}
    elif change == "scope not JSON":
        item["scope"] = {"S": "{routes"}
    elif change == "scope without paths":
        item["scope"] = {"S": '{"routes":["demo"],"actions":["GET"]}'}
    elif change == "bad glob":
        item["scope"] = {"S": '{"routes":["demo"],"actions":["GET"],"paths":["no-slash"]}'}
    elif change == "duration not a number":
        item["duration_seconds"] = {"N": "two hours"}
    elif change == "expiry of the wrong type":
        item["expires_at"] = {"S": "tomorrow"}
    return item


@pytest.mark.parametrize(
    "change",
    [
        "no status",
        "unknown status",
        "scope not JSON",
        "scope without paths",
        "bad glob",
        "duration not a number",
        "expiry of the wrong type",
    ],
)
def test_a_corrupt_item_is_never_honoured(change: str) -> None:
    with pytest.raises(GrantsUnavailable, match="corrupt"):
        grant_from_item(_corrupt(change))


# --- messages and event details -------------------------------------------------------------


@pytest.mark.parametrize(
    ("the_grant", "verb", "at", "state"),
    [
        pytest.param(grant(), "approve", APPROVED_AT, "is already approved", id="approved"),
        pytest.param(grant(), "revoke", EXPIRES_AT, "has already expired", id="past expiry"),
        pytest.param(PENDING, "approve", APPROVED_AT, "is still pending", id="pending"),
        pytest.param(DENIED, "approve", APPROVED_AT, "was already denied", id="denied"),
        pytest.param(REVOKED, "revoke", APPROVED_AT, "was already revoked", id="revoked"),
        pytest.param(EXPIRED, "deny", APPROVED_AT, "has already expired", id="swept"),
    ],
)
def test_conflicts_say_what_state_the_grant_is_in(
    the_grant: Grant, verb: str, at: float, state: str
) -> None:
    error = state_conflict(the_grant, verb, at)

    assert isinstance(error, GrantConflict)
    assert str(error) == f"cannot {verb} grant {GRANT_ID}: it {state}"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1s"), (60, "1m"), (5400, "1h30m"), (14400, "4h"), (86400 + 61, "1d1m1s"), (0, "0s")],
)
def test_format_duration(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=MAX_GRANT_DURATION_SECONDS))
def test_format_duration_reads_back_with_parse_duration(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_event_details_name_everything_a_reviewer_needs() -> None:
    details = grant_details("revoked", REVOKED, reason="done", ignored=None)

    assert details == {
        "action": "revoked",
        "grant_id": GRANT_ID,
        "requester": {
            "issuer": "https://idp.test.example",
            "subject": "erin",
            "email": "erin@example.com",
        },
        "routes": ["demo"],
        "actions": ["GET"],
        "paths": ["/api/customers/**"],
        "duration_seconds": 3600,
        "justification": "TICKET-9",
        "approver": "https://idp.test.example|sam (sam@example.com)",
        "expires_at": "2027-01-15T09:00:00.000Z",
        "reason": "done",
    }
    assert grant_details("requested", PENDING)["expires_at"] is None


def test_grants_are_immutable_values() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        grant().status = "revoked"  # type: ignore[misc]
