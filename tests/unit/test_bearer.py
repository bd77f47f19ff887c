"""bearer_token: exactly one well-formed Bearer Authorization header."""

from __future__ import annotations

import pytest

from chalicelib.apigw.events import GatewayRequest, parse_authorizer_event
from chalicelib.identity import TokenRejected
from chalicelib.identity.bearer import bearer_token
from chalicelib.reasons import Reason
from tests.helpers import load_event

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln-_"


def authorization_of(headers: dict[str, list[str]]) -> list[str]:
    """The Authorization values of the fixture event with ``headers``, as the handlers read them."""
    return request_with(headers).headers.get_all("authorization")


def request_with(headers: dict[str, list[str]]) -> GatewayRequest:
    """The fixture authorizer event with its Authorization headers replaced."""
    event = load_event("authorizer_request")
    for key in ("headers", "multiValueHeaders"):
        event[key] = {k: v for k, v in event[key].items() if k.lower() != "authorization"}
    for name, values in headers.items():
        event["headers"][name] = values[-1]
        event["multiValueHeaders"][name] = values
    return parse_authorizer_event(event)


ACCEPTED = [
    pytest.param(f"Bearer {JWT}", JWT, id="canonical"),
    pytest.param(f"bearer {JWT}", JWT, id="lower-case scheme"),
    pytest.param(f"BEARER {JWT}", JWT, id="upper-case scheme"),
    pytest.param(f"Bearer   {JWT}", JWT, id="several spaces"),
    pytest.param(f"Bearer {JWT}  ", JWT, id="trailing spaces"),
    pytest.param("Bearer abc~+/=", "abc~+/=", id="b64token characters"),
]


@pytest.mark.parametrize(("header", "token"), ACCEPTED)
def test_bearer_token_is_extracted(header: str, token: str) -> None:
    assert bearer_token(authorization_of({"Authorization": [header]})) == token


def test_lower_case_header_name_is_found() -> None:
    assert (
        bearer_token(
            request_with({"authorization": [f"Bearer {JWT}"]}).headers.get_all("authorization")
        )
        == JWT
    )


REJECTED = [
    pytest.param({}, Reason.MISSING_CREDENTIALS, id="no Authorization header"),
    pytest.param({"Authorization": [""]}, Reason.MISSING_CREDENTIALS, id="empty header"),
    pytest.param({"Authorization": ["Basic YWxpY2U6cHc="]}, Reason.MISSING_CREDENTIALS, id="Basic"),
    pytest.param({"Authorization": [JWT]}, Reason.MISSING_CREDENTIALS, id="token without scheme"),
    pytest.param(
        {"Authorization": [f"Bearer {JWT}", f"Bearer {JWT}"]},
        Reason.MALFORMED_TOKEN,
        id="two Authorization values",
    ),
    pytest.param(
        {"Authorization": [f"Bearer {JWT}"], "authorization": ["Bearer other"]},
        Reason.MALFORMED_TOKEN,
        id="two Authorization headers differing in case",
    ),
    pytest.param({"Authorization": ["Bearer"]}, Reason.MALFORMED_TOKEN, id="scheme only"),
    pytest.param({"Authorization": ["Bearer "]}, Reason.MALFORMED_TOKEN, id="scheme and space"),
    pytest.param({"Authorization": [f"Bearer{JWT}"]}, Reason.MALFORMED_TOKEN, id="no space"),
    pytest.param(
        {"Authorization": [f"Bearer {JWT} extra"]}, Reason.MALFORMED_TOKEN, id="two tokens"
    ),
    pytest.param({"Authorization": [f"Bearer\t{JWT}"]}, Reason.MALFORMED_TOKEN, id="tab separator"),
    pytest.param(
        {"Authorization": ["Bearer a.b.c!"]}, Reason.MALFORMED_TOKEN, id="garbage character"
    ),
    pytest.param({"Authorization": ['Bearer "a.b.c"']}, Reason.MALFORMED_TOKEN, id="quoted token"),
    pytest.param(
        {"Authorization": [f"Bearer {JWT}\r\nX-Injected: 1"]},
        Reason.MALFORMED_TOKEN,
        id="header injection",
    ),
    pytest.param({"Authorization": ["Bearer tok\u00e9n"]}, Reason.MALFORMED_TOKEN, id="non-ASCII"),
]


@pytest.mark.parametrize(("headers", "reason"), REJECTED)
def test_bearer_token_is_rejected(headers: dict[str, list[str]], reason: Reason) -> None:
    with pytest.raises(TokenRejected) as caught:
        bearer_token(authorization_of(headers))

    assert caught.value.reason is reason
    assert caught.value.reason.is_credential_failure
    assert JWT not in str(caught.value)
