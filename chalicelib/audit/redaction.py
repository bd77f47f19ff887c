"""Query strings for the record: secret-looking values replaced.

Secrets never enter an audit event. Query string values whose names match
the redaction rule, or that look like credentials themselves, are replaced
with :data:`REDACTED` before the query is recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote

from chalicelib.config import DEFAULT_QUERY_VALUE_REDACTION

REDACTED = "REDACTED"

# The default of ``Settings.audit_query_value_redaction`` (re.compile caches: one object).
QUERY_VALUE_REDACTION = re.compile(DEFAULT_QUERY_VALUE_REDACTION)


def redact_query(
    pairs: Iterable[tuple[str, str]],
    secret_names: re.Pattern[str],
    secret_values: re.Pattern[str] | None = QUERY_VALUE_REDACTION,
) -> str | None:
    """The query string for the record, with secret-looking values replaced.

    Parameters
    ----------
    pairs:
        The query's ``(name, value)`` pairs, decoded, in order.
    secret_names:
        Parameter names whose values are replaced, whatever they look like.
    secret_values:
        Text that looks like a credential, searched for in each decoded value
        and name: found in a value, the value is replaced; found in a name,
        both are (``?<token>`` arrives as a name with an empty value). None:
        names decide alone.

    Returns
    -------
    str or None
        ``name=value`` pairs joined with ``&``, each percent-encoded, a
        replaced one as ``REDACTED``; None for no pairs.
    """
    looks_secret = secret_values.search if secret_values is not None else _never
    parts = []
    for name, value in pairs:
        if looks_secret(name):
            parts.append(f"{REDACTED}={REDACTED}")
        elif (
            secret_names.search(name) or looks_secret(value) or _carries_secret(value, secret_names)
        ):
            parts.append(f"{quote(name, safe='')}={REDACTED}")
        else:
            parts.append(f"{quote(name, safe='')}={quote(value, safe='')}")
    return "&".join(parts) if parts else None


_USERINFO_PASSWORD = re.compile(r"://[^/@\s:]*:[^/@\s]*@")


def _carries_secret(value: str, secret_names: re.Pattern[str]) -> bool:
    """A URL with a password (``https://bob:pw@host``), or a query nested in the value
    (``next=/cb?password=...``) with a parameter the name rule redacts.

    Both tests start with a substring check, so an ordinary value costs nothing.
    """
    if "@" in value and "://" in value and _USERINFO_PASSWORD.search(value):
        return True
    if "=" not in value:
        return False
    # The query and the fragment (where OAuth's implicit flow puts tokens) both count.
    nested = re.split(r"[?#]", value)
    return any(
        secret_names.search(name)
        for part in nested
        for name, _ in parse_qsl(part, keep_blank_values=True, max_num_fields=100)
    )


def _never(text: str) -> None:
    return None
