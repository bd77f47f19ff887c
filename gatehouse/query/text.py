"""Text from the trail made safe to store and to show.

Audit events carry client text (User-Agents, paths, emails). A lone
surrogate (the emitter escapes what it cannot encode as ``\\udc80``) is
valid JSON but not UTF-8: DuckDB refuses it and writing it to a UTF-8 file
raises. Control characters and bidi overrides in a terminal can rewrite
what the reader sees (ESC sequences, OSC-8 links, ``\\r``, U+202E).
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls, DEL, C1 controls, and the bidi embedding/override/isolate controls.
_UNSAFE_FOR_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a (lone) surrogate code point, which UTF-8 cannot encode."""
    return _SURROGATE.search(text) is not None


def replace_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD."""
    return _SURROGATE.sub(REPLACEMENT, text)


def clean_surrogates(value: Any) -> Any:
    """``value`` (decoded JSON) with lone surrogates replaced in every string and key."""
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, dict):
        return {replace_surrogates(str(k)): clean_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_surrogates(item) for item in value]
    return value


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` for a terminal: control and bidi characters shown as ``\\xNN``/``\\uNNNN``.

    Lone surrogates become U+FFFD (a terminal's encoder would refuse them).
    """
    return replace_surrogates(_UNSAFE_FOR_TERMINAL.sub(_escape, text))
