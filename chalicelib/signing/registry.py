"""The state table's record of certified assertion keys: what the JWKS serves.

One item per key, in the ``SIGNING-KEY`` partition, sorted by the end of its
certificate (``<not_after, 10 digits>#<kid>``), so the live keys are one
strongly consistent query from "now" on: a key registered a moment ago is
always in it. Only the proxy's role may write the partition (``infra/``);
DynamoDB's TTL removes an item a day after its certificate ends, once the
sweeper has recorded the expiry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_items import Item, integer, text
from chalicelib.aws.table_layout import SIGNING_KEY
from chalicelib.signing.certificate import KeyCertificate
from chalicelib.signing.errors import KeyRegistryError

if TYPE_CHECKING:
    from chalicelib.aws.table import Table

# How long an expired key's item stays (its TTL): long enough for the
# sweeper, which runs every few minutes, to record the expiry.
_KEEP_EXPIRED_SECONDS: Final = 86_400
_LAST_SORT_KEY: Final = "~"  # after every "<digits>#<kid>"


class KeyRegistry:
    """Certified keys in the state table.

    Parameters
    ----------
    table:
        The state table.
    """

    def __init__(self, table: Table) -> None:
        self._table = table

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
            "jwk": json.dumps(certificate.jwk, sort_keys=True),
            "certificate": certificate.token,
            "certified_by": certificate.certified_by,
            "issuer": certificate.issuer,
            "stage": certificate.stage,
            "not_before": certificate.not_before,
            "not_after": certificate.not_after,
            "ttl": certificate.not_after + _KEEP_EXPIRED_SECONDS,
        }
        try:
            self._table.transact([self._table.put_new(item)])
        except TableError as exc:
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc

    def live(self, now: float) -> list[KeyCertificate]:
        """Every key whose certificate has not ended at ``now``, newest first.

        Raises
        ------
        KeyRegistryError
            When the table cannot be read or holds an unreadable item.
        """
        return list(self._between(_name(int(now) + 1, ""), _LAST_SORT_KEY, newest_first=True))

    def ended(self, now: float, *, since_seconds: int = _KEEP_EXPIRED_SECONDS) -> list[Item]:
        """The items of keys whose certificates ended in the last ``since_seconds``.

        Raises
        ------
        KeyRegistryError
            When the table cannot be read.
        """
        low, high = _name(int(now) - since_seconds, ""), _name(int(now) + 1, "")
        try:
            return list(self._table.query(SIGNING_KEY, between=(low, high)))
        except TableError as exc:
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc

    def mark_expiry_recorded(self, item: Item) -> bool:
        """Note that ``item``'s expiry is in the audit trail; False if already noted.

        Raises
        ------
        KeyRegistryError
            When the table does not take the note.
        """
        try:
            self._table.update(
                {"pk": item["pk"], "sk": item["sk"]},
                "SET expiry_recorded = :yes",
                condition="attribute_exists(sk) AND attribute_not_exists(expiry_recorded)",
                values={":yes": True},
            )
        except TableError as exc:
            if isinstance(exc, WriteRefused) and exc.lost_race:
                return False
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc
        return True

    def _between(self, low: str, high: str, *, newest_first: bool) -> Iterator[KeyCertificate]:
        try:
            for item in self._table.query(
                SIGNING_KEY, between=(low, high), newest_first=newest_first
            ):
                yield certificate_of(item)
        except TableError as exc:  # CorruptItem among them
            raise KeyRegistryError(f"{type(exc).__name__}: {exc}") from exc


def certificate_of(item: Item) -> KeyCertificate:
    """The certificate a registry item holds.

    Raises
    ------
    CorruptItem
        When the item lacks a field or its JWK is not JSON.
    """
    try:
        jwk = json.loads(text(item, "jwk"))
    except ValueError as exc:
        raise CorruptItem(f"signing key {item.get('sk')!r}: its jwk is not JSON") from exc
    return KeyCertificate(
        kid=text(item, "kid"),
        jwk=jwk,
        issuer=text(item, "issuer"),
        stage=text(item, "stage"),
        not_before=integer(item, "not_before"),
        not_after=integer(item, "not_after"),
        token=text(item, "certificate"),
        certified_by=text(item, "certified_by"),
    )


def _name(not_after: int, kid: str) -> str:
    return f"{not_after:010d}#{kid}"
