"""Delegated assertion keys: each container signs with its own short-lived key.

KMS signs once per key, not once per request. A container makes a P-256 key
in memory, has the KMS key certify it (:func:`~chalicelib.signing.certificate.certify`),
registers the certificate in the state table, records the issuance in the
audit trail, and only then signs with it. The gateway's JWKS lists every
registered key that is still valid, read consistently, so no assertion ever
carries a ``kid`` the JWKS cannot serve.

Timing: a key is certified for ``lifetime_seconds`` (3 h) and used for the
first ``use_seconds`` (2 h) of it; an assertion lives at most five minutes,
so every assertion a key signed expires while the key is still listed. A
failed rotation keeps the current key while it still has more than an
assertion's lifetime left; any failure is tried again only ``retry_seconds``
later (requests without a usable key fail fast meanwhile), so KMS or DynamoDB
being away neither stops a stage that has a key nor costs a KMS call per
request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol

from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.aws.errors import SigningError
from chalicelib.aws.signers import LocalSigner
from chalicelib.signing.certificate import KeyCertificate, certify
from chalicelib.signing.errors import KeyRegistryError

if TYPE_CHECKING:
    from chalicelib.aws.signers import Signer

DEFAULT_LIFETIME_SECONDS: Final = 3 * 3600
DEFAULT_USE_SECONDS: Final = 2 * 3600
# The longest an identity assertion lives (GATEHOUSE_ASSERTION_TTL_SECONDS's bound).
_MAX_ASSERTION_SECONDS: Final = 300

KeyAction = Literal["issued", "rotated", "expired"]


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """A change in a signing key's life, for the audit trail.

    Attributes
    ----------
    action:
        ``issued`` (a container's first key), ``rotated`` (a key that replaces
        ``replaces``), ``expired`` (its certificate ran out).
    certificate:
        The key concerned.
    replaces:
        The ``kid`` a rotated key takes over from.
    """

    action: KeyAction
    certificate: KeyCertificate
    replaces: str | None = None


class SigningKey(Protocol):
    """A key that signs assertions now."""

    @property
    def kid(self) -> str:
        """The ``kid`` assertions name."""

    def sign(self, message: bytes) -> bytes:
        """The ES256 signature (raw ``r || s``) of ``message``."""


class KeySource(Protocol):
    """Where the assertion issuer gets the key to sign with."""

    def current(self) -> SigningKey:
        """The key to sign with now."""


class KeyRegistry(Protocol):
    """Where certified keys are published (the state table)."""

    def register(self, certificate: KeyCertificate) -> None:
        """Store ``certificate`` before its key signs anything."""

    def live(self, now: float) -> list[KeyCertificate]:
        """Every certificate whose key is still valid at ``now``, read consistently."""


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """The key a container signs assertions with now."""

    certificate: KeyCertificate
    signer: LocalSigner
    use_until: float

    @property
    def kid(self) -> str:
        """The ``kid`` assertions name."""
        return self.certificate.kid

    def sign(self, message: bytes) -> bytes:
        """The ES256 signature (raw ``r || s``) of ``message``."""
        return self.signer.sign(message)


class DelegatedKeys:
    """The container's assertion keys: made, certified, registered, recorded, rotated.

    Parameters
    ----------
    certifier:
        The stage's certifying KMS key (``GATEHOUSE_ASSERTION_KEY_ID``).
    registry:
        Where certified keys are published.
    record:
        Puts a :class:`KeyEvent` in the audit trail; raising refuses the key.
    issuer, stage:
        Named in each certificate.
    """

    def __init__(
        self,
        certifier: Signer,
        registry: KeyRegistry,
        record: Callable[[KeyEvent], None],
        *,
        issuer: str,
        stage: str,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        use_seconds: int = DEFAULT_USE_SECONDS,
        retry_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
        new_key: Callable[[], ec.EllipticCurvePrivateKey] | None = None,
    ) -> None:
        if use_seconds + _MAX_ASSERTION_SECONDS >= lifetime_seconds:
            raise ValueError("a key must outlive the assertions it signs by its last use")
        self._certifier = certifier
        self._registry = registry
        self._record = record
        self._issuer = issuer
        self._stage = stage
        self._lifetime = lifetime_seconds
        self._use = use_seconds
        self._retry = retry_seconds
        self._clock = clock
        self._new_key = new_key or (lambda: ec.generate_private_key(ec.SECP256R1()))
        self._active: ActiveKey | None = None
        self._retry_at = 0.0
        self._last_failure = ""
        self._lock = threading.Lock()

    def current(self) -> ActiveKey:
        """The key to sign with now, rotating it when its time is up.

        Raises
        ------
        SigningError
            When no usable key exists and a new one cannot be certified,
            registered and recorded.
        """
        active = self._active
        if active is not None and self._clock() < active.use_until:
            return active
        with self._lock:
            return self._rotate_if_due()

    def _rotate_if_due(self) -> ActiveKey:
        now = self._clock()
        active = self._active
        if active is not None and now < active.use_until:
            return active  # another thread rotated while this one waited
        still_usable = (
            active is not None and active.certificate.not_after - now > _MAX_ASSERTION_SECONDS
        )
        if now < self._retry_at:
            # A failure is retried after retry_seconds, never on every request: a
            # down KMS, table or queue must not become one KMS call per request.
            if still_usable:
                assert active is not None
                return active
            raise SigningError(self._last_failure)
        try:
            self._active = self._issue(now, replaces=active.kid if active else None)
        except SigningError as exc:
            self._retry_at = now + self._retry
            self._last_failure = f"{exc} (tried again from {int(self._retry_at)})"
            if not still_usable:
                raise
            assert active is not None
            return active
        return self._active

    def _issue(self, now: float, *, replaces: str | None) -> ActiveKey:
        signer = LocalSigner(self._new_key())
        certificate = certify(
            self._certifier,
            signer.jwk(),
            issuer=self._issuer,
            stage=self._stage,
            not_before=int(now),
            lifetime_seconds=self._lifetime,
        )
        # Recorded before it is published: a key the JWKS serves always has its
        # issuance in the trail (a recorded key whose registration then fails
        # is never used, and the trail says it was issued, nothing more).
        try:
            self._record(KeyEvent("rotated" if replaces else "issued", certificate, replaces))
        except Exception as exc:  # an unrecorded key is never used
            raise SigningError(
                f"the new signing key's issuance was not recorded: {type(exc).__name__}"
            ) from exc
        try:
            self._registry.register(certificate)
        except KeyRegistryError as exc:
            raise SigningError(f"the new signing key was not registered: {exc}") from exc
        return ActiveKey(certificate, signer, use_until=certificate.not_before + self._use)

    def live(self) -> list[KeyCertificate]:
        """The keys the JWKS serves: every registered key still valid.

        Raises
        ------
        KeyRegistryError
            When the registry cannot be read.
        """
        return self._registry.live(self._clock())


def record_expired_keys(
    registry: ExpiringRegistry, record: Callable[[KeyEvent], None], now: float
) -> int:
    """Put each key whose certificate ended into the audit trail, once; return how many.

    Run by the scheduled sweeper (one at a time: its reserved concurrency is
    1). A key's expiry is noted in the registry only after its event is
    recorded, so a failed recording is tried again on the next run: an expiry
    may at worst be recorded twice, never lost.

    Raises
    ------
    KeyRegistryError
        When the registry cannot be read or noted.
    """
    recorded = 0
    for certificate in registry.ended_unrecorded(now):
        record(KeyEvent("expired", certificate))
        if registry.mark_expiry_recorded(certificate):
            recorded += 1
    return recorded


class ExpiringRegistry(Protocol):
    """The registry as the sweeper uses it."""

    def ended_unrecorded(self, now: float) -> list[KeyCertificate]:
        """Keys whose certificates ended recently and whose expiry is not recorded yet."""

    def mark_expiry_recorded(self, certificate: KeyCertificate) -> bool:
        """Note the expiry as recorded; False when another sweeper did."""
