"""Delegated assertion keys: one KMS signature per key, rotation, failure, the JWKS window.

The registry here is a list in memory; tests/functional/test_signing_keys.py runs the
same life cycle against the state table in moto.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.aws.errors import SigningError
from chalicelib.aws.signers import LocalSigner
from chalicelib.signing import KeyCertificate, KeyRegistryError, check_certificate
from chalicelib.signing.delegated import DelegatedKeys, KeyEvent
from tests.helpers import Clock

ISSUER = "https://gatehouse.example.com"
T0 = 1_800_000_000.0


class CountingSigner:
    """The certifying key: counts its signatures and can be switched off."""

    def __init__(self) -> None:
        self.key = LocalSigner(ec.generate_private_key(ec.SECP256R1()))
        self.signatures = 0
        self.down = False

    def jwk(self) -> dict[str, str]:
        return self.key.jwk()

    def sign(self, message: bytes) -> bytes:
        if self.down:
            raise SigningError("KMS did not sign: EndpointConnectionError")
        self.signatures += 1
        return self.key.sign(message)


@dataclass
class ListRegistry:
    certificates: list[KeyCertificate] = field(default_factory=list)
    down: bool = False

    def register(self, certificate: KeyCertificate) -> None:
        if self.down:
            raise KeyRegistryError("ProvisionedThroughputExceededException")
        self.certificates.append(certificate)

    def live(self, now: float) -> list[KeyCertificate]:
        return [c for c in self.certificates if c.not_after > now]


@dataclass
class Stage:
    kms: CountingSigner
    registry: ListRegistry
    clock: Clock
    events: list[KeyEvent]
    keys: DelegatedKeys
    record_fails: list[bool]


@pytest.fixture
def stage() -> Stage:
    kms, registry, clock, events = CountingSigner(), ListRegistry(), Clock(T0), []
    record_fails = [False]

    def record(event: KeyEvent) -> None:
        if record_fails[0]:
            raise RuntimeError("SQS unavailable")
        events.append(event)

    keys = DelegatedKeys(kms, registry, record, issuer=ISSUER, stage="prod", clock=clock)
    return Stage(kms, registry, clock, events, keys, record_fails)


def test_kms_signs_once_per_key_not_once_per_request(stage: Stage) -> None:
    kids = {stage.keys.current().kid for _ in range(1000)}

    assert len(kids) == 1
    assert stage.kms.signatures == 1
    assert [event.action for event in stage.events] == ["issued"]


def test_the_key_is_registered_and_recorded_before_it_signs(stage: Stage) -> None:
    key = stage.keys.current()

    assert [c.kid for c in stage.registry.live(stage.clock())] == [key.kid]
    assert stage.events[0].certificate.kid == key.kid
    check_certificate(
        stage.events[0].certificate.token,
        stage.kms.jwk(),
        issuer=ISSUER,
        stage="prod",
        now=stage.clock(),
        at=stage.clock(),
    )


def test_a_key_is_used_two_hours_then_replaced_and_both_stay_listed(stage: Stage) -> None:
    first = stage.keys.current()
    stage.clock.now = T0 + 2 * 3600 - 1
    assert stage.keys.current() is first

    stage.clock.now = T0 + 2 * 3600
    second = stage.keys.current()

    assert second.kid != first.kid
    assert [(e.action, e.replaces) for e in stage.events] == [
        ("issued", None),
        ("rotated", first.kid),
    ]
    # An assertion the first key signed at its last moment lives 5 minutes more:
    # the first key is still served until its certificate ends, an hour later.
    stage.clock.now = T0 + 2 * 3600 + 300
    assert {c.kid for c in stage.keys.live()} == {first.kid, second.kid}
    stage.clock.now = T0 + 3 * 3600
    assert {c.kid for c in stage.keys.live()} == {second.kid}


@pytest.mark.parametrize("failing", ["kms", "registry", "audit"])
def test_without_a_key_nothing_is_signed_and_the_failure_says_why(
    stage: Stage, failing: str
) -> None:
    stage.kms.down = failing == "kms"
    stage.registry.down = failing == "registry"
    stage.record_fails[0] = failing == "audit"

    expected = {"kms": "KMS", "registry": "registered", "audit": "recorded"}[failing]
    with pytest.raises(SigningError, match=expected):
        stage.keys.current()

    # Recorded before published: the JWKS never serves a key the trail lacks.
    assert stage.registry.certificates == []
    if failing == "registry":
        assert [e.action for e in stage.events] == ["issued"]  # issued, never used
    else:
        assert stage.events == []


@pytest.mark.parametrize("failing", ["kms", "registry", "audit"])
def test_a_failure_is_retried_after_a_pause_never_on_every_request(
    stage: Stage, failing: str
) -> None:
    stage.kms.down = failing == "kms"
    stage.registry.down = failing == "registry"
    stage.record_fails[0] = failing == "audit"
    signatures = stage.kms.signatures
    with pytest.raises(SigningError):
        stage.keys.current()
    attempts = stage.kms.signatures - signatures

    for _ in range(50):  # requests within the pause fail fast, with the same reason
        with pytest.raises(SigningError, match="tried again from"):
            stage.keys.current()
    assert stage.kms.signatures - signatures == attempts

    stage.kms.down = stage.registry.down = stage.record_fails[0] = False
    stage.clock.now += 30
    assert stage.keys.current().kid in {c.kid for c in stage.registry.certificates}


def test_a_failed_rotation_keeps_the_current_key_while_it_has_time_and_retries_later(
    stage: Stage,
) -> None:
    first = stage.keys.current()
    stage.clock.now = T0 + 2 * 3600
    stage.kms.down = True

    assert stage.keys.current() is first
    stage.kms.down = False
    stage.clock.now += 10
    assert stage.keys.current() is first  # not before the retry time: no KMS call per request
    assert stage.kms.signatures == 1

    stage.clock.now += 30
    assert stage.keys.current().kid != first.kid
    assert stage.kms.signatures == 2


def test_a_key_too_close_to_its_end_is_never_used_when_rotation_fails(stage: Stage) -> None:
    stage.keys.current()
    stage.clock.now = T0 + 3 * 3600 - 300  # an assertion signed now would outlive the key
    stage.kms.down = True

    with pytest.raises(SigningError):
        stage.keys.current()


def test_a_key_must_outlive_the_assertions_it_signs() -> None:
    with pytest.raises(ValueError, match="outlive"):
        DelegatedKeys(
            CountingSigner(),
            ListRegistry(),
            lambda event: None,
            issuer=ISSUER,
            stage="prod",
            lifetime_seconds=3600,
            use_seconds=3400,
        )
