"""Text from the trail made safe to store and to show.

Audit events carry client text (User-Agents, paths, emails). A lone
surrogate (the emitter escapes what it cannot encode as ``\\udc80``) is
valid JSON but not UTF-8: DuckDB refuses it and writing it to a UTF-8 file
raises. Control characters and bidi overrides in a terminal can rewrite
what the reader sees (ESC sequences, OSC-8 links, ``\\r``, U+202E):
:func:`visible` lives in :mod:`gatehouse.terminal`, shared by every command,
and is importable from here as before.
"""

from __future__ import annotations

import re
from typing import Any

from gatehouse.terminal import visible as visible  # re-exported for the query commands

REPLACEMENT = "\ufffd"

_SURROGATE = re.compile("[\ud800-\udfff]")
# CSI (ESC [ ... final byte) and OSC (ESC ] ... BEL or ESC \\) sequences, then any lone ESC.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, underlines, links).

    Library messages (sqlglot's parse errors) underline with them; the CLI
    prints its own words, plain, whether or not the reader is a terminal.
    """
    return _ANSI.sub("", text)


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
