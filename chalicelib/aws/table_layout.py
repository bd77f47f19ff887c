"""The state table's layout: every kind of item in it, and how its keys are built.

Each store names the kinds it reads and writes from here, so the whole
table (policy versions, grants, the ledger's state) is read in one place;
``infra/`` denies writes per partition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.aws.table_errors import CorruptItem

if TYPE_CHECKING:
    from chalicelib.aws.table_items import Item


@dataclass(frozen=True, slots=True)
class ItemKind:
    """How the keys of one kind of item are built.

    Parameters
    ----------
    partition:
        The partition key (``pk``) every item of the kind shares.
    prefix:
        What every sort key (``sk``) of the kind starts with.
    digits:
        For numbered items: the sort key is the number zero-padded to this
        many digits, so that sort-key order is numeric order.
    """

    partition: str
    prefix: str = ""
    digits: int = 0

    def sort_key(self, name: str | int = "") -> str:
        """The sort key of the item ``name`` (a number for numbered kinds)."""
        if self.digits:
            return f"{self.prefix}{int(name):0{self.digits}d}"
        return f"{self.prefix}{name}"

    def key(self, name: str | int = "") -> Item:
        """The primary key of the item ``name``."""
        return {"pk": self.partition, "sk": self.sort_key(name)}

    def name(self, item: Mapping[str, Any]) -> str:
        """The item's name: its sort key without the prefix.

        Raises
        ------
        CorruptItem
            When the item has no text sort key of this kind.
        """
        sk = item.get("sk")
        if not isinstance(sk, str) or not sk.startswith(self.prefix):
            raise CorruptItem(f"item {sk!r} is not a {self.partition} {self.prefix!r} item")
        return sk.removeprefix(self.prefix)

    def number(self, item: Mapping[str, Any]) -> int:
        """A numbered item's number.

        Raises
        ------
        CorruptItem
            When the sort key does not end in a number.
        """
        name = self.name(item)
        if not name.isdigit():
            raise CorruptItem(f"item {item.get('sk')!r} is not numbered")
        return int(name)


# --- the policy (chalicelib/policy/store.py) ---
POLICY_VERSION = ItemKind("POLICY", "VERSION#", digits=10)
"""An immutable policy version."""
POLICY_CHECKSUM = ItemKind("POLICY", "CHECKSUM#")
"""A document's checksum -> the version holding it."""
POLICY_ACTIVE = ItemKind("POLICY", "ACTIVE")
"""The pointer to the active version (one item: its name is empty)."""
POLICY_ACTIVATION = ItemKind("POLICY", "ACTIVATION#", digits=10)
"""One activation record per activation."""
# --- grants (chalicelib/grants/store.py) ---
GRANT = ItemKind("GRANT")
"""A grant and its whole life, named by grant id."""
GRANT_LIVE = ItemKind("GRANT-LIVE")
"""The copy of an approved grant the authorizer loads."""
GRANT_ENDED = ItemKind("GRANT-ENDED")
"""A copy of a grant that ended (denied, revoked, expired), kept a day: why a request it
would have covered is refused."""
GRANT_OUTBOX = ItemKind("GRANT-OUTBOX")
"""A grant lifecycle event not yet known to be enqueued, named by event id."""
# --- the ledger's state (chalicelib/ledger/state.py) ---
LEDGER_HEAD = ItemKind("LEDGER", "HEAD")
"""Where the log stands (one item: its name is empty)."""
LEDGER_OBJECT = ItemKind("LEDGER", "OBJECT#", digits=16)
"""One committed object, named by its first sequence."""
LEDGER_FENCE = ItemKind("LEDGER", "FENCE#", digits=16)
"""A reservation abandoned by a crash, named by its head version."""
LEDGER_DIGESTS = ItemKind("LEDGER", "DIGESTS")
"""The newest signed digest: the chain's head (one item: its name is empty)."""
LEDGER_DIGEST_CLAIM = ItemKind("LEDGER", "DIGEST-CLAIM")
"""Which chain version a digest writer is writing the digest after (one item)."""
LEDGER_EVENT = ItemKind("LEDGER-EVENT")
"""Which reservation took an event (the writer's dedupe index), named by event id."""
# --- delegated assertion keys (chalicelib/signing/registry.py) ---
SIGNING_KEY = ItemKind("SIGNING-KEY")
"""A certified assertion key, named ``<not_after, 10 digits>#<kid>`` (what the JWKS serves)."""
SIGNING_KEY_EXPIRED = ItemKind("SIGNING-KEY-EXPIRED")
"""The sweeper's note that a key's expiry is in the trail (the key's own sort key)."""
# --- browser sessions (chalicelib/sessions/) ---
SESSION = ItemKind("SESSION")
"""A browser session (who, since when, its sealed refresh token), named by session id."""
SESSION_REVOKED = ItemKind("SESSION-REVOKED", "ID#")
"""A revoked session, named by session id (is this session revoked?)."""
SESSION_REVOKED_AT = ItemKind("SESSION-REVOKED", "AT#")
"""The same revocation named ``<revoked_at, 10 digits>#<session id>``: the feed every
container reads from where it left off."""
# --- detection (chalicelib/detect/state.py) ---
DETECT = ItemKind("DETECT")
"""Detection's windows, first-seen sets, suppressions and alert records (sort keys there)."""
