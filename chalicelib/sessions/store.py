"""Browser sessions in the state table: who signed in, their refresh token, revocations.

Item layout (partition key ``pk``, sort key ``sk``)::

    pk="SESSION"          sk=<session id>   who, when, the sealed refresh token;
                                            revoked_* once revoked; TTL at the session's end
    pk="SESSION-REVOKED"  sk=<session id>   a revocation (who, when, why); TTL a day
                                            after the session's end

The session itself travels in its cookie; the ``SESSION`` item is for what
must not (the refresh token, sealed with the cookie keys for
``refresh-token:<session id>``: never stored in clear) and for operators
(who is signed in). Every container reads the whole ``SESSION-REVOKED``
partition (:class:`~chalicelib.sessions.revocations.RevokedSessions`).

Only the proxy's role writes these partitions, except that anyone allowed to
write the table may *add* a revocation (``infra/gatehouse.yaml``): an
operator's ``gatehouse session revoke`` writes the ``SESSION-REVOKED`` item
alone (``mark_session=False``), and every read here counts it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib.aws.table_errors import CorruptItem, TableError, WriteRefused
from chalicelib.aws.table_items import integer, optional_text, text
from chalicelib.aws.table_layout import SESSION, SESSION_REVOKED, SESSION_REVOKED_AT
from chalicelib.reasons import Reason
from chalicelib.sessions.cookies import MAX_STORED_BYTES
from chalicelib.sessions.errors import SessionError, SessionRejected, SessionsUnavailable

if TYPE_CHECKING:
    from chalicelib.aws.table import Table
    from chalicelib.aws.table_items import Item
    from chalicelib.sessions.keys import SessionKeySource
    from chalicelib.sessions.model import BrowserSession

# Session ids come from cookies and command lines: anything not shaped like
# one is unknown rather than a DynamoDB validation error.
_SESSION_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
# A revocation outlives the session it names by a day (DynamoDB's TTL).
# A revocation outlives its session by a little (clocks differ): after that the
# session's cookie is refused as expired anyway.
_REVOCATION_MARGIN_SECONDS: Final = 600
# A revocation of a session whose end is unknown lasts past the longest
# session there can be (GATEHOUSE_SESSION_MAX_SECONDS at most 30 days).
_LONGEST_SESSION_SECONDS: Final = 2_592_000


def refresh_token_purpose(session_id: str) -> str:
    """What a session's refresh token is sealed for: it opens for that session only."""
    return f"refresh-token:{session_id}"


def revocation_entry_name(revoked_at: int, session_id: str) -> str:
    """The name of a revocation in the feed: its time first, so the feed reads in order."""
    return f"{revoked_at:010d}#{session_id}"


def id_token_purpose(session_id: str) -> str:
    """What a session's ID token is sealed for (the hint of its sign-out at the provider)."""
    return f"id-token:{session_id}"


@dataclass(frozen=True, slots=True)
class StoredSession:
    """What the table knows of a session.

    Attributes
    ----------
    session_id, issuer, idp, client_id, subject, email, idp_session_id:
        As the session's cookie holds them.
    signed_in_at, expires_at:
        Epoch seconds.
    has_refresh_token:
        Whether a (sealed) refresh token is stored.
    revoked_at, revoked_by, revoked_reason:
        Set once revoked (the first revocation's).
    """

    session_id: str
    issuer: str
    idp: str
    client_id: str
    subject: str
    email: str | None
    idp_session_id: str | None
    signed_in_at: int
    expires_at: int
    has_refresh_token: bool = False
    revoked_at: int | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None

    @property
    def revoked(self) -> bool:
        """Whether the session is revoked."""
        return self.revoked_at is not None

    def live(self, now: float) -> bool:
        """Whether the session is neither revoked nor past its end at ``now``."""
        return not self.revoked and now < self.expires_at


class SessionStore:
    """Reads and writes the ``SESSION`` and ``SESSION-REVOKED`` partitions.

    Parameters
    ----------
    table:
        The state table.
    keys:
        The cookie keys (they seal stored refresh tokens).
    """

    def __init__(self, table: Table, keys: SessionKeySource) -> None:
        self._table = table
        self._keys = keys

    # --- the session -----------------------------------------------------------------------

    def create(
        self, session: BrowserSession, *, refresh_token: str | None, id_token: str | None = None
    ) -> None:
        """Store a new session (and its refresh token and ID token, sealed).

        The ID token is kept only as the ``id_token_hint`` of RP-initiated
        logout: providers end their own session only for a hint they issued.

        Raises
        ------
        SessionError
            When a session with that id exists.
        SessionsUnavailable
            When the keys or the table cannot be used.
        """
        item: Item = {
            **SESSION.key(session.session_id),
            "issuer": session.issuer,
            "idp": session.idp,
            "client_id": session.client_id,
            "subject": session.subject,
            "signed_in_at": session.signed_in_at,
            "expires_at": session.expires_at,
            "ttl": session.expires_at,
        }
        if session.email is not None:
            item["email"] = session.email
        if session.idp_session_id is not None:
            item["idp_session_id"] = session.idp_session_id
        if refresh_token is not None:
            item["refresh_token"] = self._seal(session.session_id, refresh_token)
        if id_token is not None:
            item["id_token"] = self._keys.keyring().seal(
                {"it": id_token},
                purpose=id_token_purpose(session.session_id),
                max_bytes=MAX_STORED_BYTES,
            )
        try:
            self._table.transact([self._table.put_new(item)])
        except WriteRefused as exc:
            if exc.lost_race:
                raise SessionError(f"session {session.session_id} exists already") from exc
            raise SessionsUnavailable(f"cannot store the session: {exc}") from exc
        except TableError as exc:
            raise SessionsUnavailable(f"cannot store the session: {exc}") from exc

    def get(self, session_id: str) -> StoredSession | None:
        """The session ``session_id`` (revoked or not), or None when the table has none.

        Raises
        ------
        SessionsUnavailable
            When the table cannot be read or the item is corrupt.
        """
        if not _SESSION_ID.fullmatch(session_id):
            return None
        item = self._get(SESSION.key(session_id))
        if item is None:
            return None
        return _stored(item, self._get(SESSION_REVOKED.key(session_id)))

    def refresh_token(self, session_id: str) -> str | None:
        """The session's refresh token; None when it has none, is revoked or unknown.

        Raises
        ------
        SessionRejected
            ``SESSION_INVALID`` when the stored token cannot be opened (sealed
            by a key rotated out since, or tampered with): sign in again.
        SessionsUnavailable
            When the keys or the table cannot be read.
        """
        if not _SESSION_ID.fullmatch(session_id):
            return None
        item = self._get(SESSION.key(session_id))
        if item is None or "revoked_at" in item or "refresh_token" not in item:
            return None
        if self._get(SESSION_REVOKED.key(session_id)) is not None:
            return None
        sealed = _read(text, item, "refresh_token")
        token = self._keys.open(
            sealed, purpose=refresh_token_purpose(session_id), max_bytes=MAX_STORED_BYTES
        ).get("rt")
        if not isinstance(token, str):
            raise SessionRejected(Reason.SESSION_INVALID, "the stored refresh token is unreadable")
        return token

    def id_token(self, session_id: str) -> str | None:
        """The ID token the session signed in with (revoked or not); None when there is none.

        Never raises for an unreadable token: a sign-out goes on without its hint.
        """
        if not _SESSION_ID.fullmatch(session_id):
            return None
        try:
            item = self._get(SESSION.key(session_id))
            if item is None or "id_token" not in item:
                return None
            opened = self._keys.open(
                str(item["id_token"]),
                purpose=id_token_purpose(session_id),
                max_bytes=MAX_STORED_BYTES,
            )
        except SessionError:
            return None
        token = opened.get("it")
        return token if isinstance(token, str) else None

    def replace_refresh_token(self, session_id: str, refresh_token: str | None) -> None:
        """Store the session's new refresh token (None: forget it), sealed.

        Raises
        ------
        SessionRejected
            ``SESSION_REVOKED`` when the session is revoked or gone.
        SessionsUnavailable
            When the keys or the table cannot be used.
        """
        if not _SESSION_ID.fullmatch(session_id):
            raise SessionRejected(Reason.SESSION_REVOKED, "no such session")
        # The session is still there and not revoked: a revoked session gets no new token.
        condition = "attribute_exists(sk) AND attribute_not_exists(revoked_at)"
        try:
            if refresh_token is None:
                self._table.update(
                    SESSION.key(session_id), "REMOVE refresh_token", condition=condition
                )
            else:
                self._table.update(
                    SESSION.key(session_id),
                    "SET refresh_token = :token",
                    condition=condition,
                    values={":token": self._seal(session_id, refresh_token)},
                )
        except WriteRefused as exc:
            raise SessionRejected(
                Reason.SESSION_REVOKED, f"session {session_id} is revoked or gone"
            ) from exc
        except TableError as exc:
            raise SessionsUnavailable(f"cannot store the refresh token: {exc}") from exc

    # --- revocation ------------------------------------------------------------------------

    def revoke(
        self,
        session_id: str,
        *,
        by: str,
        reason: Reason,
        expires_at: int | None = None,
        mark_session: bool = True,
        now: float | None = None,
    ) -> bool:
        """Revoke the session: every container refuses it within its revocation refresh.

        Writes the ``SESSION-REVOKED`` items (kept ten minutes past the session's
        end) and, with ``mark_session``, marks the ``SESSION`` item (and
        drops its refresh token) in the same transaction. A session revoked
        already keeps its first revocation.

        Parameters
        ----------
        by:
            Who revokes (``logout``, an operator's ARN, ``idp``...).
        reason:
            Recorded with the revocation (``SESSION_REVOKED`` most often).
        expires_at:
            The session's end, when the caller knows it better than the table
            (a cookie naming a session whose item is gone).
        mark_session:
            False for callers not allowed to write the ``SESSION`` partition
            (an operator): the revocation item alone, which every read counts.
        now:
            Epoch seconds (default: now).

        Returns
        -------
        bool
            False when the table knows no such session (the revocation is
            written all the same, unless the id is not shaped like one).

        Raises
        ------
        SessionsUnavailable
            When the table cannot be read or written.
        """
        if not _SESSION_ID.fullmatch(session_id):
            return False
        moment = time.time() if now is None else now
        session = self._get(SESSION.key(session_id))
        if expires_at is None and session is not None:
            expires_at = _read(integer, session, "expires_at")
        if expires_at is None:
            expires_at = int(moment) + _LONGEST_SESSION_SECONDS
        revocation: Item = {
            **SESSION_REVOKED.key(session_id),
            "revoked_at": int(moment),
            "revoked_by": by,
            "reason": reason.value,
            "ttl": expires_at + _REVOCATION_MARGIN_SECONDS,
        }
        for name in ("issuer", "subject"):  # for people reading the partition
            if session is not None and isinstance(session.get(name), str):
                revocation[name] = session[name]
        mark = mark_session and session is not None and "revoked_at" not in session
        # The same revocation in the time-ordered feed containers read from.
        entry: Item = {
            **SESSION_REVOKED_AT.key(revocation_entry_name(int(moment), session_id)),
            "ttl": revocation["ttl"],
        }
        actions = [self._table.put_new(revocation), self._table.put_new(entry)]
        if mark:
            actions.append(self._mark(session_id, revocation))
        try:
            self._table.transact(actions)
        except WriteRefused as exc:
            self._revoked_already(session_id, exc, revocation, mark=mark)
        except TableError as exc:
            raise SessionsUnavailable(f"cannot revoke session {session_id}: {exc}") from exc
        return session is not None

    def _mark(self, session_id: str, revocation: Item) -> dict[str, Any]:
        # The item is still there (not expired meanwhile) and not marked yet.
        return self._table.update_action(
            SESSION.key(session_id),
            "SET #at = :at, #by = :by, #reason = :reason REMOVE #token",
            condition="attribute_exists(sk) AND attribute_not_exists(#at)",
            names={
                "#at": "revoked_at",
                "#by": "revoked_by",
                "#reason": "revoked_reason",
                "#token": "refresh_token",
            },
            values={
                ":at": revocation["revoked_at"],
                ":by": revocation["revoked_by"],
                ":reason": revocation["reason"],
            },
        )

    def _revoked_already(
        self, session_id: str, exc: WriteRefused, revocation: Item, *, mark: bool
    ) -> None:
        """After a refused revocation: fine when revoked already; else write what is missing."""
        if not exc.lost_race:
            raise SessionsUnavailable(f"cannot revoke session {session_id}: {exc}") from exc
        revoked = self._get(SESSION_REVOKED.key(session_id)) is not None
        try:
            if not revoked:
                # The session item changed meanwhile (gone, or marked): the revocation alone.
                entry = {
                    **SESSION_REVOKED_AT.key(
                        revocation_entry_name(int(revocation["revoked_at"]), session_id)
                    ),
                    "ttl": revocation["ttl"],
                }
                self._table.transact([self._table.put_new(revocation), self._table.put_new(entry)])
            elif mark:
                # Revoked already (by an operator): mark the session item too.
                self._table.transact([self._mark(session_id, revocation)])
        except WriteRefused:
            return  # another revoker got there first: the session is revoked
        except TableError as again:
            raise SessionsUnavailable(f"cannot revoke session {session_id}: {again}") from again

    # --- lists -----------------------------------------------------------------------------

    def sessions_of(
        self, issuer: str, subject: str, *, now: float | None = None
    ) -> list[StoredSession]:
        """The live sessions of ``(issuer, subject)``, newest first.

        Raises
        ------
        SessionsUnavailable
            When the table cannot be read or an item is corrupt.
        """
        return self._live(now, principal=(issuer, subject))

    def live(self, limit: int = 100, *, now: float | None = None) -> list[StoredSession]:
        """The newest ``limit`` live sessions (signed in, not ended, not revoked).

        Raises
        ------
        SessionsUnavailable
            When the table cannot be read or an item is corrupt.
        """
        return self._live(now)[: max(limit, 0)]

    def _live(
        self, now: float | None, principal: tuple[str, str] | None = None
    ) -> list[StoredSession]:
        moment = time.time() if now is None else now
        filters = ["#expires_at > :now", "attribute_not_exists(#revoked_at)"]
        names = {"#expires_at": "expires_at", "#revoked_at": "revoked_at"}
        values: Item = {":now": int(moment)}
        if principal is not None:
            names.update({"#issuer": "issuer", "#subject": "subject"})
            values.update({":issuer": principal[0], ":subject": principal[1]})
            filters.append("#issuer = :issuer AND #subject = :subject")
        items = self._table.query(
            SESSION, filter_expression=" AND ".join(filters), names=names, values=values
        )
        revoked = {
            SESSION_REVOKED.name(item) for item in self._items(self._table.query(SESSION_REVOKED))
        }
        sessions = [_stored(item, None) for item in self._items(items)]
        found = [s for s in sessions if s.session_id not in revoked and s.live(moment)]
        return sorted(found, key=lambda s: (s.signed_in_at, s.session_id), reverse=True)

    # --- helpers ---------------------------------------------------------------------------

    def _items(self, items: Iterator[Item]) -> list[Item]:
        try:
            return list(items)
        except CorruptItem as exc:
            raise SessionsUnavailable(f"a session item is corrupt: {exc}") from exc
        except TableError as exc:
            raise SessionsUnavailable(f"cannot read sessions: {exc}") from exc

    def _get(self, key: Item) -> Item | None:
        try:
            return self._table.get(key)
        except CorruptItem as exc:
            raise SessionsUnavailable(f"session item {key['sk']} is corrupt: {exc}") from exc
        except TableError as exc:
            raise SessionsUnavailable(f"cannot read session {key['sk']}: {exc}") from exc

    def _seal(self, session_id: str, refresh_token: str) -> str:
        ring = self._keys.keyring()
        return ring.seal(
            {"rt": refresh_token},
            purpose=refresh_token_purpose(session_id),
            max_bytes=MAX_STORED_BYTES,
        )


def _stored(item: Mapping[str, Any], revocation: Mapping[str, Any] | None) -> StoredSession:
    """A ``SESSION`` item (and its ``SESSION-REVOKED`` item, if any) as a StoredSession."""
    revoked_at = revoked_by = revoked_reason = None
    if "revoked_at" in item:
        revoked_at = _read(integer, item, "revoked_at")
        revoked_by = _read(optional_text, item, "revoked_by")
        revoked_reason = _read(optional_text, item, "revoked_reason")
    elif revocation is not None:
        revoked_at = _read(integer, revocation, "revoked_at")
        revoked_by = _read(optional_text, revocation, "revoked_by")
        revoked_reason = _read(optional_text, revocation, "reason")
    return StoredSession(
        session_id=_read(SESSION.name, item),
        issuer=_read(text, item, "issuer"),
        idp=_read(text, item, "idp"),
        client_id=_read(text, item, "client_id"),
        subject=_read(text, item, "subject"),
        email=_read(optional_text, item, "email"),
        idp_session_id=_read(optional_text, item, "idp_session_id"),
        signed_in_at=_read(integer, item, "signed_in_at"),
        expires_at=_read(integer, item, "expires_at"),
        has_refresh_token="refresh_token" in item,
        revoked_at=revoked_at,
        revoked_by=revoked_by,
        revoked_reason=revoked_reason,
    )


def _read(reader: Any, item: Mapping[str, Any], *names: str) -> Any:
    """``reader(item, *names)``, a corrupt item being :class:`SessionsUnavailable`."""
    try:
        return reader(item, *names)
    except CorruptItem as exc:
        raise SessionsUnavailable(f"session item {item.get('sk')!r} is corrupt: {exc}") from exc
