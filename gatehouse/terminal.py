"""Client text made safe to print: every human-readable CLI output goes through :func:`visible`.

Paths, User-Agents, emails, grant scopes and justifications come from
clients. Written raw to a terminal, ESC sequences rewrite the screen (or
plant OSC-8 links), ``\\r`` overwrites the line, bidi overrides reorder it
and zero-width characters hide in it: a ``/**`` glob can vanish from the
line an approver reads. :func:`visible` shows each such character as an
escape instead. JSON output needs none of this: ``json.dumps`` (with its
default ``ensure_ascii``) already writes every non-ASCII and control
character as ``\\uNNNN``.
"""

from __future__ import annotations

from chalicelib.readable import is_unreadable, unreadable_character


def escape_character(char: str) -> str:
    """``"\\x1b"``, ``"\\u202e"`` or ``"\\U000e0041"``: one character as an inert escape."""
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` for a terminal: every character that could mislead shown as an escape.

    Control (C0, DEL, C1), format (bidi embeddings, overrides and isolates,
    zero-width characters, U+FEFF, tag characters), line and paragraph
    separator characters, lone surrogates, and private-use or unassigned code
    points (:mod:`chalicelib.readable`, the test the grant API refuses them
    by) become ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``. Everything else,
    other scripts and spaces included, is left as it is.
    """
    if unreadable_character(text) is None:
        return text
    return "".join(escape_character(char) if is_unreadable(char) else char for char in text)
