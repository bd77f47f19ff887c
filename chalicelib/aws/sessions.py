"""Per-principal STS sessions for AWS upstreams, so CloudTrail names the person.

For a route with an AWS upstream the proxy assumes the route's role once per
principal with ``SourceIdentity`` = the principal, and reuses that session
until shortly before it expires. AWS carries ``SourceIdentity`` into every
CloudTrail record the session causes (``userIdentity.sessionContext.
sourceIdentity``), and it cannot be changed by role chaining.

What STS is sent, deterministically:

``SourceIdentity``
    The verified email (already lower-cased), else the subject. A value that
    is already 2-64 characters of STS's set ``[A-Za-z0-9_+=,.@-]`` is sent as
    it is. Any other value (unicode, other punctuation, too long, too short,
    empty) is *altered*: each character outside the set becomes ``_``, the
    result is cut to 47 characters, and ``=`` plus the first 16 hex digits of
    SHA-256 of the original text (UTF-8) are appended. Altering alone would
    make ``jörg@x`` and ``jürg@x`` both ``j_rg@x``; the hash keeps them apart.
    An altered value can collide with another principal only through a
    64-bit hash collision, or with an unaltered one whose own text happens to
    end in that ``=<hash>`` (which the IdP, not the caller, would have to issue).
    Principals of different issuers with the same subject and no email share
    a value: a stage trusts one issuer (see ``chalicelib.config``).
``RoleSessionName``
    ``gh-`` + the API Gateway request id of the request that opened the
    session, characters outside the set replaced by ``_``, at most 64.
``Tags``
    ``principal`` (the email, else the subject) and ``groups`` (sorted, joined
    by ``:``), each with characters outside STS's tag set (letters, numbers,
    spaces, ``_.:/=+-@``) replaced by ``_``. The principal is cut to 256
    characters; groups keep as many whole names as fit in 256 characters and
    end with ``:+N`` when N names were left out.
``DurationSeconds``
    900 (STS's minimum); the session is renewed 60 s before it expires.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.aws.errors import AwsUpstreamError, RoleRefused, RoleUnavailable

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
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
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
    """``text`` as an STS ``SourceIdentity`` (see the module docstring for the rules)."""
    if MIN_SOURCE_IDENTITY <= len(text) <= MAX_SOURCE_IDENTITY and not _NOT_STS.search(text):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_DIGITS]
    readable = _NOT_STS.sub("_", text)[: MAX_SOURCE_IDENTITY - len(_ALTERED_MARK) - _HASH_DIGITS]
    return f"{readable}{_ALTERED_MARK}{digest}"


def source_identity_of(identity: Identity) -> str:
    """The ``SourceIdentity`` for ``identity``: its email, else its subject, sanitised."""
    return sanitise_source_identity(identity.email or identity.subject)


def session_name_for(request_id: str) -> str:
    """``gh-`` + the request id, as an STS role session name."""
    return (SESSION_NAME_PREFIX + _NOT_STS.sub("_", request_id))[:MAX_SESSION_NAME]


def tag_text(text: str) -> str:
    """``text`` with every character STS refuses in a tag value replaced by ``_`` (not cut)."""
    return "".join(
        char if char in _TAG_PUNCTUATION or unicodedata.category(char)[0] in "LNZ" else "_"
        for char in text
    )


def groups_tag(groups: Iterable[str]) -> str:
    """The ``groups`` tag value: sorted names joined by ``:``, whole names only, ``:+N`` if cut."""
    names = sorted({tag_text(group) for group in groups})
    joined = ":".join(names)
    if len(joined) <= MAX_TAG_VALUE:
        return joined
    kept: list[str] = []
    size = 0
    for name in names:
        grown = size + (1 if kept else 0) + len(name)
        left_out = len(names) - len(kept) - 1
        marker = len(f":+{left_out}") if left_out else 0
        if grown + marker > MAX_TAG_VALUE:
            break
        kept.append(name)
        size = grown
    left_out = len(names) - len(kept)
    return ":".join(kept) + (":" if kept else "") + f"+{left_out}"


def session_tags(identity: Identity) -> list[dict[str, str]]:
    """The session tags: who the principal is and their groups."""
    principal = tag_text(identity.email or identity.subject)[:MAX_TAG_VALUE]
    return [
        {"Key": PRINCIPAL_TAG, "Value": principal},
        {"Key": GROUPS_TAG, "Value": groups_tag(identity.groups)},
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
    """

    def __init__(
        self,
        sts: Callable[[], Any],
        *,
        clock: Callable[[], float] = time.time,
        duration_seconds: int = SESSION_DURATION_SECONDS,
        renew_before_seconds: float = RENEW_BEFORE_EXPIRY_SECONDS,
        max_sessions: int = MAX_CACHED_SESSIONS,
    ) -> None:
        self._sts = sts
        self._clock = clock
        self._duration = duration_seconds
        self._renew_before = renew_before_seconds
        self._max_sessions = max_sessions
        self._sessions: OrderedDict[tuple[str, ...], RoleSession] = OrderedDict()
        self._lock = threading.Lock()

    def session_for(self, role_arn: str, identity: Identity, request_id: str) -> RoleSession:
        """A live session of ``role_arn`` for ``identity``, assuming the role if needed.

        Raises
        ------
        RoleUnavailable
            STS could not be reached, was throttled or timed out (503).
        RoleRefused
            STS refused the AssumeRole call (502).
        """
        source_identity = source_identity_of(identity)
        tags = session_tags(identity)
        # Groups are in the key: a principal whose groups changed gets a session
        # tagged with the new ones, not the old one until it expires.
        key = (role_arn, identity.issuer, identity.subject, source_identity, tags[1]["Value"])
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at - self._renew_before > self._clock():
                self._sessions.move_to_end(key)
                return session
        session = self._assume(role_arn, source_identity, tags, session_name_for(request_id))
        with self._lock:
            self._sessions[key] = session
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        return session

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
