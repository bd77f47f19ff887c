"""The state table's record of certified assertion keys: what the JWKS serves.

One item per key, in the ``SIGNING-KEY`` partition, sorted by the end of its
certificate (``<not_after, 10 digits>#<kid>``), so the live keys are one
strongly consistent query from "now" on: a key registered a moment ago is
always in it. Only the proxy's role may write the partition (``infra/``).

The table is not trusted for what it serves: each item's certificate is
checked against the stage's certifying KMS key (issuer, stage, lifetime of at
most six hours, valid now), and the key served is the one the certificate
names, never the item's other attributes. An item that fails is left out and
logged; it never breaks the set for everyone.

The sweeper notes each ended key's expiry in a partition of its own
(``SIGNING-KEY-EXPIRED``, same sort key), so it needs no write right on the
keys. DynamoDB's TTL removes both items a day after the certificate ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from chalicelib.aws.errors import SigningError
from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_items import Item, text
from chalicelib.aws.table_layout import SIGNING_KEY, SIGNING_KEY_EXPIRED
from chalicelib.observability import get_logger
from chalicelib.signing.certificate import KeyCertificate, check_certificate, read_certificate
from chalicelib.signing.errors import CertificateInvalid, KeyRegistryError

if TYPE_CHECKING:
    from chalicelib.aws.table import Table

logger = get_logger(__name__)

# How long an ended key's items stay (their TTL): long enough for the
# sweeper, which runs every minute, to record the expiry.
_KEEP_ENDED_SECONDS: Final = 86_400
_LAST_SORT_KEY: Final = "~"  # after every "<digits>#<kid>"
# Checked certificates by token: a JWKS request checks each new one once.
_CHECKED_LIMIT: Final = 1024


class KeyRegistry:
    """Certified keys in the state table.

    Parameters
    ----------
    table:
        The state table.
    certifying_jwk:
        The stage's certifying KMS key's public JWK (fetched once, on first use).
    issuer, stage:
        Whose keys the registry holds.
    """

    def __init__(
        self,
        table: Table,
        certifying_jwk: Callable[[], dict[str, str]],
        *,
        issuer: str,
        stage: str,
    ) -> None:
        self._table = table
        self._certifying_jwk = certifying_jwk
        self._issuer = issuer
        self._stage = stage
        self._checked: dict[str, KeyCertificate] = {}

    def register(self, certificate: KeyCertificate) -> None:
        """Store ``certificate`` (once: an existing item is never overwritten).

        Raises
        ------
        KeyRegistryError
            When the table does not take it.
        """
        item: Item = {
            **SIGNING_KEY.key(_name(certificate.not_after, certificate.kid)),
            "kid": certificate.kid,
            "certificate": certificate.token,
            "not_after": certificate.not_after,
            "ttl": certificate.not_after + _KEEP_ENDED_SECONDS,
        }
        try:
            self._table.transact([self._table.put_new(item)])
        except TableError as exc:
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc

    def live(self, now: float) -> list[KeyCertificate]:
        """Every key whose certificate checks and has not ended at ``now``, newest first.

        Raises
        ------
        KeyRegistryError
            When the table cannot be read or the certifying key is unavailable.
        """
        items = self._query(SIGNING_KEY, _name(int(now) + 1, ""), _LAST_SORT_KEY, newest_first=True)
        served = []
        for item in items:
            certificate = self._checked_certificate(item, now)
            if certificate is not None:
                served.append(certificate)
        return served

    def ended_unrecorded(self, now: float) -> list[KeyCertificate]:
        """The keys whose certificates ended in the last day and whose expiry is not recorded.

        Raises
        ------
        KeyRegistryError
            When the table cannot be read.
        """
        low, high = _name(int(now) - _KEEP_ENDED_SECONDS, ""), _name(int(now) + 1, "")
        recorded = {
            SIGNING_KEY_EXPIRED.name(item)
            for item in self._query(SIGNING_KEY_EXPIRED, low, high, newest_first=False)
        }
        ended = []
        for item in self._query(SIGNING_KEY, low, high, newest_first=False):
            if SIGNING_KEY.name(item) in recorded:
                continue
            try:
                ended.append(certificate_of(item))
            except CorruptItem as exc:
                logger.warning("unreadable signing key item skipped: %s", exc)
        return ended

    def mark_expiry_recorded(self, certificate: KeyCertificate) -> bool:
        """Note that ``certificate``'s expiry is in the audit trail; False if already noted.

        Raises
        ------
        KeyRegistryError
            When the table does not take the note.
        """
        item: Item = {
            **SIGNING_KEY_EXPIRED.key(_name(certificate.not_after, certificate.kid)),
            "ttl": certificate.not_after + _KEEP_ENDED_SECONDS,
        }
        try:
            self._table.transact([self._table.put_new(item)])
        except TableError as exc:
            if isinstance(exc, WriteRefused) and exc.lost_race:
                return False
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc
        return True

    def _checked_certificate(self, item: Item, now: float) -> KeyCertificate | None:
        token = item.get("certificate")
        if not isinstance(token, str):
            logger.warning("signing key item %r without a certificate left out", item.get("sk"))
            return None
        certificate = self._checked.get(token)
        if certificate is None:
            try:
                certifying_jwk = self._certifying_jwk()
            except SigningError as exc:  # the set cannot be checked: serve none, say so
                raise KeyRegistryError(f"the certifying key is unavailable: {exc}") from exc
            try:
                certificate = check_certificate(
                    token, certifying_jwk, issuer=self._issuer, stage=self._stage, now=now
                )
            except CertificateInvalid as exc:
                logger.warning("signing key %r left out of the JWKS: %s", item.get("sk"), exc)
                return None
            if len(self._checked) >= _CHECKED_LIMIT:
                self._checked.clear()
            self._checked[token] = certificate
        if not certificate.not_before - 60 <= now < certificate.not_after:
            return None
        return certificate

    def _query(self, kind: Any, low: str, high: str, *, newest_first: bool) -> list[Item]:
        try:
            return list(self._table.query(kind, between=(low, high), newest_first=newest_first))
        except TableError as exc:  # CorruptItem among them
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc


def certificate_of(item: Item) -> KeyCertificate:
    """The certificate a registry item holds, read without checking its signature.

    For recording an ended key's expiry only; what the JWKS serves is checked.

    Raises
    ------
    CorruptItem
        When the item lacks its certificate or the certificate is unreadable.
    """
    try:
        return read_certificate(text(item, "certificate"))
    except CertificateInvalid as exc:
        raise CorruptItem(f"signing key {item.get('sk')!r}: {exc}") from exc


def _name(not_after: int, kid: str) -> str:
    return f"{not_after:010d}#{kid}"
