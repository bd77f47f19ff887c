"""``gatehouse session list|revoke|rotate-key`` against moto: what operators see and do."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.aws.table import Table
from chalicelib.reasons import Reason
from chalicelib.sessions import (
    BrowserSession,
    RevokedSessions,
    SessionKeySource,
    SessionStore,
    new_session_id,
)
from gatehouse.cli import main
from gatehouse.session_commands import session_revocation_event

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

ISSUER = "https://idp.test.example"
SECRET = "gatehouse/test/session-keys"


def client(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")


@pytest.fixture
def cli(aws: Resources, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("GATEHOUSE_AUDIT_BUCKET", aws.audit_bucket)
    monkeypatch.setenv("GATEHOUSE_AUDIT_QUEUE_URL", aws.audit_queue_url)
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", aws.state_table)
    monkeypatch.setenv("GATEHOUSE_STAGE", "test")
    monkeypatch.delenv("GATEHOUSE_SESSION_KEYS_SECRET", raising=False)
    return ["--state-dir", str(tmp_path / "no-local-stack")]


@pytest.fixture
def store(aws: Resources) -> SessionStore:
    keys = SessionKeySource(lambda: client("secretsmanager"), SECRET)
    return SessionStore(Table(client("dynamodb"), aws.state_table), keys)


def signed_in(store: SessionStore, subject: str, issuer: str = ISSUER, **changes: Any) -> str:
    now = int(time.time())
    values: dict[str, Any] = {
        "session_id": new_session_id(),
        "issuer": issuer,
        "idp": issuer.removeprefix("https://"),
        "client_id": "gatehouse",
        "subject": subject,
        "email": f"{subject}@example.com",
        "groups": (),
        "groups_claimed": True,
        "amr": (),
        "auth_time": now,
        "idp_session_id": None,
        "claims": {},
        "signed_in_at": now,
        "seen_at": now,
        "refresh_at": now + 900,
        "expires_at": now + 3600,
    }
    values.update(changes)
    store.create(BrowserSession(**values), refresh_token=None)
    return str(values["session_id"])


def audit_events(aws: Resources) -> list[dict[str, Any]]:
    messages = client("sqs").receive_message(
        QueueUrl=aws.audit_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


def is_revoked(aws: Resources, session_id: str) -> bool:
    table = Table(client("dynamodb"), aws.state_table)
    return RevokedSessions(table, refresh_seconds=0).is_revoked(session_id)


def test_list_shows_live_sessions_and_filters(
    cli: list[str], store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = signed_in(store, "alice")
    bob = signed_in(store, "bob", issuer="https://other.example")
    assert main([*cli, "session", "list"]) == 0
    out = capsys.readouterr().out
    assert alice in out
    assert bob in out
    assert main([*cli, "session", "list", "--user", "alice"]) == 0
    out = capsys.readouterr().out
    assert alice in out
    assert bob not in out
    assert main([*cli, "session", "list", "--issuer", "other.example", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["session_id"] for entry in listed] == [bob]
    assert main([*cli, "session", "list", "--user", "nobody"]) == 0
    assert capsys.readouterr().out == "no live sessions\n"


def test_revoke_one_session_is_enforced_and_audited(
    aws: Resources, cli: list[str], store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = signed_in(store, "alice")
    other = signed_in(store, "alice")
    assert main([*cli, "session", "revoke", alice, "--reason", "laptop stolen"]) == 0
    assert f"session {alice} of alice" in capsys.readouterr().out
    assert is_revoked(aws, alice)
    assert not is_revoked(aws, other)
    stored = store.get(alice)
    assert stored is not None
    assert stored.revoked
    assert stored.revoked_by == "arn:aws:sts::123456789012:user/moto"
    # Only the revocation item: the SESSION item is the proxy's to write.
    raw = client("dynamodb").get_item(
        TableName=aws.state_table, Key={"pk": {"S": "SESSION"}, "sk": {"S": alice}}
    )["Item"]
    assert "revoked_at" not in raw
    (event,) = audit_events(aws)
    assert event["event_type"] == "session"
    assert event["aws"] == {"caller_arn": "arn:aws:sts::123456789012:user/moto"}
    assert event["principal"]["subject"] == "alice"
    assert event["session"]["session_id"] == alice
    assert event["session"]["detail"] == "laptop stolen"
    assert (event["session"]["action"], event["session"]["revoked_by"]) == ("revoked", "operator")
    assert event["principal"]["browser_session_id"] == alice
    # Again: said, not re-audited.
    assert main([*cli, "session", "revoke", alice]) == 0
    assert "already revoked" in capsys.readouterr().out
    assert audit_events(aws) == []


def test_revoke_every_session_of_a_user(
    aws: Resources, cli: list[str], store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = [signed_in(store, "alice") for _ in range(3)]
    bob = signed_in(store, "bob")
    assert main([*cli, "session", "revoke", "--user", "alice", "--issuer", ISSUER]) == 0
    assert all(is_revoked(aws, sid) for sid in mine)
    assert not is_revoked(aws, bob)
    assert len(audit_events(aws)) == 3
    assert main([*cli, "session", "revoke", "--user", "alice"]) == 0
    assert "no live sessions of 'alice'" in capsys.readouterr().out


def test_a_subject_known_to_two_issuers_needs_issuer(
    aws: Resources, cli: list[str], store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    one = signed_in(store, "alice")
    two = signed_in(store, "alice", issuer="https://other.example")
    assert main([*cli, "session", "revoke", "--user", "alice"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gatehouse: 'alice' has sessions with 2 issuers")
    assert "--issuer" in err
    assert not is_revoked(aws, one)
    assert main([*cli, "session", "revoke", "--user", "alice", "--issuer", "other.example"]) == 0
    assert is_revoked(aws, two)
    assert not is_revoked(aws, one)


def test_an_unknown_session_is_one_line_exit_2_and_nothing_written(
    aws: Resources, cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = new_session_id()
    assert main([*cli, "session", "revoke", unknown]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gatehouse: no session '{unknown}' on stage test")
    assert err.count("\n") == 1
    assert not is_revoked(aws, unknown)
    assert audit_events(aws) == []


@pytest.mark.parametrize(
    "arguments",
    [
        ["session", "revoke"],
        ["session", "revoke", "abc", "--user", "alice"],
        ["session", "revoke", "abc", "--issuer", "x"],
        ["session", "rotate-key", "--keep", "0"],
    ],
)
def test_usage_errors_exit_2(
    cli: list[str], arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*cli, *arguments]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_no_stage_configured_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("GATEHOUSE_AUDIT_BUCKET", "GATEHOUSE_STATE_TABLE", "GATEHOUSE_STAGE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--state-dir", str(tmp_path), "session", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gatehouse: no local stack state")
    assert err.count("\n") == 1


def test_aws_failures_are_one_line_exit_1(
    aws: Resources,
    cli: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATEHOUSE_STATE_TABLE", "no-such-table")
    assert main([*cli, "session", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gatehouse: cannot read sessions")
    assert err.count("\n") == 1


def test_a_revocation_whose_event_cannot_be_enqueued_says_so(
    aws: Resources, cli: list[str], store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = signed_in(store, "alice")
    client("sqs").delete_queue(QueueUrl=aws.audit_queue_url)
    assert main([*cli, "session", "revoke", alice]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"gatehouse: session {alice} is revoked, but its audit event")
    assert is_revoked(aws, alice)


def test_rotate_key_creates_the_secret_and_keeps_n(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(4):
        assert main([*cli, "session", "rotate-key", "--keep", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count(f"added to {SECRET} (keeping the 2 newest keys)") == 4
    document = json.loads(
        client("secretsmanager").get_secret_value(SecretId=SECRET)["SecretString"]
    )
    assert len(document["keys"]) == 2
    newest = out.strip().splitlines()[-1].split()[1]
    assert document["keys"][0]["id"] == newest
    # The secret's material is never printed.
    assert document["keys"][0]["secret"] not in out


def test_rotate_key_uses_the_configured_secret(
    cli: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEHOUSE_SESSION_KEYS_SECRET", "custom/keys")
    assert main([*cli, "session", "rotate-key"]) == 0
    assert "added to custom/keys" in capsys.readouterr().out
    assert client("secretsmanager").get_secret_value(SecretId="custom/keys")["SecretString"]


def test_the_event_builder_is_one_function() -> None:
    from chalicelib.sessions import StoredSession

    stored = StoredSession(
        session_id="s" * 22,
        issuer=ISSUER,
        idp="idp.test.example",
        client_id="gatehouse",
        subject="alice",
        email=None,
        idp_session_id=None,
        signed_in_at=1,
        expires_at=2,
    )
    event = session_revocation_event(stage="test", operator="arn:x", stored=stored, reason=None)
    assert event["event_type"] == "session"
    assert event["session"]["reason"] == Reason.SESSION_REVOKED.value
