"""Settings.from_environment: everything validated, every problem reported at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.config import (
    Settings,
    SettingsError,
    TrustedIssuer,
    authorizer_ttl_from_environment,
)
from chalicelib.variables import DEFAULT_MAX_BODY_BYTES, REFERENCE_PATH, VARIABLES, reference

ISSUERS = [
    {
        "issuer": "https://idp.example.com",
        "audiences": ["gatehouse", "gatehouse-cli"],
        "jwks_uri": "https://idp.example.com/keys",
        "groups_claim": "roles",
    },
]


def environment(**overrides: str | None) -> dict[str, str]:
    """A complete stage environment; ``None`` removes a variable."""
    base = {
        "AWS_REGION": "eu-central-1",
        "GATEHOUSE_STAGE": "prod",
        "GATEHOUSE_STATE_TABLE": "gatehouse-state",
        "GATEHOUSE_AUDIT_BUCKET": "gatehouse-audit",
        "GATEHOUSE_AUDIT_QUEUE_URL": "https://sqs.eu-central-1.amazonaws.com/1/audit",
        "GATEHOUSE_ASSERTION_KEY_ID": "alias/gatehouse-assertion",
        "GATEHOUSE_DIGEST_KEY_ID": "alias/gatehouse-digest",
        "GATEHOUSE_GATEWAY_ISSUER": "https://gatehouse.example.com/",
        "GATEHOUSE_TRUSTED_ISSUERS": json.dumps(ISSUERS),
    }
    for name, value in overrides.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = value
    return base


def problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(environ)
    return caught.value.problems


def test_complete_environment_builds_settings() -> None:
    settings = Settings.from_environment(environment())

    assert settings.stage == "prod"
    assert settings.region == "eu-central-1"
    assert settings.aws_endpoint_url is None
    assert settings.state_table == "gatehouse-state"
    assert settings.audit_bucket == "gatehouse-audit"
    assert settings.audit_queue_url == "https://sqs.eu-central-1.amazonaws.com/1/audit"
    assert settings.assertion_key_id == "alias/gatehouse-assertion"
    assert settings.gateway_issuer == "https://gatehouse.example.com"
    assert settings.trusted_issuers == (
        TrustedIssuer(
            issuer="https://idp.example.com",
            audiences=("gatehouse", "gatehouse-cli"),
            jwks_uri="https://idp.example.com/keys",
            groups_claim="roles",
        ),
    )


def test_optional_values_take_their_defaults() -> None:
    settings = Settings.from_environment(environment(GATEHOUSE_STAGE=None))

    assert settings.stage == "dev"
    assert settings.authorizer_ttl_seconds == 0
    assert settings.assertion_ttl_seconds == 60
    assert settings.clock_skew_seconds == 60
    assert settings.policy_refresh_seconds == 10.0
    assert settings.max_request_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert settings.audit_query_redaction.search("access_token")
    assert not settings.audit_query_redaction.search("tag")


def test_region_falls_back_to_aws_default_region() -> None:
    environ = environment(AWS_REGION=None, AWS_DEFAULT_REGION="us-west-2")

    assert Settings.from_environment(environ).region == "us-west-2"


def test_settings_are_read_from_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environment(GATEHOUSE_AUTHORIZER_TTL_SECONDS="120").items():
        monkeypatch.setenv(name, value)

    settings = Settings.from_environment()

    assert settings.state_table == "gatehouse-state"
    assert settings.authorizer_ttl_seconds == 120


def test_tunable_values_are_read() -> None:
    environ = environment(
        GATEHOUSE_AWS_ENDPOINT_URL="http://localhost:5000",
        GATEHOUSE_AUTHORIZER_TTL_SECONDS="300",
        GATEHOUSE_ASSERTION_TTL_SECONDS="120",
        GATEHOUSE_POLICY_REFRESH_SECONDS="2.5",
        GATEHOUSE_MAX_TOKEN_BYTES="16384",
        GATEHOUSE_AUDIT_QUERY_REDACTION="^(tag)$",
    )

    settings = Settings.from_environment(environ)

    assert settings.aws_endpoint_url == "http://localhost:5000"
    assert settings.authorizer_ttl_seconds == 300
    assert settings.assertion_ttl_seconds == 120
    assert settings.policy_refresh_seconds == 2.5
    assert settings.max_token_bytes == 16384
    assert settings.audit_query_redaction.search("tag")


def test_broken_environment_reports_every_problem_at_once() -> None:
    environ = environment(
        AWS_REGION=None,
        GATEHOUSE_STATE_TABLE=None,
        GATEHOUSE_AUDIT_BUCKET="   ",
        GATEHOUSE_GATEWAY_ISSUER="gatehouse.example.com",
        GATEHOUSE_TRUSTED_ISSUERS="not json",
        GATEHOUSE_AUTHORIZER_TTL_SECONDS="soon",
        GATEHOUSE_ASSERTION_TTL_SECONDS="301",
        GATEHOUSE_AUDIT_QUERY_REDACTION="(unclosed",
        GATEHOUSE_AUDIT_QUERY_VALUE_REDACTION="[unclosed",
    )

    found = problems(environ)

    expected = [
        "AWS_REGION",
        "GATEHOUSE_STATE_TABLE is not set",
        "GATEHOUSE_AUDIT_BUCKET is not set",
        "GATEHOUSE_GATEWAY_ISSUER must be an https URL",
        "GATEHOUSE_TRUSTED_ISSUERS is not JSON",
        "GATEHOUSE_AUTHORIZER_TTL_SECONDS must be a number",
        "GATEHOUSE_ASSERTION_TTL_SECONDS must be between 1 and 300",
        "GATEHOUSE_AUDIT_QUERY_REDACTION is not a valid regular expression",
        "GATEHOUSE_AUDIT_QUERY_VALUE_REDACTION is not a valid regular expression",
    ]
    for fragment in expected:
        assert any(fragment in problem for problem in found), (fragment, found)
    assert len(found) == len(expected)


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("raw", "finds"),
    [
        pytest.param(None, {JWT: True, "AKIAIOSFODNN7EXAMPLE": True, "blue": False}, id="unset"),
        pytest.param("^internal-", {"internal-7": True, JWT: False}, id="custom"),
        pytest.param("", None, id="empty: off"),
        pytest.param("  ", None, id="blank: off"),
    ],
)
def test_query_value_redaction_is_on_unless_emptied(
    raw: str | None, finds: dict[str, bool] | None
) -> None:
    settings = Settings.from_environment(environment(GATEHOUSE_AUDIT_QUERY_VALUE_REDACTION=raw))

    rule = settings.audit_query_value_redaction
    if finds is None:
        assert rule is None
    else:
        assert rule is not None
        assert {value: rule.search(value) is not None for value in finds} == finds


@pytest.mark.parametrize("raw", ["[unclosed", "(?P<x>a)(?P<x>b)", "a{2,1}"])
def test_a_broken_query_value_rule_is_a_settings_problem(raw: str) -> None:
    found = problems(environment(GATEHOUSE_AUDIT_QUERY_VALUE_REDACTION=raw))

    assert len(found) == 1
    assert found[0].startswith(
        "GATEHOUSE_AUDIT_QUERY_VALUE_REDACTION is not a valid regular expression"
    )


def test_settings_error_message_lists_all_problems() -> None:
    environ = environment(GATEHOUSE_STATE_TABLE=None, GATEHOUSE_AUDIT_BUCKET=None)

    with pytest.raises(SettingsError) as caught:
        Settings.from_environment(environ)

    assert isinstance(caught.value, ValueError)
    assert "GATEHOUSE_STATE_TABLE is not set" in str(caught.value)
    assert "GATEHOUSE_AUDIT_BUCKET is not set" in str(caught.value)


def test_empty_environment_names_every_required_variable() -> None:
    found = problems({})

    for name in (
        "AWS_REGION",
        "GATEHOUSE_STATE_TABLE",
        "GATEHOUSE_AUDIT_BUCKET",
        "GATEHOUSE_AUDIT_QUEUE_URL",
        "GATEHOUSE_ASSERTION_KEY_ID",
        "GATEHOUSE_DIGEST_KEY_ID",
        "GATEHOUSE_GATEWAY_ISSUER",
        "GATEHOUSE_TRUSTED_ISSUERS",
    ):
        assert any(name in problem for problem in found), (name, found)


# --- trusted issuers ---------------------------------------------------------------------

VALID_ISSUER: dict[str, Any] = {"issuer": "https://idp.example.com", "audiences": ["gatehouse"]}

ISSUER_CASES = [
    pytest.param("{not json", "is not JSON", id="not JSON"),
    pytest.param(json.dumps(VALID_ISSUER), "non-empty JSON list", id="object not list"),
    pytest.param("[]", "non-empty JSON list", id="empty list"),
    pytest.param('"https://idp.example.com"', "non-empty JSON list", id="string"),
    pytest.param(json.dumps(["https://idp.example.com"]), "[0] must be an object", id="entry str"),
    pytest.param(
        json.dumps([{"issuer": "https://idp.example.com"}]),
        "[0].audiences must be a non-empty list",
        id="missing audiences",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "audiences": []}]),
        "[0].audiences must be a non-empty list",
        id="empty audiences",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "audiences": "gatehouse"}]),
        "[0].audiences must be a non-empty list",
        id="audiences as string",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "audiences": ["gatehouse", ""]}]),
        "[0].audiences must be a non-empty list",
        id="empty audience",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "issuer": "idp.example.com"}]),
        "[0].issuer must be an https URL",
        id="issuer not a URL",
    ),
    pytest.param(
        json.dumps([{"audiences": ["gatehouse"]}]),
        "[0].issuer must be an https URL",
        id="issuer missing",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "jwks_uri": "file:///keys.json"}]),
        "[0].jwks_uri must be an https URL",
        id="jwks_uri not http",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "groups_claim": ""}]),
        "[0].groups_claim must be a claim name",
        id="empty groups_claim",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "audience": "gatehouse"}]),
        "[0] has unknown fields: audience",
        id="unknown field",
    ),
    pytest.param(
        json.dumps([VALID_ISSUER, {**VALID_ISSUER, "audiences": ["other"]}]),
        "lists the same issuer twice",
        id="duplicate issuer",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "issuer": "http://idp.example.com"}]),
        "[0].issuer must be an https URL",
        id="plain http issuer outside the local stack",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "jwks_uri": "http://idp.example.com/keys"}]),
        "[0].jwks_uri must be an https URL",
        id="plain http jwks_uri outside the local stack",
    ),
    pytest.param(
        json.dumps([VALID_ISSUER, {"issuer": "nope", "audiences": ["a"]}]),
        "[1].issuer must be an https URL",
        id="second entry invalid",
    ),
    pytest.param(
        json.dumps([VALID_ISSUER, {**VALID_ISSUER, "issuer": "https://idp.example.com/"}]),
        "lists the same issuer twice",
        id="the same issuer twice (a trailing slash is no other issuer)",
    ),
    pytest.param(
        json.dumps(
            [VALID_ISSUER, {**VALID_ISSUER, "issuer": "https://idp.example.com/other-tenant"}]
        ),
        "two issuers are both named 'idp.example.com'; give each a distinct name",
        id="two issuers on one host need names",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "name": "has space"}]),
        "[0].name must be 1-32 letters",
        id="name with a space",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "scopes": ["email"]}]),
        "[0].scopes must be a list of scopes including openid",
        id="scopes without openid",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "scopes": ["openid", "a b"]}]),
        "[0].scopes must be a list of scopes including openid",
        id="a scope with a space",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "client_secret_id": "gatehouse/okta"}]),
        "[0].client_secret_id needs a client_id",
        id="a secret without a client",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "client_id": ""}]),
        "[0].client_id must be a non-empty string",
        id="empty client_id",
    ),
    pytest.param(
        json.dumps([{**VALID_ISSUER, "email_verified_required": "no"}]),
        "[0].email_verified_required must be true or false",
        id="email_verified_required not a boolean",
    ),
]


@pytest.mark.parametrize(("raw", "fragment"), ISSUER_CASES)
def test_invalid_trusted_issuers(raw: str, fragment: str) -> None:
    found = problems(environment(GATEHOUSE_TRUSTED_ISSUERS=raw))

    assert any(fragment in problem for problem in found), found
    assert all("GATEHOUSE_TRUSTED_ISSUERS" in problem for problem in found)


def test_every_invalid_issuer_field_is_reported() -> None:
    raw = json.dumps([{"issuer": "x", "audiences": [], "colour": "red"}])

    found = problems(environment(GATEHOUSE_TRUSTED_ISSUERS=raw))

    assert len(found) == 3


# --- numeric ranges ----------------------------------------------------------------------

NUMERIC_CASES = [
    pytest.param("AUTHORIZER_TTL_SECONDS", "3600", True, id="authorizer TTL at limit"),
    pytest.param("AUTHORIZER_TTL_SECONDS", "3601", False, id="authorizer TTL over an hour"),
    pytest.param("AUTHORIZER_TTL_SECONDS", "-1", False, id="authorizer TTL negative"),
    pytest.param("AUTHORIZER_TTL_SECONDS", "1.5", False, id="authorizer TTL not integer"),
    pytest.param("AUTHORIZER_TTL_SECONDS", "0", True, id="authorizer TTL zero"),
    pytest.param("ASSERTION_TTL_SECONDS", "300", True, id="assertion TTL at limit"),
    pytest.param("ASSERTION_TTL_SECONDS", "301", False, id="assertion TTL over five minutes"),
    pytest.param("ASSERTION_TTL_SECONDS", "0", False, id="assertion TTL zero"),
    pytest.param("CLOCK_SKEW_SECONDS", "61", False, id="clock skew over a minute"),
    pytest.param("MAX_TOKEN_BYTES", "511", False, id="token limit too small"),
    pytest.param("MAX_REQUEST_BODY_BYTES", "6291457", False, id="request body over Lambda"),
    pytest.param("MAX_RESPONSE_BODY_BYTES", "4194305", False, id="response body over limit"),
    pytest.param("UPSTREAM_READ_TIMEOUT_SECONDS", "29", False, id="read timeout over gateway"),
    pytest.param("UPSTREAM_READ_TIMEOUT_SECONDS", "28", True, id="read timeout at limit"),
    pytest.param("POLICY_REFRESH_SECONDS", "nan", False, id="refresh not a number"),
    pytest.param("POLICY_REFRESH_SECONDS", "inf", False, id="refresh infinite"),
    pytest.param("POLICY_REFRESH_SECONDS", "301", False, id="refresh over five minutes"),
    pytest.param("JWKS_FETCH_TIMEOUT_SECONDS", "0.05", False, id="jwks timeout too short"),
    pytest.param("JWKS_REFRESH_COOLDOWN_SECONDS", "soon", False, id="cooldown not a number"),
]


@pytest.mark.parametrize(("name", "value", "accepted"), NUMERIC_CASES)
def test_numeric_range(name: str, value: str, accepted: bool) -> None:
    environ = environment(**{f"GATEHOUSE_{name}": value})

    if accepted:
        settings = Settings.from_environment(environ)
        assert getattr(settings, name.lower()) == float(value)
    else:
        found = problems(environ)
        assert len(found) == 1
        assert f"GATEHOUSE_{name}" in found[0]


# --- authorizer_ttl_from_environment -----------------------------------------------------


def test_authorizer_ttl_defaults_to_zero() -> None:
    assert authorizer_ttl_from_environment() == 0


@pytest.mark.parametrize(("raw", "ttl"), [("0", 0), ("300", 300), ("3600", 3600)])
def test_authorizer_ttl_is_read(monkeypatch: pytest.MonkeyPatch, raw: str, ttl: int) -> None:
    monkeypatch.setenv("GATEHOUSE_AUTHORIZER_TTL_SECONDS", raw)

    assert authorizer_ttl_from_environment() == ttl


@pytest.mark.parametrize("raw", ["3601", "-1", "an hour", "1.5"])
def test_invalid_authorizer_ttl_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("GATEHOUSE_AUTHORIZER_TTL_SECONDS", raw)

    with pytest.raises(SettingsError, match="GATEHOUSE_AUTHORIZER_TTL_SECONDS"):
        authorizer_ttl_from_environment()


@pytest.mark.parametrize("raw", ["", "0", "60", "3600"], ids=["empty", "0", "60", "3600"])
def test_authorizer_ttl_agrees_with_settings(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    # The API definition (Chalice) and the running authorizer must see the same TTL.
    environ = environment(GATEHOUSE_AUTHORIZER_TTL_SECONDS=raw)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    assert authorizer_ttl_from_environment() == Settings.from_environment().authorizer_ttl_seconds


def test_plain_http_issuers_only_when_explicitly_allowed() -> None:
    local = [{"issuer": "http://127.0.0.1:9000", "audiences": ["gatehouse"]}]
    environ = environment(
        GATEHOUSE_TRUSTED_ISSUERS=json.dumps(local),
        GATEHOUSE_GATEWAY_ISSUER="http://127.0.0.1:8787",
    )

    refused = problems(environ)
    allowed = Settings.from_environment({**environ, "GATEHOUSE_ALLOW_HTTP_ISSUERS": "true"})

    assert any("GATEWAY_ISSUER must be an https URL" in problem for problem in refused)
    assert any("[0].issuer must be an https URL" in problem for problem in refused)
    assert allowed.trusted_issuers[0].issuer == "http://127.0.0.1:9000"
    assert allowed.gateway_issuer == "http://127.0.0.1:8787"


@pytest.mark.parametrize(
    ("raw", "anchor"),
    [
        (None, None),
        ("", None),
        ("s3://anchors", "s3://anchors"),
        ("s3://anchors/ledger/prod", "s3://anchors/ledger/prod"),
    ],
)
def test_the_ledger_anchor_is_optional(raw: str | None, anchor: str | None) -> None:
    settings = Settings.from_environment(environment(GATEHOUSE_LEDGER_ANCHOR=raw))

    assert settings.ledger_anchor == anchor


@pytest.mark.parametrize("raw", ["anchors", "https://anchors/x", "s3://", "s3:///ledger"])
def test_a_ledger_anchor_that_is_no_s3_location_is_refused(raw: str) -> None:
    found = problems(environment(GATEHOUSE_LEDGER_ANCHOR=raw))

    assert found == ["GATEHOUSE_LEDGER_ANCHOR must be s3://bucket[/prefix]"]


PROVIDER_ROLE = "arn:aws:iam::111122223333:role/AmazonSecurityLake-Provider-{source}-eu-west-1"


@pytest.mark.parametrize(
    ("raw", "external_id", "expected"),
    [
        (None, None, (None, None)),
        ("", "", (None, None)),
        (PROVIDER_ROLE, "ext-1", (PROVIDER_ROLE, "ext-1")),
        (
            "arn:aws:iam::111122223333:role/lake-writer",
            None,
            ("arn:aws:iam::111122223333:role/lake-writer", None),
        ),
    ],
)
def test_the_lake_role_is_optional_and_may_name_each_source(
    raw: str | None, external_id: str | None, expected: tuple[str | None, str | None]
) -> None:
    settings = Settings.from_environment(
        environment(
            GATEHOUSE_OCSF_EXPORT_ROLE_ARN=raw, GATEHOUSE_OCSF_EXPORT_EXTERNAL_ID=external_id
        )
    )

    assert (settings.ocsf_export_role_arn, settings.ocsf_export_external_id) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "AmazonSecurityLake-Provider-{source}",
        "arn:aws:iam::1111:role/x",
        "arn:aws:s3:::bucket",
        "arn:aws:iam::111122223333:user/{source}",
        "arn:aws:iam::111122223333:role/has space",
    ],
)
def test_a_lake_role_that_is_no_role_arn_is_refused(raw: str) -> None:
    found = problems(environment(GATEHOUSE_OCSF_EXPORT_ROLE_ARN=raw))

    assert found == [
        "GATEHOUSE_OCSF_EXPORT_ROLE_ARN must be a role ARN (arn:aws:iam::<account>:role/<name>), "
        "`{source}` standing for each custom source's name"
    ]


def test_the_old_table_variable_is_named_with_its_new_name() -> None:
    found = problems(
        environment(GATEHOUSE_STATE_TABLE=None, GATEHOUSE_POLICY_TABLE="gatehouse-prod-policy")
    )

    assert found == [
        "GATEHOUSE_POLICY_TABLE is now called GATEHOUSE_STATE_TABLE (the table holds "
        "policies, grants and the ledger's state); set that instead"
    ]


SIGN_IN = {
    "GATEHOUSE_TRUSTED_ISSUERS": json.dumps([{**VALID_ISSUER, "client_id": "gatehouse-web"}]),
    "GATEHOUSE_SESSION_KEYS_SECRET": "gatehouse/prod/session-keys",
}


def test_every_number_setting_defaults_to_the_table_and_is_held_to_its_range() -> None:
    settings = Settings.from_environment(environment(**SIGN_IN))
    numbers = [v for v in VARIABLES.values() if v.low is not None]
    assert len(numbers) >= 10

    for variable in numbers:
        name = variable.name.lower()
        if name.startswith("session_"):
            assert settings.sessions is not None
            value = getattr(settings.sessions, name.removeprefix("session_"))
        else:
            value = getattr(settings, name)
        assert value == variable.default, variable.env
        assert variable.low is not None
        assert variable.high is not None
        stage = SIGN_IN if name.startswith("session_") else {}
        below = problems(environment(**stage, **{variable.env: str(variable.low - 1)}))
        above = problems(environment(**stage, **{variable.env: str(variable.high + 1)}))
        assert [p.split(" must ")[0] for p in below + above] == [variable.env] * 2


def test_the_configuration_reference_is_generated_from_the_table() -> None:
    assert REFERENCE_PATH.read_text() == reference(), "run python -m chalicelib.variables"
    for variable in VARIABLES.values():
        assert f"`{variable.env}`" in reference()


def test_sign_in_settings_need_keys_a_client_and_no_authorizer_cache() -> None:
    settings = Settings.from_environment(environment(**SIGN_IN))
    assert settings.sessions is not None
    assert settings.sessions.keys_secret == "gatehouse/prod/session-keys"
    [issuer] = settings.trusted_issuers
    assert (issuer.client_id, issuer.name, issuer.offers_sign_in) == (
        "gatehouse-web",
        "idp.example.com",
        True,
    )
    assert Settings.from_environment(environment()).sessions is None

    no_keys = problems(environment(GATEHOUSE_TRUSTED_ISSUERS=SIGN_IN["GATEHOUSE_TRUSTED_ISSUERS"]))
    assert len(no_keys) == 1
    assert "GATEHOUSE_SESSION_KEYS_SECRET is not set" in no_keys[0]

    no_client = problems(environment(GATEHOUSE_SESSION_KEYS_SECRET="gatehouse/keys"))
    assert len(no_client) == 1
    assert "no issuer in GATEHOUSE_TRUSTED_ISSUERS has a client_id" in no_client[0]

    cached = problems(environment(**SIGN_IN, GATEHOUSE_AUTHORIZER_TTL_SECONDS="300"))
    assert len(cached) == 1
    assert "needs GATEHOUSE_AUTHORIZER_TTL_SECONDS=0" in cached[0]


def test_several_issuers_are_trusted_and_the_first_is_the_default() -> None:
    okta = {"issuer": "https://corp.okta.com", "audiences": ["gatehouse"], "name": "okta"}
    google = {
        "issuer": "https://accounts.google.com",
        "audiences": [],
        "client_id": "123.apps.googleusercontent.com",
        "client_secret_id": "gatehouse/google",
        "display_name": "Google Workspace",
    }
    settings = Settings.from_environment(
        environment(
            GATEHOUSE_TRUSTED_ISSUERS=json.dumps([okta, google]),
            GATEHOUSE_SESSION_KEYS_SECRET="gatehouse/keys",
        )
    )
    first, second = settings.trusted_issuers
    assert (first.name, first.display_name, first.offers_sign_in) == ("okta", "okta", False)
    assert (second.name, second.display_name) == ("accounts.google.com", "Google Workspace")
    assert second.audiences == ()
    assert second.client_secret_id == "gatehouse/google"
