"""Delegated assertion keys against moto: KMS certifies, the state table publishes, SQS records.

A cold container's first key, a rotation a backend verifying with the JWKS
never notices, expiry recorded once, and the check a backend makes to trace a
key back to the KMS key (and what it refuses).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from chalicelib.audit import AuditEmitter, SqsAuditSink
from chalicelib.aws.signers import KmsSigner, LocalSigner
from chalicelib.aws.table import Table
from chalicelib.identity import Identity
from chalicelib.proxy.assertion import AssertionIssuer
from chalicelib.signing import CertificateInvalid, KeyRegistryError, certify, check_certificate
from chalicelib.signing.delegated import DelegatedKeys, record_expired_keys
from chalicelib.signing.documents import certificates_document, jwks_document
from chalicelib.signing.events import key_event_recorder
from chalicelib.signing.registry import KeyRegistry
from tests.functional.conftest import GATEWAY_ISSUER, queued_events
from tests.helpers import Clock

if TYPE_CHECKING:
    from gatehouse.dev.bootstrap import Resources

T0 = 1_900_000_000.0
HOUR = 3600


@dataclass
class Stage:
    aws: Resources
    clock: Clock
    registry: KeyRegistry
    record: Any
    kms: KmsSigner

    def container_keys(self) -> DelegatedKeys:
        """A new container's keys (each container has its own)."""
        return DelegatedKeys(
            self.kms,
            self.registry,
            self.record,
            issuer=GATEWAY_ISSUER,
            stage="test",
            clock=self.clock,
        )

    def kms_public_jwk(self) -> dict[str, str]:
        """The KMS key's public key, read from KMS, as a backend pins it."""
        return self.kms.jwk()


@pytest.fixture
def stage(aws: Resources) -> Stage:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    kms = KmsSigner(boto3.client("kms", region_name="us-east-1"), aws.assertion_key_alias)
    return Stage(
        aws,
        Clock(T0),
        KeyRegistry(Table(dynamodb, aws.state_table), kms.jwk, issuer=GATEWAY_ISSUER, stage="test"),
        key_event_recorder(AuditEmitter(SqsAuditSink(sqs, aws.audit_queue_url)), "test"),
        kms,
    )


def _assertion(keys: DelegatedKeys, clock: Clock) -> str:
    issuer = AssertionIssuer(keys, issuer=GATEWAY_ISSUER, ttl_seconds=300, clock=clock)
    return issuer.issue(
        Identity("https://idp.example", "alice", "gatehouse", int(clock.now) + 3 * HOUR),
        audience="demo",
        request_id="r-1",
        decision_id="d-1",
        method="GET",
        url="https://gw.example/api/items",
    )


def _backend_verifies(assertion: str, jwks: dict[str, Any], at: float) -> dict[str, Any]:
    """What a backend does with PyJWT: pick the JWKS key by kid, check iss, aud and exp."""
    kid = jwt.get_unverified_header(assertion)["kid"]
    [key] = [k for k in jwks["keys"] if k["kid"] == kid]
    claims: dict[str, Any] = jwt.decode(
        assertion,
        jwt.PyJWK.from_dict(key).key,
        algorithms=["ES256"],
        audience="demo",
        issuer=GATEWAY_ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["exp"] > at, "the assertion had expired"
    return claims


def test_a_backend_verifying_with_the_jwks_accepts_assertions_across_a_rotation(
    stage: Stage,
) -> None:
    keys = stage.container_keys()
    first = _assertion(keys, stage.clock)
    stage.clock.now = T0 + 2 * HOUR - 1
    last_of_first = _assertion(keys, stage.clock)
    stage.clock.now = T0 + 2 * HOUR
    first_of_second = _assertion(keys, stage.clock)
    first_kid = jwt.get_unverified_header(first)["kid"]
    second_kid = jwt.get_unverified_header(first_of_second)["kid"]
    assert jwt.get_unverified_header(last_of_first)["kid"] == first_kid != second_kid

    # Just before the last assertion of the first key expires, the JWKS serves both keys.
    stage.clock.now = T0 + 2 * HOUR + 298
    jwks = jwks_document(stage.registry.live(stage.clock.now))
    assert {k["kid"] for k in jwks["keys"]} == {first_kid, second_kid}
    for assertion in (last_of_first, first_of_second):
        _backend_verifies(assertion, jwks, stage.clock.now)
    # Once the first key's certificate ends, only the second is served.
    stage.clock.now = T0 + 3 * HOUR
    assert [k["kid"] for k in jwks_document(stage.registry.live(stage.clock.now))["keys"]] == [
        second_kid
    ]

    events = [e for e in queued_events(stage.aws) if e["event_type"] == "signing_key"]
    assert [(e["signing_key"]["action"], e["signing_key"]["replaces"]) for e in events] == [
        ("issued", None),
        ("rotated", first_kid),
    ]
    assert [e["signing_key"]["kid"] for e in events] == [first_kid, second_kid]
    assert all(e["principal"] is None and e["action"] == "admin" for e in events)


def test_every_key_of_every_container_is_served_and_traced_to_the_kms_key(stage: Stage) -> None:
    assertions = [_assertion(stage.container_keys(), stage.clock) for _ in range(3)]

    live = stage.registry.live(stage.clock.now)
    jwks = jwks_document(live)
    assert len(jwks["keys"]) == 3
    certificates = {c["kid"]: c for c in certificates_document(live)["certificates"]}
    for assertion in assertions:
        claims = _backend_verifies(assertion, jwks, stage.clock.now)
        kid = jwt.get_unverified_header(assertion)["kid"]
        certified = check_certificate(
            certificates[kid]["certificate"],
            stage.kms_public_jwk(),
            issuer=GATEWAY_ISSUER,
            stage="test",
            now=stage.clock.now,
            at=claims["iat"],
        )
        assert certified.jwk == next(k for k in jwks["keys"] if k["kid"] == kid)
    # The KMS key's public key as KMS itself gives it (DER) checks the same.
    der = boto3.client("kms", region_name="us-east-1").get_public_key(
        KeyId=stage.aws.assertion_key_alias
    )["PublicKey"]
    kms_public = load_der_public_key(der)
    for entry in certificates.values():
        jwt.decode(
            entry["certificate"],
            kms_public,
            algorithms=["ES256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )


def test_a_key_the_kms_key_did_not_certify_is_never_served_nor_accepted(stage: Stage) -> None:
    genuine = stage.container_keys().current().kid
    impostor = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
    forged = certify(
        impostor,
        LocalSigner(ec.generate_private_key(ec.SECP256R1())).jwk(),
        issuer=GATEWAY_ISSUER,
        stage="test",
        not_before=int(T0),
        lifetime_seconds=3 * HOUR,
    )
    other_stage = certify(
        stage.kms,
        LocalSigner(ec.generate_private_key(ec.SECP256R1())).jwk(),
        issuer=GATEWAY_ISSUER,
        stage="prod",
        not_before=int(T0),
        lifetime_seconds=3 * HOUR,
    )
    # Written to the table as if by a role that could (only the proxy's may).
    stage.registry.register(forged)
    stage.registry.register(other_stage)
    table = boto3.client("dynamodb", region_name="us-east-1")
    table.put_item(
        TableName=stage.aws.state_table,
        Item={"pk": {"S": "SIGNING-KEY"}, "sk": {"S": f"{int(T0) + HOUR:010d}#broken"}},
    )

    served = stage.registry.live(T0 + 1)

    assert [c.kid for c in served] == [genuine]  # the rest left out, the set still served
    with pytest.raises(CertificateInvalid, match="not the certifying key's"):
        check_certificate(
            forged.token, stage.kms_public_jwk(), issuer=GATEWAY_ISSUER, stage="test", now=T0
        )


def test_a_key_is_registered_once_and_never_overwritten(stage: Stage) -> None:
    keys = stage.container_keys()
    assert stage.registry.live(T0) == []
    kid = keys.current().kid
    [registered] = stage.registry.live(T0)

    with pytest.raises(KeyRegistryError):
        stage.registry.register(registered)
    assert [c.kid for c in stage.registry.live(T0)] == [kid]


def test_an_ended_key_is_recorded_once_by_the_sweeper(stage: Stage) -> None:
    keys = stage.container_keys()
    kid = keys.current().kid
    queued_events(stage.aws)

    stage.clock.now = T0 + 3 * HOUR - 1
    assert record_expired_keys(stage.registry, stage.record, stage.clock.now) == 0
    stage.clock.now = T0 + 3 * HOUR + 60
    assert record_expired_keys(stage.registry, stage.record, stage.clock.now) == 1
    assert record_expired_keys(stage.registry, stage.record, stage.clock.now) == 0

    [expired] = queued_events(stage.aws)
    assert (expired["event_type"], expired["signing_key"]["action"]) == ("signing_key", "expired")
    assert expired["signing_key"]["kid"] == kid
    assert json.dumps(expired).count('certificate"') == 0  # the digest, never the certificate
    # The note is in a partition of its own: the key's item is as the proxy wrote it.
    table = boto3.client("dynamodb", region_name="us-east-1")
    items = table.scan(TableName=stage.aws.state_table)["Items"]
    partitions = sorted(i["pk"]["S"] for i in items if i["pk"]["S"].startswith("SIGNING-KEY"))
    assert partitions == ["SIGNING-KEY", "SIGNING-KEY-EXPIRED"]
    [key_item] = [i for i in items if i["pk"]["S"] == "SIGNING-KEY"]
    assert set(key_item) == {"pk", "sk", "kid", "certificate", "not_after", "ttl"}


def test_an_unreadable_ended_key_does_not_stop_the_others_expiring(stage: Stage) -> None:
    stage.container_keys().current()
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName=stage.aws.state_table,
        Item={"pk": {"S": "SIGNING-KEY"}, "sk": {"S": f"{int(T0) + 60:010d}#broken"}},
    )
    queued_events(stage.aws)

    stage.clock.now = T0 + 3 * HOUR + 60
    assert record_expired_keys(stage.registry, stage.record, stage.clock.now) == 1


def test_when_the_audit_trail_is_down_no_key_is_used(stage: Stage, aws: Resources) -> None:
    from chalicelib.aws.errors import SigningError

    broken = AuditEmitter(
        SqsAuditSink(boto3.client("sqs", region_name="us-east-1"), aws.audit_queue_url + "-gone")
    )
    keys = DelegatedKeys(
        stage.kms,
        stage.registry,
        key_event_recorder(broken, "test"),
        issuer=GATEWAY_ISSUER,
        stage="test",
        clock=stage.clock,
    )

    with pytest.raises(SigningError, match="not recorded"):
        _assertion(keys, stage.clock)
