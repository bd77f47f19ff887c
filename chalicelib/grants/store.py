"""Grants in DynamoDB (the state table), and their state changes as conditional writes.

Item layout (partition key ``pk``, sort key ``sk``)::

    pk="GRANT"         sk=<id>         the grant and its whole life (status, who, when)
    pk="GRANT-LIVE"    sk=<id>         a copy while approved: what the authorizer loads
    pk="GRANT-ENDED"   sk=<ended at>#<id>
                                       a copy for a day after it was denied, or ended
                                       after approval: why a request it covered is refused
    pk="GRANT-OUTBOX"  sk=<event id>   a lifecycle event not yet known to be enqueued

The live copy is written in the same transaction as the approval and
deleted in the same transaction as the revocation or the expiry sweep, so
the authorizer reads every grant in force with one ``Query`` and never sees
a grant whose record says otherwise. The ended copy is written by the same
transaction that ends the grant; the authorizer reads it (a second ``Query``
per refresh, never per request) only to name why a request is refused.
Every transition is conditional on the state it leaves: two approvers, or
two sweepers, cannot both win.

Each transition also writes its audit event to the outbox
(:mod:`chalicelib.grants.outbox`), in the same transaction. How a grant is
stored as an item is :mod:`chalicelib.grants.items`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chalicelib.aws.table import Table
from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_layout import GRANT, GRANT_ENDED, GRANT_LIVE, GRANT_OUTBOX
from chalicelib.grants.errors import GrantConflict, GrantNotFound, GrantsUnavailable
from chalicelib.grants.items import GRANT_KINDS, grant_from_values, grant_values
from chalicelib.grants.outbox import GrantOutbox

if TYPE_CHECKING:
    from chalicelib.aws.table_items import Item
    from chalicelib.policy.grant import Grant, GrantStatus

# The partitions this store writes (infra/ lets only the grant functions write them).
_PK = GRANT.partition
_LIVE = GRANT_LIVE.partition
_OUTBOX = GRANT_OUTBOX.partition
_ENDED = GRANT_ENDED.partition
# Ids come from people's command lines: anything that is not UUID-shaped is
# "not found" rather than a DynamoDB validation error (empty key, 1 KiB+ key).
_GRANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STATE_PHRASES: dict[GrantStatus, str] = {
    "pending": "is still pending",
    "approved": "is already approved",
    "denied": "was already denied",
    "revoked": "was already revoked",
    "expired": "has already expired",
}
_OPEN: tuple[GrantStatus, ...] = ("pending", "approved")
# Live copies linger a day after expiry for anyone reading them by hand;
# correctness never depends on DynamoDB deleting them.
_TTL_GRACE_SECONDS = 86400
ENDED_GRANTS_KEPT_SECONDS = 86400
"""How long after a grant ends a request it would have covered is refused naming it."""


class GrantStore:
    """Reads and writes grants.

    Parameters
    ----------
    dynamodb:
        A low-level boto3 DynamoDB client.
    table:
        The state table name.
    """

    def __init__(self, dynamodb: Any, table: str) -> None:
        self._table = Table(dynamodb, table)
        self._outbox = GrantOutbox(self._table)

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
        if not _GRANT_ID.fullmatch(grant_id):
            raise GrantNotFound(f"no grant {grant_id[:64]!r}")
        try:
            item = self._table.get(GRANT.key(grant_id))
        except CorruptItem as exc:
            raise GrantsUnavailable(f"grant item {grant_id} is corrupt: {exc}") from exc
        except TableError as exc:
            raise GrantsUnavailable(f"cannot read grant {grant_id}: {exc}") from exc
        if item is None:
            raise GrantNotFound(f"no grant {grant_id}")
        return grant_from_values(item)

    def live_grants(self) -> list[Grant]:
        """Every approved grant not yet revoked or swept (some may be past expiry).

        One strongly consistent ``Query``, paginated.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be read or an item is corrupt.
        """
        return list(self._query(_LIVE, newest_first=False))

    def recently_ended(self, since: float) -> list[Grant]:
        """Every grant that was denied, revoked or expired at or after ``since``.

        One strongly consistent ``Query`` of the window alone (the copies are
        sorted by when they ended), paginated: DynamoDB's TTL deletes them
        late (up to days), and never needs to for this read.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be read or an item is corrupt.
        """
        window = (_ended_key(since, ""), _ended_key(_NEVER, ""))
        try:
            found = [
                grant_from_values({**item, "sk": item.get("grant_id")})
                for item in self._table.query(GRANT_ENDED, between=window)
            ]
        except CorruptItem as exc:
            raise GrantsUnavailable(f"an ended grant item is corrupt: {exc}") from exc
        except TableError as exc:
            raise GrantsUnavailable(f"cannot read ended grants: {exc}") from exc
        return [grant for grant in found if grant.ended_at is not None and grant.ended_at >= since]

    def list_grants(
        self, limit: int = 100, *, include_ended: bool = True, at: float | None = None
    ) -> list[Grant]:
        """The newest ``limit`` grants, newest first.

        Parameters
        ----------
        limit:
            At most this many.
        include_ended:
            When false, only grants pending or in force at ``at`` (an
            approved grant past its expiry counts as ended, swept or not).
        at:
            Epoch seconds (default: now).

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be read.
        """
        if limit < 1:
            return []
        moment = time.time() if at is None else at
        query = self._query(_PK, newest_first=True, statuses=None if include_ended else _OPEN)
        grants = []
        for grant in query:
            if include_ended or grant.effective_status(moment) in _OPEN:
                grants.append(grant)
            if len(grants) >= limit:
                break
        return grants

    def grants_for_principal(self, issuer: str, subject: str) -> list[Grant]:
        """Every grant ever made to ``(issuer, subject)``, newest first, for explain and replay.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be read.
        """
        return list(self._query(_PK, newest_first=True, principal=(issuer, subject)))

    def _query(
        self,
        pk: str,
        *,
        newest_first: bool,
        statuses: tuple[str, ...] | None = None,
        principal: tuple[str, str] | None = None,
    ) -> Iterator[Grant]:
        # Filters only save transfer: the caller's view is the same without them.
        filters: list[str] = []
        names: dict[str, str] = {}
        values: Item = {}
        if statuses:
            names["#status"] = "status"
            values.update({f":s{i}": status for i, status in enumerate(statuses)})
            filters.append(f"#status IN ({', '.join(f':s{i}' for i in range(len(statuses)))})")
        if principal is not None:
            names.update({"#issuer": "issuer", "#subject": "subject"})
            values.update({":issuer": principal[0], ":subject": principal[1]})
            filters.append("#issuer = :issuer AND #subject = :subject")
        items = self._table.query(
            GRANT_KINDS[pk],
            newest_first=newest_first,
            filter_expression=" AND ".join(filters) if filters else None,
            names=names,
            values=values,
        )
        try:
            for item in items:
                yield grant_from_values(item)
        except CorruptItem as exc:
            raise GrantsUnavailable(f"a grant item is corrupt: {exc}") from exc
        except TableError as exc:
            raise GrantsUnavailable(f"cannot read grants: {exc}") from exc

    # --- transitions ---------------------------------------------------------------------
    # Each transition is one transaction conditional on the state it leaves;
    # a failed condition is re-read and reported as the state the grant is in.

    def create(self, grant: Grant, *, event: dict[str, Any] | None = None) -> None:
        """Store a new (pending) grant (and its ``requested`` event in the outbox).

        Raises
        ------
        GrantConflict
            When a grant with that id exists.
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        try:
            # A new id: no grant is ever overwritten.
            self._write([self._table.put_new(grant_values(GRANT, grant))], event)
        except _ConditionFailed as exc:
            raise GrantConflict(f"grant {grant.id} already exists") from exc

    def approve(
        self, grant: Grant, approver: str, now: float, *, event: dict[str, Any] | None = None
    ) -> Grant:
        """Approve a pending grant; its clock starts at ``now``. Returns the approved grant.

        Writes the live copy the authorizer loads in the same transaction.

        Raises
        ------
        GrantConflict
            When the grant is no longer pending.
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        approved = grant.approved_by(approver, now)
        live = grant_values(GRANT_LIVE, approved)
        # For DynamoDB's eventual clean-up only; expiry is enforced by the engine.
        live["ttl"] = int(now + grant.duration_seconds + _TTL_GRACE_SECONDS)
        # No live copy yet: a grant is approved once.
        actions = [self._update(approved, "pending"), self._table.put_new(live)]
        self._transition(actions, grant, now, verb="approve", event=event)
        return approved

    def deny(
        self, grant: Grant, by: str, now: float, *, event: dict[str, Any] | None = None
    ) -> Grant:
        """Deny a pending grant.

        Raises
        ------
        GrantConflict
            When the grant is no longer pending.
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        denied = grant.denied_by(by, now)
        actions = [self._update(denied, "pending"), self._ended_copy(denied)]
        self._transition(actions, grant, now, verb="deny", event=event)
        return denied

    def revoke(
        self, grant: Grant, by: str, now: float, *, event: dict[str, Any] | None = None
    ) -> Grant:
        """End a pending grant (withdrawn) or an approved one still in force, at ``now``.

        Revoking an approved grant also deletes its live copy, in the same
        transaction. A grant past its expiry has ended already: it is left
        to the sweeper, which records it as expired.

        Raises
        ------
        GrantConflict
            When the grant is no longer in the state ``grant`` shows, or has expired.
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        revoked = grant.revoked_by(by, now)
        if grant.status == "approved":
            update = self._update(revoked, "approved", still_in_force_at=now)
            actions = [update, self._delete_live(grant.id), self._ended_copy(revoked)]
        else:
            # Withdrawn before approval: it never gave access, so no refusal names it (and
            # a requester cannot grow what every authorizer loads by asking and withdrawing).
            actions = [self._update(revoked, grant.status)]
        self._transition(actions, grant, now, verb="revoke", event=event)
        return revoked

    def expire(self, grant: Grant, now: float, *, event: dict[str, Any] | None = None) -> bool:
        """Record that an approved grant past its expiry has ended.

        One transaction deletes the live copy and sets ``status=expired``, so of
        two sweepers that saw the same live grant exactly one gets True.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        if grant.expires_at is None or grant.expires_at > now:
            return False  # not ours to end yet
        expired = grant.expired_at(now)
        try:
            actions = [self._update(expired, "approved"), self._delete_live(grant.id)]
            self._write([*actions, self._ended_copy(expired)], event)
        except _ConditionFailed:
            return False
        return True

    def mark_used(self, grant_id: str, at: float, *, event: dict[str, Any] | None = None) -> bool:
        """Record the first use of a grant; True only for the first caller, ever.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be written.
        """
        # The grant exists and was never used: the first use is recorded once.
        update = self._table.update_action(
            GRANT.key(grant_id),
            "SET first_used_at = :at",
            condition="attribute_exists(sk) AND attribute_not_exists(first_used_at)",
            values={":at": at},
        )
        try:
            self._write([update], event)
        except _ConditionFailed as exc:
            # Used before (or no such grant), unless another transaction merely held the item.
            try:
                used_before = self.get(grant_id).first_used_at is not None
            except GrantNotFound:
                return False
            if used_before:
                return False
            raise GrantsUnavailable(f"grant {grant_id} is busy; its use is recorded later") from exc
        return True

    # --- the outbox ----------------------------------------------------------------------

    def outbox(self, written_before: float) -> list[dict[str, Any]]:
        """Events still in the outbox that were written before ``written_before``.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be read or an entry is corrupt.
        """
        return self._outbox.written_before(written_before)

    def clear_outbox(self, event_id: str) -> None:
        """Forget an event once it is enqueued.

        Raises
        ------
        GrantsUnavailable
            When DynamoDB cannot be written (the event will be enqueued again).
        """
        self._outbox.clear(event_id)

    def _transition(
        self,
        actions: list[dict[str, Any]],
        grant: Grant,
        now: float,
        *,
        verb: str,
        event: dict[str, Any] | None,
    ) -> None:
        try:
            self._write(actions, event)
        except _ConditionFailed as exc:
            try:
                current = self.get(grant.id)
            except GrantNotFound:
                raise GrantConflict(f"grant {grant.id} no longer exists") from exc
            if current.status == grant.effective_status(now):
                # The state still allows the action: another transaction held the item.
                raise GrantConflict(
                    f"grant {grant.id} is being changed concurrently; look again and retry"
                ) from exc
            raise state_conflict(current, verb, now) from exc

    def _update(
        self, grant: Grant, from_status: str, *, still_in_force_at: float | None = None
    ) -> dict[str, Any]:
        """An update of the lifecycle fields, conditional on ``from_status``.

        An update, not a put: it must not erase ``first_used_at``, which the
        authorizer may set at any moment.
        """
        lifecycle: dict[str, Any] = {
            "status": grant.status,
            "approver": grant.approver,
            "ended_by": grant.ended_by,
            "approved_at": grant.approved_at,
            "expires_at": grant.expires_at,
            "ended_at": grant.ended_at,
        }
        fields = {name: value for name, value in lifecycle.items() if value is not None}
        names = {f"#{name}": name for name in fields}
        values = {f":{name}": value for name, value in fields.items()}
        values[":from"] = from_status
        # The grant is still in the state this transition leaves (and, when
        # asked, still in force): of two writers, one wins.
        condition = "#status = :from"
        if still_in_force_at is not None:
            names["#expires_at"] = "expires_at"
            values[":in_force_at"] = still_in_force_at
            condition += " AND #expires_at > :in_force_at"
        return self._table.update_action(
            GRANT.key(grant.id),
            "SET " + ", ".join(f"#{n} = :{n}" for n in fields),
            condition=condition,
            names=names,
            values=values,
        )

    def _ended_copy(self, ended: Grant) -> dict[str, Any]:
        """The ended copy of ``ended``, written by the transaction that ends it."""
        assert ended.ended_at is not None  # every ending transition sets it
        copy = grant_values(GRANT_ENDED, ended)
        # Sorted by when it ended, so the authorizer reads the last day alone.
        copy["sk"] = _ended_key(ended.ended_at, ended.id)
        copy["grant_id"] = ended.id
        # For DynamoDB's clean-up only: recently_ended applies the window itself.
        copy["ttl"] = int(ended.ended_at + ENDED_GRANTS_KEPT_SECONDS + _TTL_GRACE_SECONDS)
        return self._table.put(copy)

    def _delete_live(self, grant_id: str) -> dict[str, Any]:
        # The live copy is still there: of two sweepers (or a sweeper and a
        # revoker), only one ends the grant.
        return self._table.delete_action(GRANT_LIVE.key(grant_id), condition="attribute_exists(sk)")

    def _write(self, actions: list[dict[str, Any]], event: dict[str, Any] | None = None) -> None:
        if event is not None:
            actions = [*actions, self._outbox.put_action(event)]
        try:
            self._table.transact(actions)
        except WriteRefused as exc:
            # Whatever the reasons: a condition failed, or another transaction
            # held the item; the caller re-reads the grant to tell which.
            raise _ConditionFailed from exc
        except TableError as exc:
            raise GrantsUnavailable(f"cannot write the grant: {exc}") from exc


_NEVER = 9_999_999_999.0  # the last second a 10-digit key holds (year 2286)


def _ended_key(ended_at: float, grant_id: str) -> str:
    """The ended copy's sort key: whole seconds, 10 digits, then ``#`` and the id."""
    return f"{int(ended_at):010d}#{grant_id}"


class _ConditionFailed(Exception):
    """A transaction was cancelled: the grant is not in the state assumed, or was busy."""


def state_conflict(grant: Grant, verb: str, at: float) -> GrantConflict:
    """The error for ``verb`` (approve, deny, revoke) on a grant not in a state that allows it.

    Worded from the state the grant is in at ``at``: an approved grant past
    its expiry has expired, swept or not.
    """
    phrase = _STATE_PHRASES[grant.effective_status(at)]
    return GrantConflict(f"cannot {verb} grant {grant.id}: it {phrase}")
