"""Per-principal STS sessions for AWS upstreams, so CloudTrail names the person.

For a route with an AWS upstream the proxy assumes the route's role once per
principal with ``SourceIdentity`` = the principal, and reuses that session
until shortly before it expires. AWS carries ``SourceIdentity`` into every
CloudTrail record the session causes (``userIdentity.sessionContext.
sourceIdentity``), and it cannot be changed by role chaining.

What STS is sent, deterministically:

``SourceIdentity``
    The verified email (already lower-cased), else the subject. An email that
    is already 2-64 characters of STS's set ``[A-Za-z0-9_+=,.@-]`` is sent as
    it is. Any other email (unicode, other punctuation, too long) and *every*
    subject is *altered*: each character outside the set becomes ``_``, the
    result is cut to 47 characters, and ``=`` plus the first 16 hex digits of
    SHA-256 of the original text (UTF-8; a subject's prefixed with ``sub:``)
    are appended. Altering alone would make ``jörg@x`` and ``jürg@x`` both
    ``j_rg@x``; the hash keeps them apart. Altering every subject keeps the
    two namespaces apart: a principal without an email whose subject is
    someone else's email does not get that person's value. An altered value
    ends with ``=`` and 16 hex digits, which no email does (its domain
    cannot hold ``=``), so it can collide only through a 64-bit hash
    collision. All of this is for principals of the stage's *default issuer*
    (its first trusted issuer), whose values are what they were when a
    stage trusted one issuer. A principal of any other issuer gets an
    altered value *always*, email or not: its email (else its subject),
    ``_`` and the issuer's host name, cut and marked as above, with the hash
    taken over the issuer and the email or subject (``0xFF``-separated bytes,
    which no UTF-8 text holds, so no default-issuer value hashes the same
    text): two issuers never share a value, not for the same subject and not
    for the same verified email (another IdP vouching for
    ``alice@example.com`` does not make its principal the default IdP's alice).
    :class:`RoleSessions` is told the default issuer (``default_issuer``);
    without it every principal is taken as the default issuer's, which is
    right only on a stage that trusts one issuer.
``RoleSessionName``
    ``gh-`` + the API Gateway request id of the request that opened the
    session, characters outside the set replaced by ``_``, at most 64.
``Tags``
    ``principal``: exactly the ``SourceIdentity`` (so ABAC conditions on the
    tag are as unambiguous as the identity). ``groups``: the group names,
    sorted and joined by ``:``; a name with anything but ASCII letters,
    digits and ``_.-@/`` (a ``:`` that would read as two groups, a ``+``,
    an ``=``) is altered as above, so no name can pose as another or as a
    list. Another issuer's groups are all altered, with the issuer in the
    hash: its ``admins`` is never the default issuer's ``admins`` to an IAM
    condition. When the names do not fit in 256 characters the call is refused
    (502, audited): a tag that silently left a group out would defeat an
    IAM condition that denies that group.
``DurationSeconds``
    900 (STS's minimum); the session is renewed 60 s before it expires.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.aws.errors import (
    AwsUpstreamError,
    RoleRefused,
    RoleUnavailable,
    SessionTagTooLong,
)

if TYPE_CHECKING:
    from chalicelib.identity import Identity

SESSION_DURATION_SECONDS = 900
RENEW_BEFORE_EXPIRY_SECONDS = 60
MAX_CACHED_SESSIONS = 1024

MIN_SOURCE_IDENTITY = 2
MAX_SOURCE_IDENTITY = 64
MAX_SESSION_NAME = 64
MAX_TAG_VALUE = 256
SESSION_NAME_PREFIX = "gh-"
PRINCIPAL_TAG = "principal"
GROUPS_TAG = "groups"

_HASH_DIGITS = 16
_ALTERED_MARK = "="
_NOT_STS = re.compile(r"[^\w+=,.@-]", re.ASCII)
# Group names kept as they are in the groups tag: no separator, no marker.
_PLAIN_GROUP = re.compile(r"[A-Za-z0-9_.@/-]{1,64}")
_NOT_PLAIN_GROUP = re.compile(r"[^A-Za-z0-9_.@/-]")
_MAX_ALTERED_GROUP = 64
# An AssumeRole that STS refused is not asked again for this long (per
# role and principal): a principal the trust policy refuses must not turn
# every request into an STS call.
REFUSAL_CACHE_SECONDS = 30.0
# STS answers these when it is overloaded or failing, not when it refuses.
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "InternalFailure",
        "InternalError",
        "IDPCommunicationError",
    }
)


def sanitise_source_identity(text: str) -> str:
    """``text`` (an email) as an STS ``SourceIdentity`` (see the module docstring)."""
    if MIN_SOURCE_IDENTITY <= len(text) <= MAX_SOURCE_IDENTITY and not _NOT_STS.search(text):
        return text
    return _altered(text, text, MAX_SOURCE_IDENTITY)


def _altered(
    shown: str, hashed: str | bytes, limit: int, refused: re.Pattern[str] = _NOT_STS
) -> str:
    text = hashed if isinstance(hashed, bytes) else _utf8(hashed)
    digest = hashlib.sha256(text).hexdigest()[:_HASH_DIGITS]
    readable = refused.sub("_", shown)[: limit - len(_ALTERED_MARK) - _HASH_DIGITS]
    return f"{readable}{_ALTERED_MARK}{digest}"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# Separates the parts of another issuer's hashed text: a byte no UTF-8 text holds.
_PART = b"\xff"


def _issuer_qualified(issuer: str, kind: bytes, text: str) -> bytes:
    """What is hashed for another issuer's ``text``: never any default-issuer text's bytes."""
    return _PART + _utf8(issuer.rstrip("/")) + _PART + kind + _PART + _utf8(text)


def _is_default(identity: Identity, default_issuer: str | None) -> bool:
    return default_issuer is None or identity.issuer.rstrip("/") == default_issuer.rstrip("/")


def _issuer_host(issuer: str) -> str:
    """``idp.example.com`` of ``https://idp.example.com/tenant``, for people reading CloudTrail."""
    return issuer.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]


def source_identity_of(identity: Identity, default_issuer: str | None = None) -> str:
    """The ``SourceIdentity`` for ``identity`` (see the module docstring).

    A default-issuer principal's email as is when STS takes it, else altered;
    another issuer's principal's value is always altered, with its issuer.
    ``default_issuer`` None: every principal is the default issuer's (a stage
    that trusts one issuer).
    """
    if not _is_default(identity, default_issuer):
        kind, text = (b"email", identity.email) if identity.email else (b"sub", identity.subject)
        shown = f"{text}_{_issuer_host(identity.issuer)}"
        return _altered(shown, _issuer_qualified(identity.issuer, kind, text), MAX_SOURCE_IDENTITY)
    if identity.email:
        return sanitise_source_identity(identity.email)
    return _altered(identity.subject, "sub:" + identity.subject, MAX_SOURCE_IDENTITY)


def session_name_for(request_id: str) -> str:
    """``gh-`` + the request id, as an STS role session name."""
    return (SESSION_NAME_PREFIX + _NOT_STS.sub("_", request_id))[:MAX_SESSION_NAME]


def group_tag_name(group: str, issuer: str | None = None) -> str:
    """One group as it appears in the ``groups`` tag: as is when plain, else altered.

    ``issuer``: the issuer of a principal of another issuer than the default,
    whose groups are always altered (None: the default issuer's).
    """
    if issuer is not None:
        hashed = _issuer_qualified(issuer, b"group", group)
        return _altered(group, hashed, _MAX_ALTERED_GROUP, _NOT_PLAIN_GROUP)
    if group and _PLAIN_GROUP.fullmatch(group):
        return group
    return _altered(group, group, _MAX_ALTERED_GROUP, _NOT_PLAIN_GROUP)


def groups_tag(groups: Iterable[str], issuer: str | None = None) -> str:
    """The ``groups`` tag value: sorted names joined by ``:``.

    ``issuer`` as for :func:`group_tag_name`.

    Raises
    ------
    SessionTagTooLong
        When the names do not fit in one tag value (256 characters).
    """
    joined = ":".join(sorted({group_tag_name(group, issuer) for group in groups}))
    if len(joined) > MAX_TAG_VALUE:
        raise SessionTagTooLong(
            f"the principal's groups take {len(joined)} characters; an STS session tag holds "
            f"{MAX_TAG_VALUE}, and leaving some out could defeat a condition on them"
        )
    return joined


def session_tags(identity: Identity, default_issuer: str | None = None) -> list[dict[str, str]]:
    """The session tags: who the principal is (its ``SourceIdentity``) and their groups.

    ``default_issuer`` as for :func:`source_identity_of`.

    Raises
    ------
    SessionTagTooLong
        When the groups do not fit in a tag.
    """
    other_issuer = None if _is_default(identity, default_issuer) else identity.issuer
    return [
        {"Key": PRINCIPAL_TAG, "Value": source_identity_of(identity, default_issuer)},
        {"Key": GROUPS_TAG, "Value": groups_tag(identity.groups, other_issuer)},
    ]


@dataclass(frozen=True, slots=True)
class RoleSession:
    """Temporary credentials of one principal's session of one role.

    The secret key and session token never appear in ``repr`` (nor anywhere
    else this package writes).
    """

    role_arn: str
    session_name: str
    source_identity: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float


class RoleSessions:
    """Assumes upstream roles per principal and caches the sessions until shortly before expiry.

    Parameters
    ----------
    sts:
        Returns the STS client; called on first use only (boto3 is imported lazily).
    clock:
        Seconds since the epoch.
    duration_seconds, renew_before_seconds, max_sessions:
        Session length asked of STS, how long before expiry a session is
        replaced, and how many sessions are kept (least recently used go first).
    default_issuer:
        The stage's default issuer (its first trusted issuer): its principals'
        values are as they always were, any other issuer's are qualified (see
        the module docstring). None only for a stage that trusts one issuer.
    """

    def __init__(
        self,
        sts: Callable[[], Any],
        *,
        default_issuer: str | None = None,
        clock: Callable[[], float] = time.time,
        duration_seconds: int = SESSION_DURATION_SECONDS,
        renew_before_seconds: float = RENEW_BEFORE_EXPIRY_SECONDS,
        max_sessions: int = MAX_CACHED_SESSIONS,
    ) -> None:
        self._sts = sts
        self._default_issuer = default_issuer
        self._clock = clock
        self._duration = duration_seconds
        self._renew_before = renew_before_seconds
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[tuple[str, ...], RoleSession] = OrderedDict()
        self._refused: OrderedDict[tuple[str, ...], tuple[float, str]] = OrderedDict()
        self._flights: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def session_for(self, role_arn: str, identity: Identity, request_id: str) -> RoleSession:
        """A live session of ``role_arn`` for ``identity``, assuming the role if needed.

        Raises
        ------
        RoleUnavailable
            STS could not be reached, was throttled or timed out (503).
        RoleRefused
            STS refused the AssumeRole call (502); it is not asked again for the
            same role and principal for :data:`REFUSAL_CACHE_SECONDS`.
        SessionTagTooLong
            The principal's groups do not fit in a session tag (502).
        """
        source_identity = source_identity_of(identity, self._default_issuer)
        tags = session_tags(identity, self._default_issuer)
        # Groups are in the key: a principal whose groups changed gets a session
        # tagged with the new ones, not the old one until it expires.
        key = (role_arn, identity.issuer, identity.subject, source_identity, tags[1]["Value"])
        with self._lock:
            session = self._live(key)
            if session is not None:
                return session
            refused = self._refused.get(key)
            if refused is not None and refused[0] > self._clock():
                raise RoleRefused(refused[1])
            # One AssumeRole per key at a time: concurrent first requests of one
            # principal wait for it instead of each calling STS.
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                session = self._live(key)
            if session is not None:
                return session
            try:
                session = self._assume(
                    role_arn, source_identity, tags, session_name_for(request_id)
                )
            except RoleRefused as refusal:
                with self._lock:
                    self._refused[key] = (self._clock() + REFUSAL_CACHE_SECONDS, str(refusal))
                    _trim(self._refused, self._max_sessions)
                raise
            finally:
                with self._lock:
                    self._flights.pop(key, None)
            with self._lock:
                self._refused.pop(key, None)
                self._sessions[key] = session
                self._sessions.move_to_end(key)
                _trim(self._sessions, self._max_sessions)
        return session

    def _live(self, key: tuple[str, ...]) -> RoleSession | None:
        """The cached session for ``key`` if it is not due for renewal (call under the lock)."""
        session = self._sessions.get(key)
        if session is not None and session.expires_at - self._renew_before > self._clock():
            self._sessions.move_to_end(key)
            return session
        return None

    def _assume(
        self, role_arn: str, source_identity: str, tags: list[dict[str, str]], session_name: str
    ) -> RoleSession:
        try:
            answer = self._sts().assume_role(
                RoleArn=role_arn,
                RoleSessionName=session_name,
                SourceIdentity=source_identity,
                Tags=tags,
                DurationSeconds=self._duration,
            )
        except Exception as exc:
            failure = _sts_failure(role_arn, exc)
            if failure is None:
                raise
            raise failure from exc
        try:
            credentials = answer["Credentials"]
            return RoleSession(
                role_arn=role_arn,
                session_name=session_name,
                source_identity=source_identity,
                access_key_id=str(credentials["AccessKeyId"]),
                secret_access_key=str(credentials["SecretAccessKey"]),
                session_token=str(credentials["SessionToken"]),
                expires_at=credentials["Expiration"].timestamp(),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise RoleUnavailable(
                f"sts:AssumeRole {role_arn}: malformed answer ({type(exc).__name__})"
            ) from exc


def _trim(cache: OrderedDict[Any, Any], size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)


def _sts_failure(role_arn: str, exc: Exception) -> AwsUpstreamError | None:
    """The aws error for a failed AssumeRole; None for anything not from botocore (a bug)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))[:200]
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        failure = RoleUnavailable if code in _TRANSIENT_CODES or status >= 500 else RoleRefused
        return failure(f"sts:AssumeRole {role_arn} failed: {code}: {message}")
    if isinstance(exc, BotoCoreError):
        return RoleUnavailable(f"sts:AssumeRole {role_arn} failed: {type(exc).__name__}")
    return None
