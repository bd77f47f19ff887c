"""``gatehouse audit tail``: a session event is one readable line, its client text escaped."""

from __future__ import annotations

from chalicelib.audit.schema import build_session_event
from chalicelib.audit.sections import SessionSection
from chalicelib.identity import Identity
from gatehouse.audit_commands.events import format_event


def test_a_session_event_says_what_happened_to_which_session() -> None:
    alice = Identity(
        "https://idp.example", "alice", "web", 2_000_000_000, email="alice@example.com"
    )
    event = build_session_event(
        SessionSection("signed_in", "s-123", "okta", None, None, 2_000_000_000, None),
        stage="prod",
        identity=alice,
    )
    line = format_event(event)
    assert "signed_in" in line
    assert "alice@example.com" in line
    assert "session=s-123" in line
    assert "idp=okta" in line


def test_a_revocation_names_its_reason_and_the_operator() -> None:
    event = build_session_event(
        SessionSection("revoked", "s-9", "dev", "session_revoked", "operator", None, None),
        stage="prod",
        identity=Identity("https://idp.example", "mallory\x1b[2J", "web", 2_000_000_000),
        operator="arn:aws:iam::123456789012:user/ops",
    )
    line = format_event(event)
    assert "[session_revoked]" in line
    assert "by arn:aws:iam::123456789012:user/ops" in line
    assert "\x1b" not in line  # a hostile subject cannot rewrite the terminal
    assert "mallory\\x1b[2J" in line
