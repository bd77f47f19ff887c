"""Who gets through the real gateway: dev-issuer tokens, denials, the identity assertion."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gatehouse.dev.idp import mint_token
from tests.e2e.support import (
    GatewayClient,
    RunningStack,
    alice,
    assert_gateway_error,
    backend_echo,
    echoed_header,
    run_cli,
    token_for,
)

if TYPE_CHECKING:
    from gatehouse.state import DevState

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_token_printed_by_the_cli_works_through_the_gateway(
    gateway: GatewayClient, running_stack: RunningStack, alg: str
) -> None:
    printed = run_cli(
        running_stack.state_dir,
        "dev",
        "token",
        "--sub",
        f"carol-{alg}",
        "--email",
        "carol@example.com",
        "--groups",
        "engineering",
        "--alg",
        alg,
    )
    token = printed.strip()
    assert jwt.get_unverified_header(token)["alg"] == alg
    echo = backend_echo(gateway.send("GET", "/api/whoami", token=token))
    assert echo["assertion"]["valid"] is True, echo["assertion"]
    assert echo["assertion"]["claims"]["sub"] == f"carol-{alg}"
    assert echo["assertion"]["claims"]["email"] == "carol@example.com"


def test_no_token_is_401_with_challenge_and_request_id(gateway: GatewayClient) -> None:
    exchange = gateway.send("GET", "/api/hello")
    assert_gateway_error(exchange, 401, "Unauthorized")
    assert exchange.header("WWW-Authenticate") == 'Bearer realm="gatehouse"'


def test_expired_token_is_401(gateway: GatewayClient, stack: DevState) -> None:
    expired = token_for(stack, "alice", groups=["engineering"], ttl_seconds=-600)
    exchange = gateway.send("GET", "/api/hello", token=expired)
    assert_gateway_error(exchange, 401, "Unauthorized")
    assert exchange.header("WWW-Authenticate") == 'Bearer realm="gatehouse"'


def test_wrong_audience_is_401(gateway: GatewayClient, stack: DevState) -> None:
    foreign = token_for(stack, "alice", groups=["engineering"], audience="some-other-app")
    exchange = gateway.send("GET", "/api/hello", token=foreign)
    assert_gateway_error(exchange, 401, "Unauthorized")


def test_token_signed_by_an_unpublished_key_is_401(gateway: GatewayClient, stack: DevState) -> None:
    # Same issuer, same kid as the real ES256 key, but a key the issuer never published.
    impostor = mint_token(
        ("ES256", stack.idp_keys["ES256"]["kid"], ec.generate_private_key(ec.SECP256R1())),
        issuer=stack.issuer,
        audience=stack.audience,
        subject="alice",
        groups=["engineering"],
    )
    exchange = gateway.send("GET", "/api/hello", token=impostor)
    assert_gateway_error(exchange, 401, "Unauthorized")


def test_contractor_is_denied_billing_even_with_engineering_group(
    gateway: GatewayClient, stack: DevState
) -> None:
    contractor = token_for(stack, "dave", groups=["engineering", "contractors"])
    denied = gateway.send("GET", "/api/billing/invoices", token=contractor)
    assert_gateway_error(denied, 403, "Forbidden")
    # The same token still reaches the rest of /api/**: the deny is specific to billing.
    echo = backend_echo(gateway.send("GET", "/api/projects", token=contractor))
    assert echo["assertion"]["claims"]["sub"] == "dave"


def test_email_domain_grants_docs_but_not_api(gateway: GatewayClient, stack: DevState) -> None:
    staff = token_for(stack, "erin", email="erin@example.com")
    echo = backend_echo(gateway.send("GET", "/docs/guide", token=staff))
    assert echo["path"] == "/docs/guide"
    assert echo["assertion"]["claims"]["sub"] == "erin"
    assert_gateway_error(gateway.send("GET", "/api/hello", token=staff), 403, "Forbidden")
    assert_gateway_error(gateway.send("POST", "/docs/guide", token=staff), 403, "Forbidden")


def test_forged_assertion_never_reaches_the_backend(
    gateway: GatewayClient, stack: DevState
) -> None:
    forged = mint_token(
        ("ES256", "forged-kid", ec.generate_private_key(ec.SECP256R1())),
        issuer=stack.gateway_url,
        audience="demo",
        subject="mallory",
        groups=["admins"],
    )
    exchange = gateway.send(
        "GET",
        "/api/secret",
        token=alice(stack),
        headers=[
            ("X-Gatehouse-Assertion", forged),
            ("x-gatehouse-assertion", forged),
            ("X-Gatehouse-Principal", "mallory"),
        ],
    )
    echo = backend_echo(exchange)
    received = echoed_header(echo, "X-Gatehouse-Assertion")
    assert len(received) == 1, received
    assert received[0] != forged
    assert echo["assertion"]["valid"] is True, echo["assertion"]
    assert echo["assertion"]["claims"]["sub"] == "alice"
    assert echo["assertion"]["claims"]["rid"] == exchange.request_id
    gatehouse_headers = [name for name in echo["headers"] if name.lower().startswith("x-gatehouse")]
    assert [name.lower() for name in gatehouse_headers] == ["x-gatehouse-assertion"]


def test_client_credentials_are_not_forwarded(gateway: GatewayClient, stack: DevState) -> None:
    # The demo route has pass_authorization: false.
    echo = backend_echo(
        gateway.send("GET", "/api/private", token=alice(stack), headers=[("Cookie", "sid=s3cr3t")])
    )
    assert echoed_header(echo, "Authorization") == []
    assert echoed_header(echo, "Cookie") == []
