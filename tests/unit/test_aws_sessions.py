"""What STS is sent for a principal, and how upstream requests are signed."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import SigningFailed
from chalicelib.aws.sessions import (
    RoleSession,
    groups_tag,
    sanitise_source_identity,
    session_name_for,
    session_tags,
    source_identity_of,
)
from chalicelib.aws.signing import gatehouse_user_agent, sign_upstream_request
from chalicelib.identity import Identity
from gatehouse.dev.aws_upstream import AwsUpstream, SignatureRejected
from gatehouse.dev.cloudtrail import IssuedSession, IssuedSessions

STS_SET = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
# STS's documented tag value pattern: letters, separators (Z), numbers, and _.:/=+-@
TAG_SET = re.compile(r"[\w\s.:/=+\-@]*")


def altered(text: str) -> str:
    return "=" + hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("alice@example.com", "alice@example.com"),
        ("alice+ops@example.com", "alice+ops@example.com"),
        ("00u1abc-XYZ_9=,.", "00u1abc-XYZ_9=,."),
        ("@", "@" + altered("@")),  # one character: too short for STS
        ("a", "a" + altered("a")),
        ("", altered("")),
        ("jörg@example.com", "j_rg@example.com" + altered("jörg@example.com")),
        ("jürg@example.com", "j_rg@example.com" + altered("jürg@example.com")),
        ("auth0|5f7c8ec7c3", "auth0_5f7c8ec7c3" + altered("auth0|5f7c8ec7c3")),
        ("a b", "a_b" + altered("a b")),
        ("x" * 64, "x" * 64),
        ("x" * 65, "x" * 47 + altered("x" * 65)),
        ("名前@例え.jp", "__@__.jp" + altered("名前@例え.jp")),
        ("\U0001f600@x", "_@x" + altered("\U0001f600@x")),
        ("aws:admin", "aws_admin" + altered("aws:admin")),
    ],
    ids=[
        "email", "plus", "allowed-punctuation", "at-only", "one-char", "empty", "umlaut-o",
        "umlaut-u", "pipe-subject", "space", "64", "65", "cjk", "emoji", "aws-prefix",
    ],
)  # fmt: skip
def test_source_identity_sanitisation(principal: str, expected: str) -> None:
    value = sanitise_source_identity(principal)

    assert value == expected
    assert STS_SET.fullmatch(value), value
    assert sanitise_source_identity(principal) == value  # deterministic


def test_principals_that_alter_alike_stay_distinct() -> None:
    principals = ["jörg@x.de", "jürg@x.de", "j_rg@x.de", "j?rg@x.de", "j rg@x.de", "", "@", "_"]

    values = {sanitise_source_identity(p) for p in principals}

    assert len(values) == len(principals)


def identity(**fields: Any) -> Identity:
    base: dict[str, Any] = {
        "issuer": "https://idp.example",
        "subject": "00u1",
        "audience": "gatehouse",
        "expires_at": 2_000_000_000,
    }
    base.update(fields)
    return Identity(**base)


def altered(shown: str, hashed: str) -> str:
    return shown + "=" + hashlib.sha256(hashed.encode()).hexdigest()[:16]


def test_source_identity_is_the_email_else_the_subject_always_altered() -> None:
    assert source_identity_of(identity(email="alice@example.com")) == "alice@example.com"
    assert source_identity_of(identity()) == altered("00u1", "sub:00u1")


def test_a_subject_that_is_someone_elses_email_does_not_get_their_source_identity() -> None:
    by_email = source_identity_of(identity(email="alice@corp.com"))
    by_subject = source_identity_of(identity(subject="alice@corp.com"))

    assert by_email == "alice@corp.com"
    assert by_subject != by_email
    assert STS_SET.fullmatch(by_subject)


def test_a_subject_cannot_spell_out_an_altered_email() -> None:
    long_email = "a" * 60 + "@corp.com"
    from_email = source_identity_of(identity(email=long_email))

    assert source_identity_of(identity(subject=from_email)) != from_email


@pytest.mark.parametrize(
    ("request_id", "expected"),
    [
        ("c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "gh-c6af9ac6-7b61-11e6-9a41-93e8deadbeef"),
        ("a/b:c d", "gh-a_b_c_d"),
        ("", "gh-"),
        ("r" * 100, "gh-" + "r" * 61),
        ("é", "gh-_"),
    ],
)
def test_role_session_name_is_gh_and_the_request_id(request_id: str, expected: str) -> None:
    name = session_name_for(request_id)

    assert name == expected
    assert len(name) <= 64
    assert re.fullmatch(r"[\w+=,.@-]+", name, re.ASCII)


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        ("engineering", "engineering"),
        ("eng/platform", "eng/platform"),
        ("a.b_c-d@x", "a.b_c-d@x"),
        ("admin:eng", altered("admin_eng", "admin:eng")),  # not two groups
        ("+3", altered("_3", "+3")),
        ("x=1", altered("x_1", "x=1")),  # no name looks altered unless it is
        ("Domain Users", altered("Domain_Users", "Domain Users")),
        ("Ärzte", altered("_rzte", "Ärzte")),
        ("", altered("", "")),
        ("g" * 65, altered("g" * 47, "g" * 65)),
    ],
)
def test_a_group_name_is_kept_when_plain_and_altered_otherwise(group: str, expected: str) -> None:
    tag = groups_tag({group})

    assert tag == expected
    assert ":" not in tag
    assert TAG_SET.fullmatch(tag)


def test_groups_tag_is_sorted_and_joined() -> None:
    assert groups_tag({"ops", "engineering"}) == "engineering:ops"
    assert groups_tag(set()) == ""


def test_no_group_set_can_pose_as_another() -> None:
    assert groups_tag({"admin:eng"}) != groups_tag({"admin", "eng"})
    assert not groups_tag({"self-made:admin"}).endswith(":admin")


def test_groups_that_do_not_fit_in_a_tag_refuse_the_session() -> None:
    from chalicelib.aws import SessionTagTooLong

    fits = {f"g{index:02d}" for index in range(64)}  # 64 x 3 + 63 = 255
    assert len(groups_tag(fits)) == 255

    with pytest.raises(SessionTagTooLong, match="take 259 characters"):
        groups_tag(fits | {"g64"})


def test_the_principal_tag_is_the_source_identity() -> None:
    for who in (
        identity(email="john_smith@corp.com"),
        identity(email="john'smith@corp.com"),
        identity(email="jörg@example.com"),
        identity(subject="s" * 400),
    ):
        tags = session_tags(who)

        assert tags[0] == {"Key": "principal", "Value": source_identity_of(who)}
        assert tags[1]["Key"] == "groups"
        for tag in tags:
            assert TAG_SET.fullmatch(tag["Value"])
            assert len(tag["Value"]) <= 256
    apostrophe = session_tags(identity(email="john'smith@corp.com"))[0]["Value"]
    assert apostrophe != session_tags(identity(email="john_smith@corp.com"))[0]["Value"]


# --- several issuers -------------------------------------------------------------------------

DEFAULT = "https://idp.example"
PARTNER = "https://partner.example.net/tenant"


def test_the_default_issuers_values_are_what_they_always_were() -> None:
    for who in (
        identity(email="alice@example.com"),
        identity(email="jörg@example.com"),
        identity(),
        identity(issuer=DEFAULT + "/"),
        identity(groups=frozenset({"ops", "admin:eng"})),
    ):
        for default in (DEFAULT, DEFAULT + "/"):
            assert source_identity_of(who, default) == source_identity_of(who)
            assert session_tags(who, default) == session_tags(who)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="same subject, no email"),
        pytest.param({"email": "alice@example.com"}, id="same verified email"),
        pytest.param({"subject": "alice@example.com"}, id="a subject that is the email"),
    ],
)
def test_two_issuers_never_share_a_source_identity(fields: dict[str, Any]) -> None:
    ours = identity(**fields)
    theirs = identity(**{**fields, "issuer": PARTNER})
    third = identity(**{**fields, "issuer": "https://third.example.org"})

    values = {source_identity_of(who, DEFAULT) for who in (ours, theirs, third)}

    assert len(values) == 3
    assert "alice@example.com" not in values - {source_identity_of(ours, DEFAULT)}
    for value in values:
        assert STS_SET.fullmatch(value), value


def test_another_issuers_value_names_the_principal_and_the_issuers_host() -> None:
    value = source_identity_of(identity(issuer=PARTNER, email="bob@partner.net"), DEFAULT)

    assert value.startswith("bob@partner.net_partner.example.net=")
    assert re.fullmatch(r"[^=]+=[0-9a-f]{16}", value)
    assert value == source_identity_of(
        identity(issuer=PARTNER + "/", email="bob@partner.net"), DEFAULT
    )


def test_another_issuers_groups_are_never_the_default_issuers() -> None:
    ours = identity(groups=frozenset({"admins", "eng"}))
    theirs = identity(issuer=PARTNER, groups=frozenset({"admins", "eng"}))

    our_groups = session_tags(ours, DEFAULT)[1]["Value"]
    their_groups = session_tags(theirs, DEFAULT)[1]["Value"]

    assert our_groups == "admins:eng"
    assert set(their_groups.split(":")).isdisjoint({"admins", "eng"})
    assert their_groups.startswith("admins=")
    assert TAG_SET.fullmatch(their_groups)
    assert session_tags(theirs, DEFAULT)[0]["Value"] == source_identity_of(theirs, DEFAULT)


# --- signing ---------------------------------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/gatehouse-upstream-demo"
SESSION = RoleSession(
    role_arn=ROLE,
    session_name="gh-req-1",
    source_identity="alice@example.com",
    access_key_id="ASIAEXAMPLEKEY000001",
    secret_access_key="secret-key-never-logged",
    session_token="session-token-never-logged",
    expires_at=2_000_000_000.0,
)


def issued(session: RoleSession = SESSION) -> IssuedSessions:
    sessions = IssuedSessions()
    now = datetime.now(UTC)
    sessions.add(
        IssuedSession(
            access_key_id=session.access_key_id,
            secret_access_key=session.secret_access_key,
            session_token=session.session_token,
            role_arn=session.role_arn,
            assumed_role_id="AROAEXAMPLE:gh-req-1",
            assumed_role_arn="arn:aws:sts::123456789012:assumed-role/gatehouse-upstream-demo/gh-req-1",
            session_name=session.session_name,
            source_identity=session.source_identity,
            created=now,
            expires=now + timedelta(minutes=15),
        )
    )
    return sessions


class NoTrail:
    def record(self, record: dict[str, Any]) -> None:
        raise AssertionError("verify alone records nothing")


URL = "http://127.0.0.1:9000/aws-upstream/aws/orders?b=2&a=1"
TARGET = "/aws-upstream/aws/orders?b=2&a=1"
CLIENT_HEADERS = [
    ("Accept", "application/json"),
    ("Content-Type", "application/json"),
    ("User-Agent", "curl/8.0"),
    ("X-Amz-Security-Token", "client-token"),
    ("x-amz-date", "19990101T000000Z"),
    ("X-Amz-Target", "Evil.Call"),
    ("X-Forwarded-For", "203.0.113.9"),
]
BODY = b'{"order": 1}'


def signed(**changes: Any) -> list[tuple[str, str]]:
    arguments: dict[str, Any] = {
        "service": "execute-api",
        "region": "us-east-1",
        "method": "POST",
        "url": URL,
        "headers": CLIENT_HEADERS,
        "body": BODY,
        "request_id": "req-1",
    }
    arguments.update(changes)
    return sign_upstream_request(SESSION, **arguments)


def on_the_wire(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What the upstream receives: http.client adds Host from the URL."""
    return [("Host", "127.0.0.1:9000"), *headers]


def upstream() -> AwsUpstream:
    return AwsUpstream(issued(), NoTrail(), region="us-east-1")  # type: ignore[arg-type]


def test_signed_request_verifies_with_the_session_secret() -> None:
    headers = signed()

    verified = upstream().verify("POST", TARGET, on_the_wire(headers), BODY)

    assert verified.access_key_id == SESSION.access_key_id
    assert verified.source_identity == "alice@example.com"
    assert set(verified.signed_headers) == {
        "content-type",
        "host",
        "x-amz-date",
        "x-amz-security-token",
    }


def test_client_aws_headers_are_replaced_and_the_user_agent_names_the_request() -> None:
    headers = signed()
    names = [name.lower() for name, _ in headers]

    assert names.count("x-amz-security-token") == names.count("x-amz-date") == 1
    assert "x-amz-target" not in names
    assert dict(headers)["X-Amz-Security-Token"] == SESSION.session_token
    assert dict(headers)["User-Agent"] == "curl/8.0 gatehouse/req-1"
    assert dict(headers)["X-Forwarded-For"] == "203.0.113.9"  # unsigned, forwarded as is


def test_user_agent_mark_survives_a_long_client_agent() -> None:
    agent = gatehouse_user_agent("x" * 5000, "req-9")

    assert agent.endswith(" gatehouse/req-9")
    assert len(agent) == 200 + len(" gatehouse/req-9")
    assert gatehouse_user_agent(None, "req-9") == "gatehouse/req-9"


def tampered(change: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    headers = on_the_wire(signed())
    method, target, body = "POST", TARGET, BODY
    if change == "body":
        body = b'{"order": 2}'
    elif change == "path":
        target = "/aws-upstream/aws/admin?b=2&a=1"
    elif change == "query":
        target = "/aws-upstream/aws/orders?b=3&a=1"
    elif change == "method":
        method = "PUT"
    elif change == "content-type":
        headers = [(n, "text/plain" if n == "Content-Type" else v) for n, v in headers]
    elif change == "token":
        headers = [(n, "other" if n == "X-Amz-Security-Token" else v) for n, v in headers]
    elif change == "no-authorization":
        headers = [(n, v) for n, v in headers if n != "Authorization"]
    elif change == "unknown-key":
        headers = [
            (
                n,
                v.replace(SESSION.access_key_id, "ASIAUNKNOWN000000000")
                if n == "Authorization"
                else v,
            )
            for n, v in headers
        ]
    elif change == "host":
        headers = [(n, "127.0.0.1:9001" if n == "Host" else v) for n, v in headers]
    return method, target, headers, body


@pytest.mark.parametrize(
    "change",
    [
        "body",
        "path",
        "query",
        "method",
        "content-type",
        "token",
        "no-authorization",
        "unknown-key",
        "host",
    ],
)
def test_a_tampered_request_is_rejected(change: str) -> None:
    method, target, headers, body = tampered(change)

    with pytest.raises(SignatureRejected):
        upstream().verify(method, target, headers, body)


def test_a_signature_for_another_region_or_service_or_time_is_rejected() -> None:
    with pytest.raises(SignatureRejected, match="credential scope"):
        upstream().verify("POST", TARGET, on_the_wire(signed(region="eu-west-1")), BODY)
    with pytest.raises(SignatureRejected, match="credential scope"):
        upstream().verify("POST", TARGET, on_the_wire(signed(service="lambda")), BODY)
    later = datetime.now(UTC) + timedelta(minutes=6)
    with pytest.raises(SignatureRejected, match=r"expired|future"):
        upstream().verify("POST", TARGET, on_the_wire(signed()), BODY, now=later)


def test_signing_failure_is_a_signing_error_naming_no_secret() -> None:
    with pytest.raises(SigningFailed) as caught:
        sign_upstream_request(
            SESSION,
            service="execute-api",
            region="us-east-1",
            method="GET",
            url="http://[::1/unclosed",
            headers=[],
            body=b"",
            request_id="r",
        )

    assert caught.value.status == 502
    assert SESSION.secret_access_key not in str(caught.value)
    assert SESSION.session_token not in str(caught.value)


def test_session_secrets_are_not_in_its_repr() -> None:
    text = repr(SESSION)

    assert SESSION.access_key_id in text
    assert SESSION.secret_access_key not in text
    assert SESSION.session_token not in text


def test_a_mark_in_the_client_agent_cannot_claim_another_request() -> None:
    agent = gatehouse_user_agent("curl/8 gatehouse/victim-request", "req-9")

    assert agent == "curl/8 gatehouse_/victim-request gatehouse/req-9"
    assert agent.count("gatehouse/") == 1
    assert agent.endswith("gatehouse/req-9")


class RecordingSts:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def assume_role(self, **call: Any) -> dict[str, Any]:
        self.calls.append(call)
        return {
            "Credentials": {
                "AccessKeyId": f"ASIA{len(self.calls):016d}",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": datetime.now(UTC) + timedelta(minutes=15),
            }
        }


def test_role_sessions_send_sts_the_issuer_qualified_values() -> None:
    from chalicelib.aws.sessions import RoleSessions

    sts = RecordingSts()
    sessions = RoleSessions(lambda: sts, default_issuer=DEFAULT)
    ours, theirs = (
        identity(email="alice@example.com"),
        identity(issuer=PARTNER, email="alice@example.com"),
    )

    mine = sessions.session_for(ROLE, ours, "req-1")
    other = sessions.session_for(ROLE, theirs, "req-2")

    assert mine.source_identity == "alice@example.com"
    assert other.source_identity == source_identity_of(theirs, DEFAULT) != mine.source_identity
    assert [call["SourceIdentity"] for call in sts.calls] == [
        mine.source_identity,
        other.source_identity,
    ]
    assert sts.calls[1]["Tags"] == session_tags(theirs, DEFAULT)
