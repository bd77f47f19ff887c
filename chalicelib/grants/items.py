"""Grants as items of the state table, and back.

A grant's record and its live copy hold the same attributes under their
own kinds (:data:`~chalicelib.aws.table_layout.GRANT`,
:data:`~chalicelib.aws.table_layout.GRANT_LIVE`); an item that cannot be
read as a grant is never honoured.
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.aws.table_errors import CorruptItem
from chalicelib.aws.table_items import (
    Item,
    deserialize,
    integer,
    number,
    optional_number,
    optional_text,
    serialize,
    text,
)
from chalicelib.aws.table_layout import GRANT, GRANT_ENDED, GRANT_LIVE, ItemKind
from chalicelib.grants.errors import GrantsUnavailable
from chalicelib.policy.globs import compile_glob
from chalicelib.policy.grant import GRANT_STATUSES, Grant

GRANT_KINDS = {kind.partition: kind for kind in (GRANT, GRANT_LIVE, GRANT_ENDED)}
"""The kinds of item a grant is stored as, by partition."""


def grant_item(pk: str, grant: Grant) -> dict[str, Any]:
    """The DynamoDB item (typed values, as the client takes it) for ``grant`` under ``pk``."""
    return serialize(grant_values(GRANT_KINDS[pk], grant))


def grant_values(kind: ItemKind, grant: Grant) -> Item:
    """The item (plain values, as :class:`~chalicelib.aws.table.Table` takes it) for ``grant``."""
    item: Item = {
        **kind.key(grant.id),
        "issuer": grant.issuer,
        "subject": grant.subject,
        "scope": json.dumps(
            {
                "routes": list(grant.routes),
                "actions": sorted(grant.actions),
                "paths": [glob.pattern for glob in grant.paths],
            },
            separators=(",", ":"),
        ),
        "duration_seconds": grant.duration_seconds,
        "justification": grant.justification,
        "status": grant.status,
        "requested_at": grant.requested_at,
    }
    optional = {
        "email": grant.email,
        "approver": grant.approver,
        "ended_by": grant.ended_by,
        "approved_at": grant.approved_at,
        "expires_at": grant.expires_at,
        "ended_at": grant.ended_at,
        "first_used_at": grant.first_used_at,
    }
    item.update({name: value for name, value in optional.items() if value is not None})
    return item


def grant_from_item(item: dict[str, Any]) -> Grant:
    """Parse a stored grant (typed values, as the client returns it).

    Raises
    ------
    GrantsUnavailable
        When the item is corrupt (a grant that cannot be read is never honoured).
    """
    try:
        values = deserialize(item)
    except CorruptItem as exc:
        sk = item.get("sk")
        raise GrantsUnavailable(f"grant item {sk} is corrupt: {exc}") from exc
    return grant_from_values(values)


def grant_from_values(item: Item) -> Grant:
    """Parse a stored grant (plain values, as :class:`Table` returns it).

    Raises
    ------
    GrantsUnavailable
        When the item is corrupt.
    """
    try:
        scope = json.loads(text(item, "scope"))
        status = text(item, "status")
        if status not in GRANT_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        return Grant(
            id=text(item, "sk"),
            issuer=text(item, "issuer"),
            subject=text(item, "subject"),
            email=optional_text(item, "email"),
            routes=tuple(scope["routes"]),
            actions=frozenset(scope["actions"]),
            paths=tuple(compile_glob(pattern) for pattern in scope["paths"]),
            duration_seconds=integer(item, "duration_seconds"),
            justification=text(item, "justification"),
            status=status,
            requested_at=number(item, "requested_at"),
            approved_at=optional_number(item, "approved_at"),
            expires_at=optional_number(item, "expires_at"),
            ended_at=optional_number(item, "ended_at"),
            approver=optional_text(item, "approver"),
            ended_by=optional_text(item, "ended_by"),
            first_used_at=optional_number(item, "first_used_at"),
        )
    except (CorruptItem, KeyError, TypeError, ValueError) as exc:
        raise GrantsUnavailable(f"grant item {item.get('sk')} is corrupt: {exc}") from exc
