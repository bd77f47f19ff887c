"""How the report names people: as a reader knows them, and never an unverified claim as fact."""

from __future__ import annotations

import pytest

from gatehouse.report.collect import _principal, person
from gatehouse.report.model import ANONYMOUS, UNVERIFIED


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://idp.example.com|alice (alice@example.com)", "alice@example.com"),
        ("https://idp.example.com|alice", "alice"),
        ("alice@example.com", "alice@example.com"),
        ("arn:aws:iam::123456789012:user/ops", "arn:aws:iam::123456789012:user/ops"),
        (None, ""),
    ],
)
def test_a_person_is_shown_by_email_else_subject(text: str | None, shown: str) -> None:
    assert person(text) == shown


@pytest.mark.parametrize(
    ("row", "reasons", "shown"),
    [
        ({"principal": "https://idp|bob (bob@example.com)"}, "no_matching_rule", "bob@example.com"),
        ({"subject": "bob"}, "token_expired", "bob (claimed, not verified)"),
        (
            {"email": "eve@example.com"},
            "bad_signature,unknown_key",
            "eve@example.com (claimed, not verified)",
        ),
        ({}, "bad_signature", UNVERIFIED),
        ({}, "session_revoked", UNVERIFIED),
        ({}, "missing_credentials", ANONYMOUS),
        ({}, None, ANONYMOUS),
    ],
)
def test_a_refused_credential_is_never_shown_as_anonymous_or_as_verified(
    row: dict[str, str], reasons: str | None, shown: str
) -> None:
    assert _principal(row, reasons) == shown
