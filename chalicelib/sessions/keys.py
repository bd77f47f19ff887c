"""The cookie-sealing keys, kept in AWS Secrets Manager.

The secret (``gatehouse/<stage>/session-keys`` by convention) holds JSON::

    {"keys": [{"id": "k20261208T001500", "secret": "<base64 of 32 bytes>",
               "created": 1796688000}, ...]}

newest first: the first key seals, every key opens. :func:`rotate_session_keys`
(``gatehouse session rotate-key``) puts a new key first and keeps the newest
few, so cookies sealed before a rotation stay readable until they age out.
Each container reads the secret once, then again every ``refresh_seconds``,
so a rotation reaches every container within that time. Until it has, a
container may be shown a cookie sealed by a key it does not hold yet:
:meth:`SessionKeySource.open` then re-reads the secret at once (at most every
few seconds) rather than reject the cookie.

The secret's value is never logged nor quoted in an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from chalicelib.observability import get_logger
from chalicelib.sessions.cookies import (
    KEY_BYTES,
    MAX_COOKIE_BYTES,
    Keyring,
    SessionKey,
    sealed_key_id,
)
from chalicelib.sessions.errors import SessionsUnavailable

logger = get_logger(__name__)

# A failed re-read keeps the last good ring this long, then fails closed.
MAX_STALE_SECONDS: Final = 3600.0
# After a failed read, the next attempt waits this long (no AWS call per request).
_RETRY_SECONDS: Final = 10.0
# The secret is small; anything much larger is not ours.
_MAX_SECRET_CHARS: Final = 65536


class SessionKeySource:
    """The session keys of a stage, read from Secrets Manager and re-read periodically.

    Parameters
    ----------
    client:
        Returns a boto3 ``secretsmanager`` client (called on the first read).
    secret_id:
        The secret's name or ARN.
    refresh_seconds:
        How often the secret is read again (a rotation reaches every
        container within this time).
    clock:
        Epoch seconds.
    """

    def __init__(
        self,
        client: Callable[[], Any],
        secret_id: str,
        *,
        refresh_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._secret_id = secret_id
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._ring: Keyring | None = None
        self._loaded_at = 0.0
        self._next_read = 0.0
        self._failure: str | None = None
        self._early_read_after = 0.0

    def keyring(self) -> Keyring:
        """The keys to seal and open with.

        Raises
        ------
        SessionsUnavailable
            When the secret was never read, cannot be used, or could not be
            read again for longer than :data:`MAX_STALE_SECONDS`.
        """
        now = self._clock()
        ring = self._ring
        if (
            ring is not None
            and now < self._next_read
            and now - self._loaded_at <= MAX_STALE_SECONDS
        ):
            return ring
        with self._lock:
            if now >= self._next_read:
                self._read(now)
            if self._ring is not None and now - self._loaded_at <= MAX_STALE_SECONDS:
                return self._ring
            raise SessionsUnavailable(
                f"the session keys cannot be read: {self._failure or 'not read yet'}"
            )

    def open(
        self, value: str, *, purpose: str, max_bytes: int = MAX_COOKIE_BYTES
    ) -> dict[str, Any]:
        """:meth:`Keyring.open` with the current ring; re-read first if the key is new to it.

        Raises
        ------
        SessionRejected
            ``SESSION_INVALID`` as :meth:`Keyring.open` says.
        SessionsUnavailable
            As :meth:`keyring` says.
        """
        ring = self.keyring()
        key_id = sealed_key_id(value)
        if key_id is not None and key_id not in ring.key_ids:
            now = self._clock()
            with self._lock:
                # A rotation this container has not seen yet; not on every bad cookie.
                if now >= self._early_read_after:
                    self._early_read_after = now + _RETRY_SECONDS
                    self._read(now)
            ring = self.keyring()
        return ring.open(value, purpose=purpose, max_bytes=max_bytes)

    def _read(self, now: float) -> None:
        try:
            keys, _ = read_keys(self._client(), self._secret_id)
        except SessionsUnavailable as exc:
            self._failure = str(exc)
            self._next_read = now + min(_RETRY_SECONDS, self._refresh_seconds)
            if self._ring is not None:
                logger.warning("session keys not re-read, the last ones kept: %s", exc)
            return
        self._ring = Keyring(keys)
        self._loaded_at = now
        self._next_read = now + min(self._refresh_seconds, MAX_STALE_SECONDS)
        self._failure = None


def read_keys(client: Any, secret_id: str) -> tuple[list[SessionKey], list[dict[str, Any]]]:
    """The keys in the secret (newest first), and the secret's entries as stored.

    Raises
    ------
    SessionsUnavailable
        When the secret is missing, cannot be read, or does not hold usable
        keys (the message never quotes the secret).
    """
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except Exception as exc:  # botocore raises many unrelated types; all mean unavailable
        raise SessionsUnavailable(_aws_problem(exc, secret_id)) from exc
    text = response.get("SecretString")
    if not isinstance(text, str):
        raise SessionsUnavailable(f"secret {secret_id} holds no text")
    return _parse(text, secret_id)


def _parse(text: str, secret_id: str) -> tuple[list[SessionKey], list[dict[str, Any]]]:
    unusable = f"secret {secret_id} is not a session key set"
    if len(text) > _MAX_SECRET_CHARS:
        raise SessionsUnavailable(f"{unusable} (too large)")
    try:
        document = json.loads(text)
    except ValueError:
        raise SessionsUnavailable(f"{unusable} (not JSON)") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SessionsUnavailable(f'{unusable} (no "keys" list)')
    keys = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SessionsUnavailable(f"{unusable} (key {index} is not an object)")
        try:
            secret = base64.b64decode(str(entry.get("secret", "")), validate=True)
            keys.append(SessionKey(key_id=str(entry.get("id", "")), secret=secret))
        except (ValueError, binascii.Error):
            # Neither the value nor the decoder's message: it may quote the secret.
            raise SessionsUnavailable(
                f"{unusable} (key {index}: an id of A-Za-z0-9._- and a base64 "
                f"secret of {KEY_BYTES} bytes are needed)"
            ) from None
    try:
        Keyring(keys)
    except ValueError as exc:
        raise SessionsUnavailable(f"{unusable} ({exc})") from None
    return keys, entries


def rotate_session_keys(
    client: Any, secret_id: str, *, keep: int = 3, now: float | None = None
) -> SessionKey:
    """Put a new key first in the secret (creating it when missing); keep the ``keep`` newest.

    Cookies sealed by the keys kept stay readable; those sealed by a key
    dropped are ``SESSION_INVALID`` once containers re-read the secret.

    Parameters
    ----------
    client:
        A boto3 ``secretsmanager`` client.
    secret_id:
        The secret's name (or ARN, when it exists).
    keep:
        How many keys the secret holds afterwards, the new one included (at least 1).
    now:
        Epoch seconds (default: now); names the key (``k<UTC time>``).

    Returns
    -------
    SessionKey
        The new key (seals from the next re-read of each container on).

    Raises
    ------
    ValueError
        When ``keep`` is less than 1.
    SessionsUnavailable
        When the secret cannot be read or written, or holds something else
        than a key set (it is not overwritten).
    """
    if keep < 1:
        raise ValueError("keep at least one key")
    moment = time.time() if now is None else now
    existing = _existing_entries(client, secret_id)
    taken = {str(entry.get("id")) for entry in existing or ()}
    key_id = "k" + datetime.fromtimestamp(moment, UTC).strftime("%Y%m%dT%H%M%S")
    base, suffix = key_id, 1
    while key_id in taken:
        suffix += 1
        key_id = f"{base}-{suffix}"
    key = SessionKey(key_id=key_id, secret=os.urandom(KEY_BYTES))
    entry = {
        "id": key.key_id,
        "secret": base64.b64encode(key.secret).decode("ascii"),
        "created": int(moment),
    }
    text = json.dumps({"keys": [entry, *(existing or [])][:keep]})
    try:
        if existing is None:
            _create(client, secret_id, text)
        else:
            client.put_secret_value(SecretId=secret_id, SecretString=text)
    except SessionsUnavailable:
        raise
    except Exception as exc:  # botocore's errors
        raise SessionsUnavailable(_aws_problem(exc, secret_id)) from exc
    return key


def _existing_entries(client: Any, secret_id: str) -> list[dict[str, Any]] | None:
    """The secret's entries, or None when there is no secret (or no value) yet."""
    try:
        _, entries = read_keys(client, secret_id)
    except SessionsUnavailable as exc:
        if _error_code(exc.__cause__) == "ResourceNotFoundException":
            return None
        raise
    return entries


def _create(client: Any, secret_id: str, text: str) -> None:
    try:
        client.create_secret(
            Name=secret_id,
            SecretString=text,
            Description="Gatehouse browser session cookie keys (gatehouse session rotate-key)",
        )
    except Exception as exc:
        # The secret exists without a current value: give it one.
        if _error_code(exc) != "ResourceExistsException":
            raise
        client.put_secret_value(SecretId=secret_id, SecretString=text)


def _error_code(exc: BaseException | None) -> str | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def _aws_problem(exc: Exception, secret_id: str) -> str:
    code = _error_code(exc)
    if code == "ResourceNotFoundException":
        return f"secret {secret_id} does not exist (`gatehouse session rotate-key` creates it)"
    if code in ("AccessDeniedException", "AccessDenied"):
        return f"not allowed to use secret {secret_id}: {exc}"
    return f"secret {secret_id} cannot be used: {exc}"
