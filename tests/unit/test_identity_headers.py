"""The gateway's identity headers: client copies always dropped, values sanitised."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.identity import Identity
from chalicelib.proxy.headers import (
    MAX_GROUPS_HEADER,
    ForwardedFor,
    header_value,
    identity_headers,
    principal_name,
    upstream_request_headers,
)

DEFAULT = "https://idp.example.com"
FORWARDED = ForwardedFor("203.0.113.7", "https", "gatehouse.example.com", "req-1")


def identity(**fields: object) -> Identity:
    values: dict[str, object] = {
        "issuer": DEFAULT,
        "subject": "alice",
        "audience": "gatehouse",
        "expires_at": 2_000_000_000,
        "email": "alice@example.com",
        "groups": frozenset({"engineering"}),
    }
    values.update(fields)
    return Identity(**values)  # type: ignore[arg-type]


def forwarded(
    client: list[tuple[str, str]], gateway: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    return upstream_request_headers(
        client, FORWARDED, pass_authorization=False, assertion="a.b.c", identity=gateway
    ).headers


SPELLINGS = [
    "X-Gatehouse-User",
    "x-gatehouse-user",
    "X-GATEHOUSE-USER",
    "x-GaTeHoUsE-eMaIl",
    "X-Gatehouse-Groups",
    "X_Gatehouse_User",
    "x_gatehouse-groups",
    "X-Gatehouse-Assertion",
    "X-Gatehouse-Anything-New",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("feature", [True, False], ids=["feature on", "feature off"])
def test_client_copies_are_dropped_in_every_spelling_whether_or_not_the_feature_is_on(
    spelling: str, feature: bool
) -> None:
    gateway = identity_headers(identity(), DEFAULT) if feature else []
    headers = forwarded([(spelling, "root"), ("Accept", "*/*")], gateway)

    assert ("Accept", "*/*") in headers
    assert all(value != "root" for _, value in headers)
    gatehouse = [n for n, _ in headers if n.lower().startswith("x-gatehouse-")]
    expected = ["X-Gatehouse-Assertion"]
    if feature:
        expected += ["X-Gatehouse-User", "X-Gatehouse-Email", "X-Gatehouse-Groups"]
    assert gatehouse == expected


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(identity(), "alice", id="default issuer: the sub"),
        pytest.param(
            identity(issuer="https://IdP.example.com/"), "alice", id="default issuer, spelled else"
        ),
        pytest.param(
            identity(issuer="https://partner.example.net"),
            "https://partner.example.net|alice",
            id="another issuer: qualified",
        ),
        pytest.param(
            identity(subject="auth0|123"), "auth0|123", id="a sub with | that reads as no issuer"
        ),
        pytest.param(
            identity(subject="https://partner.example.net|alice"),
            "https://idp.example.com|https://partner.example.net|alice",
            id="a sub that would pass for another issuer's principal",
        ),
    ],
)
def test_the_user_is_qualified_as_the_policy_qualifies(who: Identity, expected: str) -> None:
    assert principal_name(who, DEFAULT) == expected


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        pytest.param(
            identity(groups=frozenset({"b", "a"})),
            [
                ("X-Gatehouse-User", "alice"),
                ("X-Gatehouse-Email", "alice@example.com"),
                ("X-Gatehouse-Groups", "a,b"),
            ],
            id="plain",
        ),
        pytest.param(
            identity(subject="ali\r\nX-Admin: 1", email=None, groups=frozenset()),
            [("X-Gatehouse-User", "ali%0D%0AX-Admin:%201")],
            id="CR LF encoded; no email, no groups: left out",
        ),
        pytest.param(
            identity(groups=frozenset({"a,b", "c"})),
            [
                ("X-Gatehouse-User", "alice"),
                ("X-Gatehouse-Email", "alice@example.com"),
                ("X-Gatehouse-Groups", "a%2Cb,c"),
            ],
            id="a comma in a group cannot split it",
        ),
        pytest.param(
            identity(subject="ünïcode 100%", email="é@example.com", groups=frozenset()),
            [
                ("X-Gatehouse-User", "%C3%BCn%C3%AFcode%20100%25"),
                ("X-Gatehouse-Email", "%C3%A9@example.com"),
            ],
            id="non-ASCII, space and % encoded",
        ),
        pytest.param(
            identity(subject="x" * 600, groups=frozenset({f"g{i:04}" for i in range(1000)})),
            [("X-Gatehouse-Email", "alice@example.com")],
            id="over the bound: left out, never cut",
        ),
    ],
)
def test_identity_header_values(who: Identity, expected: list[tuple[str, str]]) -> None:
    assert identity_headers(who, DEFAULT) == expected


def test_groups_up_to_the_bound_are_sent() -> None:
    groups = frozenset({f"group-{i:04}" for i in range(MAX_GROUPS_HEADER // 12)})
    [(_, value)] = [
        h for h in identity_headers(identity(groups=groups), DEFAULT) if "Groups" in h[0]
    ]
    assert len(value) <= MAX_GROUPS_HEADER
    assert value.split(",") == sorted(groups)


@given(st.text(), st.text())
def test_encoded_values_are_one_safe_line_and_decode_to_what_was_encoded(
    first: str, second: str
) -> None:
    encoded = header_value(first, separator=",")
    assert all(0x21 <= ord(c) <= 0x7E for c in encoded)
    assert "," not in encoded
    assert unquote(encoded, errors="strict") == first
    if first != second:
        assert encoded != header_value(second, separator=",")
