"""Sessions in the state table and keys in Secrets Manager (moto): store, revoke, rotate."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.aws.table import Table
from chalicelib.aws.table_errors import CorruptItem
from chalicelib.aws.table_layout import SESSION, SESSION_REVOKED, SESSION_REVOKED_AT
from chalicelib.reasons import Reason
from chalicelib.sessions import (
    SESSION_COOKIE,
    BrowserSession,
    Keyring,
    RevokedSessions,
    SessionError,
    SessionKeySource,
    SessionRejected,
    SessionStore,
    SessionsUnavailable,
    new_session_id,
    rotate_session_keys,
)
from chalicelib.sessions.cookies import sealed_key_id
from chalicelib.sessions.keys import MAX_STALE_SECONDS
from chalicelib.sessions.revocations import FULL_READ_SECONDS, OVERLAP_SECONDS
from chalicelib.sessions.store import revocation_entry_name
from tests.helpers import Clock

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

T0 = 1_796_688_000.0
SECRET = "gatehouse/test/session-keys"
REFRESH_TOKEN = "rt-0123456789-very-secret-refresh-token"


class Switch:
    """A boto3 client that fails every call while ``down``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.down = False
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls += 1
            if self.down:
                raise ConnectionError("endpoint unreachable")
            return method(**kwargs)

        return call


@pytest.fixture
def dynamodb(aws: Resources) -> Switch:
    return Switch(boto3.client("dynamodb", region_name="us-east-1"))


@pytest.fixture
def table(aws: Resources, dynamodb: Switch) -> Table:
    return Table(dynamodb, aws.state_table)


@pytest.fixture
def secrets(aws: Resources) -> Switch:
    return Switch(boto3.client("secretsmanager", region_name="us-east-1"))


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def keys(secrets: Switch, clock: Clock) -> Iterator[SessionKeySource]:
    rotate_session_keys(secrets, SECRET, now=T0 - 86400)
    return SessionKeySource(lambda: secrets, SECRET, refresh_seconds=300, clock=clock)


@pytest.fixture
def store(table: Table, keys: SessionKeySource) -> SessionStore:
    return SessionStore(table, keys)


def browser_session(subject: str = "alice", **changes: Any) -> BrowserSession:
    values: dict[str, Any] = {
        "session_id": new_session_id(),
        "issuer": "https://idp.test.example",
        "idp": "idp.test.example",
        "client_id": "gatehouse",
        "subject": subject,
        "email": f"{subject}@example.com",
        "groups": ("engineering",),
        "groups_claimed": True,
        "amr": ("pwd",),
        "auth_time": int(T0),
        "idp_session_id": "idp-sid-1",
        "claims": {},
        "signed_in_at": int(T0),
        "seen_at": int(T0),
        "refresh_at": int(T0) + 900,
        "expires_at": int(T0) + 43200,
    }
    values.update(changes)
    return BrowserSession(**values)


def raw_item(aws: Resources, pk: str, sk: str) -> dict[str, Any] | None:
    client = boto3.client("dynamodb", region_name="us-east-1")
    item: dict[str, Any] | None = client.get_item(
        TableName=aws.state_table, Key={"pk": {"S": pk}, "sk": {"S": sk}}
    ).get("Item")
    return item


def secret_document(secrets: Switch) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        secrets.client.get_secret_value(SecretId=SECRET)["SecretString"]
    )
    return document


# --- keys ------------------------------------------------------------------------------------


def test_rotate_creates_the_secret_then_puts_each_new_key_first_keeping_n(
    secrets: Switch,
) -> None:
    made = [rotate_session_keys(secrets, SECRET, keep=3, now=T0 + i * 60) for i in range(5)]
    document = secret_document(secrets)
    assert [entry["id"] for entry in document["keys"]] == [k.key_id for k in made[::-1][:3]]
    assert made[-1].key_id == "k20261208T000400"
    newest = document["keys"][0]
    assert base64.b64decode(newest["secret"]) == made[-1].secret
    assert newest["created"] == int(T0 + 240)
    # keep=1: only the new one.
    last = rotate_session_keys(secrets, SECRET, keep=1, now=T0 + 999)
    assert [entry["id"] for entry in secret_document(secrets)["keys"]] == [last.key_id]
    with pytest.raises(ValueError, match="at least one"):
        rotate_session_keys(secrets, SECRET, keep=0)


def test_two_rotations_in_one_second_get_distinct_ids(secrets: Switch) -> None:
    first = rotate_session_keys(secrets, SECRET, now=T0)
    second = rotate_session_keys(secrets, SECRET, now=T0)
    assert first.key_id != second.key_id
    assert [e["id"] for e in secret_document(secrets)["keys"]] == [second.key_id, first.key_id]


def test_rotate_refuses_to_overwrite_a_secret_that_is_not_a_key_set(secrets: Switch) -> None:
    secrets.client.create_secret(Name=SECRET, SecretString="hunter2-not-json")
    with pytest.raises(SessionsUnavailable) as caught:
        rotate_session_keys(secrets, SECRET)
    assert "hunter2" not in str(caught.value)
    assert secrets.client.get_secret_value(SecretId=SECRET)["SecretString"] == "hunter2-not-json"


def test_an_old_cookie_opens_after_a_rotation_until_its_key_is_dropped(
    secrets: Switch, keys: SessionKeySource, clock: Clock
) -> None:
    cookie = keys.keyring().seal({"n": 1}, purpose=SESSION_COOKIE)
    rotate_session_keys(secrets, SECRET, keep=2, now=T0)
    clock.now += 300
    ring = keys.keyring()
    assert sealed_key_id(ring.seal({}, purpose=SESSION_COOKIE)) != sealed_key_id(cookie)
    assert ring.open(cookie, purpose=SESSION_COOKIE) == {"n": 1}
    rotate_session_keys(secrets, SECRET, keep=2, now=T0 + 1)
    clock.now += 300
    with pytest.raises(SessionRejected) as caught:
        keys.keyring().open(cookie, purpose=SESSION_COOKIE)
    assert caught.value.reason is Reason.SESSION_INVALID


def test_keys_are_read_once_then_every_refresh(
    secrets: Switch, keys: SessionKeySource, clock: Clock
) -> None:
    first = keys.keyring()
    calls = secrets.calls
    for _ in range(50):
        assert keys.keyring() is first
    assert secrets.calls == calls
    rotated = rotate_session_keys(secrets, SECRET, now=T0)
    clock.now += 299
    assert keys.keyring() is first
    clock.now += 1
    assert keys.keyring().key_ids[0] == rotated.key_id


def test_a_cookie_sealed_by_a_key_not_seen_yet_triggers_one_early_read(
    secrets: Switch, keys: SessionKeySource, clock: Clock
) -> None:
    keys.keyring()
    rotate_session_keys(secrets, SECRET, now=T0)
    other_container = SessionKeySource(lambda: secrets, SECRET, clock=clock)
    cookie = other_container.keyring().seal({"n": 2}, purpose=SESSION_COOKIE)
    assert keys.open(cookie, purpose=SESSION_COOKIE) == {"n": 2}
    # Garbage naming unknown keys does not make a read per request.
    calls = secrets.calls
    forged = Keyring([rotate_session_keys(secrets, "elsewhere")]).seal({}, purpose=SESSION_COOKIE)
    calls = secrets.calls
    for _ in range(20):
        with pytest.raises(SessionRejected):
            keys.open(forged, purpose=SESSION_COOKIE)
    assert secrets.calls - calls <= 1


def test_a_failed_re_read_keeps_the_last_ring_for_an_hour_then_fails_closed(
    secrets: Switch, keys: SessionKeySource, clock: Clock
) -> None:
    ring = keys.keyring()
    secrets.down = True
    clock.now += 300
    assert keys.keyring() is ring
    clock.now += MAX_STALE_SECONDS - 300
    assert keys.keyring() is ring
    clock.now += 1
    with pytest.raises(SessionsUnavailable, match="cannot be read"):
        keys.keyring()
    secrets.down = False
    clock.now += 10
    assert keys.keyring().key_ids == ring.key_ids


def test_no_secret_or_an_unusable_one_is_sessions_unavailable(
    secrets: Switch, clock: Clock
) -> None:
    missing = SessionKeySource(lambda: secrets, "gatehouse/test/none", clock=clock)
    with pytest.raises(SessionsUnavailable, match="rotate-key"):
        missing.keyring()
    short = base64.b64encode(b"sixteen-byte-key").decode()
    for text in (
        "not json",
        "[]",
        '{"keys": []}',
        json.dumps({"keys": [{"id": "k1", "secret": short}]}),
        json.dumps({"keys": [{"id": "k 1", "secret": base64.b64encode(os.urandom(32)).decode()}]}),
        json.dumps({"keys": [{"id": "k1", "secret": "!!not-base64!!"}]}),
    ):
        name = f"gatehouse/test/bad-{abs(hash(text))}"
        secrets.client.create_secret(Name=name, SecretString=text)
        source = SessionKeySource(lambda: secrets, name, clock=clock)
        with pytest.raises(SessionsUnavailable) as caught:
            source.keyring()
        assert short not in str(caught.value)
        assert "sixteen" not in str(caught.value)


def test_a_missing_secret_is_not_asked_for_on_every_request(secrets: Switch, clock: Clock) -> None:
    missing = SessionKeySource(lambda: secrets, "gatehouse/test/none", clock=clock)
    for _ in range(20):
        with pytest.raises(SessionsUnavailable):
            missing.keyring()
    assert secrets.calls == 1


# --- the store -------------------------------------------------------------------------------


def test_a_created_session_is_read_back(store: SessionStore) -> None:
    session = browser_session()
    store.create(session, refresh_token=REFRESH_TOKEN)
    stored = store.get(session.session_id)
    assert stored is not None
    assert (stored.issuer, stored.subject, stored.email) == (
        session.issuer,
        "alice",
        "alice@example.com",
    )
    assert (stored.signed_in_at, stored.expires_at) == (session.signed_in_at, session.expires_at)
    assert stored.has_refresh_token
    assert not stored.revoked
    assert store.refresh_token(session.session_id) == REFRESH_TOKEN
    with pytest.raises(SessionError, match="exists"):
        store.create(session, refresh_token=None)


def test_the_refresh_token_is_never_stored_in_clear(aws: Resources, store: SessionStore) -> None:
    session = browser_session()
    store.create(session, refresh_token=REFRESH_TOKEN)
    store.replace_refresh_token(session.session_id, REFRESH_TOKEN + "-2")
    item = raw_item(aws, "SESSION", session.session_id)
    assert item is not None
    assert REFRESH_TOKEN not in json.dumps(item)
    assert int(item["ttl"]["N"]) == session.expires_at
    assert store.refresh_token(session.session_id) == REFRESH_TOKEN + "-2"


def test_a_refresh_token_sealed_for_one_session_does_not_open_for_another(
    aws: Resources, store: SessionStore, dynamodb: Switch
) -> None:
    one, two = browser_session(), browser_session()
    store.create(one, refresh_token=REFRESH_TOKEN)
    store.create(two, refresh_token="other")
    sealed = raw_item(aws, "SESSION", one.session_id)["refresh_token"]  # type: ignore[index]
    dynamodb.client.update_item(
        TableName=aws.state_table,
        Key={"pk": {"S": "SESSION"}, "sk": {"S": two.session_id}},
        UpdateExpression="SET refresh_token = :t",
        ExpressionAttributeValues={":t": sealed},
    )
    with pytest.raises(SessionRejected) as caught:
        store.refresh_token(two.session_id)
    assert caught.value.reason is Reason.SESSION_INVALID


def test_refresh_tokens_can_be_forgotten_and_unknown_sessions_have_none(
    store: SessionStore,
) -> None:
    session = browser_session()
    store.create(session, refresh_token=None)
    assert store.refresh_token(session.session_id) is None
    store.replace_refresh_token(session.session_id, "new")
    assert store.refresh_token(session.session_id) == "new"
    store.replace_refresh_token(session.session_id, None)
    assert store.refresh_token(session.session_id) is None
    assert store.refresh_token(new_session_id()) is None
    assert store.refresh_token("../../etc") is None
    assert store.get("") is None
    with pytest.raises(SessionRejected) as caught:
        store.replace_refresh_token(new_session_id(), "x")
    assert caught.value.reason is Reason.SESSION_REVOKED


def test_revoke_marks_the_session_and_writes_the_revocation_in_one_go(
    aws: Resources, store: SessionStore
) -> None:
    session = browser_session()
    store.create(session, refresh_token=REFRESH_TOKEN)
    assert store.revoke(session.session_id, by="user", reason=Reason.SESSION_REVOKED, now=T0)
    stored = store.get(session.session_id)
    assert stored is not None
    assert stored.revoked
    assert (stored.revoked_at, stored.revoked_by, stored.revoked_reason) == (
        int(T0),
        "user",
        "session_revoked",
    )
    assert not stored.has_refresh_token  # dropped with the revocation
    assert store.refresh_token(session.session_id) is None
    revocation = raw_item(aws, "SESSION-REVOKED", f"ID#{session.session_id}")
    assert revocation is not None
    assert int(revocation["ttl"]["N"]) == session.expires_at + 600
    # And in the time-ordered feed containers read.
    entry = raw_item(aws, "SESSION-REVOKED", f"AT#{int(T0):010d}#{session.session_id}")
    assert entry is not None
    assert entry["ttl"] == revocation["ttl"]
    # A revoked session gets no new refresh token.
    with pytest.raises(SessionRejected) as caught:
        store.replace_refresh_token(session.session_id, "again")
    assert caught.value.reason is Reason.SESSION_REVOKED
    # Revoking again keeps the first revocation.
    assert store.revoke(session.session_id, by="idp", reason=Reason.SESSION_REVOKED, now=T0 + 5)
    stored = store.get(session.session_id)
    assert stored is not None
    assert stored.revoked_by == "user"


def test_revoking_an_unknown_session_still_writes_the_revocation(
    aws: Resources, store: SessionStore, table: Table, clock: Clock
) -> None:
    unknown = new_session_id()
    assert not store.revoke(unknown, by="user", reason=Reason.SESSION_REVOKED, now=T0)
    revocation = raw_item(aws, "SESSION-REVOKED", f"ID#{unknown}")
    assert revocation is not None
    assert int(revocation["ttl"]["N"]) > T0 + 30 * 86400  # outlives any session
    assert store.get(unknown) is None
    assert RevokedSessions(table, refresh_seconds=1, clock=clock).is_revoked(unknown)
    # With the cookie's expiry, the revocation lives ten minutes past it.
    other = new_session_id()
    store.revoke(other, by="user", reason=Reason.SESSION_REVOKED, expires_at=int(T0) + 60)
    item = raw_item(aws, "SESSION-REVOKED", f"ID#{other}")
    assert item is not None
    assert int(item["ttl"]["N"]) == int(T0) + 60 + 600
    # Not shaped like a session id: nothing written.
    assert not store.revoke("x", by="user", reason=Reason.SESSION_REVOKED)
    assert raw_item(aws, "SESSION-REVOKED", "ID#x") is None


def test_an_operator_revocation_writes_only_the_revocation_and_every_read_counts_it(
    aws: Resources, store: SessionStore
) -> None:
    session = browser_session()
    store.create(session, refresh_token=REFRESH_TOKEN)
    assert store.revoke(
        session.session_id,
        by="arn:aws:iam::123456789012:user/ops",
        reason=Reason.SESSION_REVOKED,
        mark_session=False,
        now=T0,
    )
    item = raw_item(aws, "SESSION", session.session_id)
    assert item is not None
    assert "revoked_at" not in item
    stored = store.get(session.session_id)
    assert stored is not None
    assert stored.revoked
    assert stored.revoked_by == "arn:aws:iam::123456789012:user/ops"
    assert store.refresh_token(session.session_id) is None
    assert store.sessions_of(session.issuer, "alice", now=T0) == []
    assert store.live(now=T0) == []
    # The proxy revoking it later (a logout) marks the session item too.
    assert store.revoke(session.session_id, by="user", reason=Reason.SESSION_REVOKED)
    item = raw_item(aws, "SESSION", session.session_id)
    assert item is not None
    assert item["revoked_by"]["S"] == "user"


def test_sessions_of_and_live_list_only_live_sessions_newest_first(store: SessionStore) -> None:
    older = browser_session(signed_in_at=int(T0) - 100)
    newer = browser_session()
    ended = browser_session(expires_at=int(T0) - 1)
    revoked = browser_session()
    bob = browser_session("bob")
    other_issuer = browser_session(issuer="https://other.example")
    for session in (older, newer, ended, revoked, bob, other_issuer):
        store.create(session, refresh_token=None)
    store.revoke(revoked.session_id, by="user", reason=Reason.SESSION_REVOKED)
    alice = store.sessions_of("https://idp.test.example", "alice", now=T0)
    assert [s.session_id for s in alice] == [newer.session_id, older.session_id]
    live = {s.session_id for s in store.live(now=T0)}
    assert live == {older.session_id, newer.session_id, bob.session_id, other_issuer.session_id}
    assert len(store.live(2, now=T0)) == 2
    assert store.live(0, now=T0) == []


def test_the_table_being_down_is_sessions_unavailable(
    store: SessionStore, dynamodb: Switch
) -> None:
    session = browser_session()
    store.create(session, refresh_token="x")
    dynamodb.down = True
    for action in (
        lambda: store.get(session.session_id),
        lambda: store.refresh_token(session.session_id),
        lambda: store.replace_refresh_token(session.session_id, "y"),
        lambda: store.revoke(session.session_id, by="u", reason=Reason.SESSION_REVOKED),
        lambda: store.live(),
        lambda: store.sessions_of("i", "s"),
        lambda: store.create(browser_session(), refresh_token=None),
    ):
        with pytest.raises(SessionsUnavailable):
            action()


# --- revocations seen by every container -----------------------------------------------------


def test_a_revocation_is_seen_within_refresh_seconds_without_a_call_per_request(
    store: SessionStore, table: Table, dynamodb: Switch, clock: Clock
) -> None:
    session = browser_session()
    store.create(session, refresh_token=None)
    revoked = RevokedSessions(table, refresh_seconds=3, clock=clock)
    assert not revoked.is_revoked(session.session_id)
    calls = dynamodb.calls
    store.revoke(session.session_id, by="user", reason=Reason.SESSION_REVOKED)
    calls = dynamodb.calls
    for _ in range(100):
        assert not revoked.is_revoked(session.session_id)  # the copy in hand
    clock.now += 2.9
    assert not revoked.is_revoked(session.session_id)
    assert dynamodb.calls == calls
    clock.now += 0.1
    assert revoked.is_revoked(session.session_id)
    assert dynamodb.calls == calls + 1


def test_revocations_are_read_across_pages(
    store: SessionStore, table: Table, dynamodb: Switch, clock: Clock
) -> None:
    padding = "p" * 300_000  # a few items per 1 MB page
    ids = [new_session_id() for _ in range(12)]
    for session_id in ids:
        name = revocation_entry_name(int(T0), session_id)
        item = {**SESSION_REVOKED_AT.key(name), "note": padding, "ttl": int(T0) + 3600}
        table.transact([table.put_new(item)])
    revoked = RevokedSessions(table, refresh_seconds=3, clock=clock)
    assert all(revoked.is_revoked(session_id) for session_id in ids)
    assert not revoked.is_revoked(new_session_id())


def test_unreadable_revocations_fail_closed_once_the_copy_is_stale(
    table: Table, dynamodb: Switch, clock: Clock
) -> None:
    revoked = RevokedSessions(table, refresh_seconds=3, max_stale_seconds=60, clock=clock)
    assert not revoked.is_revoked("some-session-id-000")
    dynamodb.down = True
    clock.now += 30
    assert not revoked.is_revoked("some-session-id-000")  # within max_stale: the copy
    calls = dynamodb.calls
    for _ in range(50):
        revoked.is_revoked("some-session-id-000")
    assert dynamodb.calls == calls  # the failed read is not retried on every request
    clock.now += 30.5
    with pytest.raises(SessionsUnavailable, match="revoked sessions"):
        revoked.is_revoked("some-session-id-000")
    dynamodb.down = False
    clock.now += 1
    assert not revoked.is_revoked("some-session-id-000")


def test_a_container_that_never_read_the_revocations_fails_closed(
    table: Table, dynamodb: Switch, clock: Clock
) -> None:
    dynamodb.down = True
    revoked = RevokedSessions(table, refresh_seconds=3, clock=clock)
    with pytest.raises(SessionsUnavailable):
        revoked.is_revoked("some-session-id-000")


def test_a_corrupt_revocation_item_fails_closed(clock: Clock) -> None:
    class CorruptTable:
        def query(self, kind: Any, **_: Any) -> Iterator[dict[str, Any]]:
            yield {"pk": kind.partition, "sk": "fine-session-id-0000"}
            raise CorruptItem("attribute 'ttl' is not a number")

    revoked = RevokedSessions(CorruptTable(), refresh_seconds=3, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(SessionsUnavailable, match="CorruptItem"):
        revoked.is_revoked("some-session-id-000")


def test_session_items_use_the_layout_kinds() -> None:
    assert (SESSION.partition, SESSION_REVOKED.partition) == ("SESSION", "SESSION-REVOKED")


def test_the_container_that_revokes_honours_it_at_once_and_the_next_read_agrees(
    store: SessionStore, table: Table, dynamodb: Switch, clock: Clock
) -> None:
    session, other = browser_session(), browser_session("bob")
    store.create(session, refresh_token=None)
    store.create(other, refresh_token=None)
    revoked = RevokedSessions(table, refresh_seconds=3, clock=clock)
    assert not revoked.is_revoked(session.session_id)
    store.revoke(session.session_id, by="user", reason=Reason.SESSION_REVOKED)
    calls = dynamodb.calls
    revoked.remember(session.session_id)
    assert revoked.is_revoked(session.session_id)
    assert not revoked.is_revoked(other.session_id)
    assert dynamodb.calls == calls  # no read for it
    clock.now += 3
    assert revoked.is_revoked(session.session_id)  # now from the table
    assert dynamodb.calls == calls + 1


def test_an_opened_cookie_is_reused_yet_every_check_runs_and_a_dropped_key_ends_it(
    secrets: Switch, table: Table, keys: SessionKeySource, clock: Clock, store: SessionStore
) -> None:
    from chalicelib.authenticate.credentials import SessionCredentials

    revoked = RevokedSessions(table, refresh_seconds=3, clock=clock)
    credentials = SessionCredentials(keys, revoked, idle_seconds=3600, clock=clock)
    session = browser_session()
    store.create(session, refresh_token=None)
    cookie = keys.keyring().seal(session.to_payload(), purpose=SESSION_COOKIE)
    header = [f"{SESSION_COOKIE}={cookie}"]
    first = credentials.session(header)
    assert credentials.session(header) is first  # opened once

    # Checks still run on the cached session: idle, then revoked.
    clock.now += 3601
    with pytest.raises(SessionRejected) as idle:
        credentials.session(header)
    assert idle.value.reason is Reason.SESSION_IDLE
    store.revoke(session.session_id, by="user", reason=Reason.SESSION_REVOKED)
    clock.now += 3
    with pytest.raises(SessionRejected) as gone:
        credentials.session(header)
    # Revoked is said first, whatever else holds (idle too, here).
    assert gone.value.reason is Reason.SESSION_REVOKED

    # A key rotated out stops opening its cookies, cached or not.
    now = int(clock.now)
    other = browser_session("bob", seen_at=now, refresh_at=now + 900)
    cookie = keys.keyring().seal(other.to_payload(), purpose=SESSION_COOKIE)
    header = [f"{SESSION_COOKIE}={cookie}"]
    assert credentials.session(header).subject == "bob"
    rotate_session_keys(secrets, SECRET, keep=1, now=clock.now)
    clock.now += 4000  # the container has re-read the secret since (every 300 s)
    with pytest.raises(SessionRejected) as dropped:
        credentials.session(header)
    assert dropped.value.reason is Reason.SESSION_INVALID


def test_the_feed_is_read_from_where_it_left_off_and_wholly_every_five_minutes(
    store: SessionStore, table: Table, dynamodb: Switch, clock: Clock
) -> None:
    queried: list[int] = []
    query = table.query

    def counting(*args: Any, **kwargs: Any) -> Any:
        items = list(query(*args, **kwargs))
        queried.append(len(items))
        return iter(items)

    table.query = counting  # type: ignore[method-assign]
    old = [new_session_id() for _ in range(30)]
    for session_id in old:
        store.revoke(session_id, by="user", reason=Reason.SESSION_REVOKED, now=clock.now - 3600)
    revoked = RevokedSessions(table, refresh_seconds=3, clock=clock)
    assert all(revoked.is_revoked(session_id) for session_id in old)
    assert queried == [30]  # the first read is whole

    clock.now += 10
    fresh = new_session_id()
    store.revoke(fresh, by="user", reason=Reason.SESSION_REVOKED, now=clock.now)
    assert revoked.is_revoked(fresh)
    assert queried[-1] == 31  # from the newest seen, less the overlap: the old ones too
    clock.now += 3
    newer = new_session_id()
    store.revoke(newer, by="user", reason=Reason.SESSION_REVOKED, now=clock.now)
    assert revoked.is_revoked(newer)
    assert queried[-1] == 2  # now only what is new (within the overlap)
    assert revoked.is_revoked(old[0])

    # A revocation stamped by a clock far behind is missed by the small reads
    # and healed by the next whole read.
    late = new_session_id()
    store.revoke(
        late, by="operator", reason=Reason.SESSION_REVOKED, now=clock.now - 10 * OVERLAP_SECONDS
    )
    clock.now += 3
    assert not revoked.is_revoked(late)
    clock.now += FULL_READ_SECONDS
    assert revoked.is_revoked(late)
    assert queried[-1] == 33

    # A revocation whose session has ended is dropped from the set.
    ending = new_session_id()
    store.revoke(
        ending,
        by="user",
        reason=Reason.SESSION_REVOKED,
        expires_at=int(clock.now) + 5,
        now=clock.now,
    )
    clock.now += 3
    assert revoked.is_revoked(ending)
    clock.now += 700
    assert not revoked.is_revoked(ending)
