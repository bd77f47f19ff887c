"""A JIT grant used through the real authorizer handler: allowed with its id, one ``used``
event for many requests, and refused from its expiry second on.

The lifecycle itself (every refusal, races, the sweeper, the cache) is in
``test_grants.py``, whose helpers this reuses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tests.functional.conftest import policy_document, queued_events
from tests.functional.test_access_policy import decide, effect
from tests.functional.test_grants import GRANTS, Clock, ask, desk, people, store
from tests.helpers import ISSUER, claims, make_token

if TYPE_CHECKING:
    from chalicelib.container import Container
    from chalicelib.identity import Identity
    from gatehouse.dev.backend import DemoBackend
    from gatehouse.dev.bootstrap import Resources

__all__ = ["people"]  # the fixture, shared with test_grants.py


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
    assert store(aws).outbox(written_before=time.time() + 1) == []  # enqueued, so cleared

    expires_at = store(aws).get(pending.id).expires_at
    assert expires_at is not None
    time.sleep(max(0.0, expires_at - time.time()))
    assert effect(decide(token, path=path)) == "Deny"
