"""Assertion keys through the real stack: a backend verifying with the JWKS across a rotation."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.identity.keys import public_jwk
from chalicelib.signing import check_certificate
from tests.e2e.support import (
    GatewayClient,
    RunningStack,
    alice,
    backend_echo,
    echoed_header,
    read_audit,
    start_stack,
    stop_stack,
)

pytestmark = pytest.mark.e2e

ROTATE_SECONDS = 10


@pytest.fixture
def rotating_stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A stack whose proxy replaces its assertion key every 10 seconds."""
    stack = start_stack(
        tmp_path / "state",
        settings={"GATEHOUSE_ASSERTION_KEY_ROTATE_SECONDS": str(ROTATE_SECONDS)},
    )
    yield stack
    stop_stack(stack)


def _published(stack: RunningStack, name: str) -> dict[str, Any]:
    url = f"{stack.state.gateway_url}/.well-known/gatehouse/{name}"
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        document: dict[str, Any] = json.load(response)
    return document


def _kid_of_an_allowed_request(gateway: GatewayClient, token: str) -> str:
    exchange = gateway.send("GET", "/api/hello", token=token)
    echo = backend_echo(exchange)
    # The demo backend verifies every assertion with PyJWT against the JWKS,
    # fetching the set again when it meets a kid it does not know.
    assert echo["assertion"]["valid"] is True, echo["assertion"]
    [assertion] = echoed_header(echo, "X-Gatehouse-Assertion")
    return str(jwt.get_unverified_header(assertion)["kid"])


def test_a_backend_verifying_with_the_jwks_accepts_assertions_across_a_rotation(
    rotating_stack: RunningStack,
) -> None:
    gateway = GatewayClient(rotating_stack.state)
    token = alice(rotating_stack.state)

    first = _kid_of_an_allowed_request(gateway, token)
    time.sleep(ROTATE_SECONDS + 1)
    second = _kid_of_an_allowed_request(gateway, token)

    assert first != second
    served = {key["kid"] for key in _published(rotating_stack, "jwks.json")["keys"]}
    assert {first, second} <= served  # the first key outlives its last assertion
    # Each key goes back to the stage's assertion KMS key, read from KMS itself.
    kms = boto3.client(
        "kms",
        endpoint_url=rotating_stack.state.aws_endpoint_url,
        region_name=rotating_stack.state.region,
    )
    der = kms.get_public_key(KeyId=f"alias/gatehouse-{rotating_stack.state.stage}-assertion")
    pinned = public_jwk(load_der_public_key(der["PublicKey"]), kid="kms")  # type: ignore[arg-type]
    certificates = _published(rotating_stack, "key-certificates.json")["certificates"]
    for entry in certificates:
        check_certificate(
            entry["certificate"],
            pinned,
            issuer=rotating_stack.state.gateway_url,
            stage=rotating_stack.state.stage,
            now=time.time(),
        )
    assert {first, second} <= {entry["kid"] for entry in certificates}

    admin = read_audit(rotating_stack.state_dir).admin
    keys = [e["signing_key"] for e in admin if e["event_type"] == "signing_key"]
    assert [(k["kid"], k["action"], k["replaces"]) for k in keys] == [
        (first, "issued", None),
        (second, "rotated", first),
    ]
