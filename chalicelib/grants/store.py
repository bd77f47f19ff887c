"""Grants in DynamoDB (the policy table), and their state changes as conditional writes.

Item layout (partition key ``pk``, sort key ``sk``)::

    pk="GRANT"       sk=<id>   the grant and its whole life (status, who, when)
    pk="GRANT-LIVE"  sk=<id>   a copy while approved: what the authorizer loads

The live copy is written in the same transaction as the approval and
deleted in the same transaction as the revocation or the expiry sweep, so
the authorizer reads every grant in force with one ``Query`` and never sees
a grant whose record says otherwise. Every transition is conditional on the
state it leaves: two approvers, or two sweepers, cannot both win.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from chalicelib.grants.errors import GrantConflict, GrantNotFound, GrantsUnavailable
from chalicelib.grants.model import GRANT_STATUSES, Grant
from chalicelib.policy.globs import compile_glob

_PK = "GRANT"
_LIVE = "GRANT-LIVE"
# Live copies linger a day after expiry for anyone reading them by hand;
# correctness never depends on DynamoDB deleting them.
_TTL_GRACE_SECONDS = 86400


class GrantStore:
    """Reads and writes grants.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The policy table name.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._dynamodb = dynamodb
        self._table = table

    # --- reads ---------------------------------------------------------------------------

    def get(self, grant_id: str) -> Grant:
        """The grant ``grant_id``.

        Raises
        ------
        GrantNotFound
            When there is none.
        GrantsUnavailable
            When DynamoDB cannot be read.
        """
        try:
            response = self._dynamodb.get_item(
                TableName=self._table, Key=_key(_PK, grant_id), ConsistentRead=True
            )
        except Exception as exc:  # botocore raises many unrelated types; all mean unavailable
            raise GrantsUnavailable(f"cannot read grant {grant_id}: {exc}") from exc
        item = response.get("Item")
        if item is None:
            raise GrantNotFound(f"no grant {grant_id}")
        return grant_from_item(item)

    def live_grants(self) -> list[Grant]:
        """Every approved grant not yet revoked or swept (some may be past expiry)."""
        return list(self._query(_LIVE, newest_first=False))

    def list_grants(self, limit: int = 100) -> list[Grant]:
        """The newest ``limit`` grants, in any state."""
        grants = []
        for grant in self._query(_PK, newest_first=True):
            grants.append(grant)
            if len(grants) >= limit:
                break
        return grants

    def grants_for_principal(self, issuer: str, subject: str) -> list[Grant]:
        """Every grant ever made to ``(issuer, subject)``, for explain and replay."""
        return [g for g in self._query(_PK, newest_first=True) if g.principal == (issuer, subject)]

    def _query(self, pk: str, *, newest_first: bool) -> Iterator[Grant]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        while True:
            try:
                response = self._dynamodb.query(**kwargs)
            except Exception as exc:
                raise GrantsUnavailable(f"cannot read grants: {exc}") from exc
            for item in response.get("Items", []):
                yield grant_from_item(item)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # --- transitions ---------------------------------------------------------------------

    def create(self, grant: Grant) -> None:
        """Store a new (pending) grant."""
        self._write(
            [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": grant_item(_PK, grant),
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
            ],
            f"grant {grant.id} already exists",
        )

    def approve(self, grant: Grant, approver: str, now: float) -> Grant:
        """Approve a pending grant; its clock starts now. Returns the approved grant."""
        approved = _replace(
            grant,
            status="approved",
            approver=approver,
            approved_at=now,
            expires_at=now + grant.duration_seconds,
        )
        live = grant_item(_LIVE, approved)
        live["ttl"] = {"N": str(int(now + grant.duration_seconds + _TTL_GRACE_SECONDS))}
        self._write(
            [
                self._transition(approved, "pending"),
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": live,
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                },
            ],
            f"grant {grant.id} is no longer pending",
        )
        return approved

    def deny(self, grant: Grant, by: str, now: float) -> Grant:
        """Deny a pending grant."""
        denied = _replace(grant, status="denied", approver=by, ended_by=by, ended_at=now)
        self._write([self._transition(denied, "pending")], f"grant {grant.id} is not pending")
        return denied

    def revoke(self, grant: Grant, by: str, now: float) -> Grant:
        """End a pending or approved grant now."""
        revoked = _replace(grant, status="revoked", ended_by=by, ended_at=now)
        actions = [self._transition(revoked, grant.status)]
        if grant.status == "approved":
            actions.append(self._delete_live(grant.id))
        self._write(actions, f"grant {grant.id} changed state concurrently; look again")
        return revoked

    def expire(self, grant: Grant, now: float) -> bool:
        """Mark an approved grant past its expiry as expired; True only for the caller that did."""
        expired = _replace(grant, status="expired", ended_at=now)
        try:
            self._write(
                [self._transition(expired, "approved"), self._delete_live(grant.id)],
                f"grant {grant.id} was already ended",
            )
        except GrantConflict:
            return False
        return True

    def mark_used(self, grant_id: str, at: float) -> bool:
        """Record the first use of a grant; True only for the first caller."""
        from botocore.exceptions import ClientError

        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(_PK, grant_id),
                UpdateExpression="SET first_used_at = :at",
                ConditionExpression="attribute_exists(sk) AND attribute_not_exists(first_used_at)",
                ExpressionAttributeValues={":at": {"N": repr(at)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise GrantsUnavailable(f"cannot record the use of grant {grant_id}: {exc}") from exc
        except Exception as exc:
            raise GrantsUnavailable(f"cannot record the use of grant {grant_id}: {exc}") from exc
        return True

    def _transition(self, grant: Grant, from_status: str) -> dict[str, Any]:
        """An update of the lifecycle fields, conditional on ``from_status``.

        An update, not a put: it must not erase ``first_used_at``, which the
        authorizer may set at any moment.
        """
        fields: dict[str, Any] = {"status": {"S": grant.status}}
        texts = {"approver": grant.approver, "ended_by": grant.ended_by}
        fields.update({name: {"S": value} for name, value in texts.items() if value is not None})
        moments = {
            "approved_at": grant.approved_at,
            "expires_at": grant.expires_at,
            "ended_at": grant.ended_at,
        }
        fields.update(
            {name: {"N": repr(value)} for name, value in moments.items() if value is not None}
        )
        names = {f"#{name}": name for name in fields}
        values = {f":{name}": value for name, value in fields.items()}
        values[":from"] = {"S": from_status}
        return {
            "Update": {
                "TableName": self._table,
                "Key": _key(_PK, grant.id),
                "UpdateExpression": "SET " + ", ".join(f"#{n} = :{n}" for n in fields),
                "ConditionExpression": "#status = :from",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _delete_live(self, grant_id: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self._table,
                "Key": _key(_LIVE, grant_id),
                "ConditionExpression": "attribute_exists(sk)",
            }
        }

    def _write(self, actions: list[dict[str, Any]], conflict: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._dynamodb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                raise GrantConflict(conflict) from exc
            raise GrantsUnavailable(f"cannot write the grant: {exc}") from exc
        except Exception as exc:
            raise GrantsUnavailable(f"cannot write the grant: {exc}") from exc


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _replace(grant: Grant, **changes: Any) -> Grant:
    from dataclasses import replace

    return replace(grant, **changes)


def grant_item(pk: str, grant: Grant) -> dict[str, Any]:
    """The DynamoDB item for ``grant`` under partition ``pk``."""
    item: dict[str, Any] = {
        **_key(pk, grant.id),
        "issuer": {"S": grant.issuer},
        "subject": {"S": grant.subject},
        "scope": {
            "S": json.dumps(
                {
                    "routes": list(grant.routes),
                    "actions": sorted(grant.actions),
                    "paths": [glob.pattern for glob in grant.paths],
                },
                separators=(",", ":"),
            )
        },
        "duration_seconds": {"N": str(grant.duration_seconds)},
        "justification": {"S": grant.justification},
        "status": {"S": grant.status},
        "requested_at": {"N": repr(grant.requested_at)},
    }
    optional = {
        "email": grant.email,
        "approver": grant.approver,
        "ended_by": grant.ended_by,
    }
    for name, text in optional.items():
        if text is not None:
            item[name] = {"S": text}
    moments = {
        "approved_at": grant.approved_at,
        "expires_at": grant.expires_at,
        "ended_at": grant.ended_at,
        "first_used_at": grant.first_used_at,
    }
    for name, moment in moments.items():
        if moment is not None:
            item[name] = {"N": repr(moment)}
    return item


def grant_from_item(item: dict[str, Any]) -> Grant:
    """Parse a stored grant.

    Raises
    ------
    GrantsUnavailable
        When the item is corrupt (a grant that cannot be read is never honoured).
    """
    try:
        scope = json.loads(item["scope"]["S"])
        status = item["status"]["S"]
        if status not in GRANT_STATUSES:
            raise ValueError(f"unknown status {status!r}")

        def text(name: str) -> str | None:
            value = item.get(name)
            return None if value is None else str(value["S"])

        def number(name: str) -> float | None:
            value = item.get(name)
            return None if value is None else float(value["N"])

        return Grant(
            id=item["sk"]["S"],
            issuer=item["issuer"]["S"],
            subject=item["subject"]["S"],
            email=text("email"),
            routes=tuple(scope["routes"]),
            actions=frozenset(scope["actions"]),
            paths=tuple(compile_glob(pattern) for pattern in scope["paths"]),
            duration_seconds=int(item["duration_seconds"]["N"]),
            justification=item["justification"]["S"],
            status=status,
            requested_at=float(item["requested_at"]["N"]),
            approved_at=number("approved_at"),
            expires_at=number("expires_at"),
            ended_at=number("ended_at"),
            approver=text("approver"),
            ended_by=text("ended_by"),
            first_used_at=number("first_used_at"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise GrantsUnavailable(f"grant item {item.get('sk')} is corrupt: {exc}") from exc
