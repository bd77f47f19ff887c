"""The one test of whether client text reads as what it is.

Text a client sends ends up in front of people: grant scopes and
justifications in front of the approver who decides on them, break-glass
justifications and paths in every view of the trail. Some characters make a
terminal or a page show something other than the text: control characters
(ESC sequences rewrite the screen, ``\\r`` overwrites the line), format
characters (bidi overrides and isolates reorder it, zero-width characters and
U+FEFF hide in it, tag characters smuggle text), line and paragraph
separators (split it), and lone surrogates (no encoder writes them). The
server refuses such text where a person must read it, and the CLI shows any
that got stored anyway as escapes; both ask this module.
"""

from __future__ import annotations

import unicodedata

# Cc control, Cf format, Cs (lone) surrogate, Zl/Zp line and paragraph
# separators. Private-use (Co) and unassigned (Cn) code points have no meaning
# a reader can rely on (a later Unicode may make one a format character), and
# str.isprintable(), which this replaces, refused them too.
UNREADABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def is_unreadable(char: str, *, allow_spaces: bool = True) -> bool:
    """Whether the character ``char`` must never reach a reader as it is.

    Parameters
    ----------
    char:
        One character.
    allow_spaces:
        False for identifiers and path globs, where any whitespace (U+0020,
        U+00A0, U+3000...) is unreadable too: it hides where one ends.

    Raises
    ------
    TypeError
        When ``char`` is not exactly one character.
    """
    category = unicodedata.category(char)
    if category in UNREADABLE_CATEGORIES:
        return True
    return not allow_spaces and (category == "Zs" or char.isspace())


def unreadable_character(text: str, *, allow_spaces: bool = True) -> str | None:
    """The first character of ``text`` for which :func:`is_unreadable` holds, or None."""
    if allow_spaces and text.isprintable():
        # isprintable() is False for every unreadable character (and for a few
        # more): the common case is answered without a loop in Python.
        return None
    return next((char for char in text if is_unreadable(char, allow_spaces=allow_spaces)), None)


def describe_character(char: str) -> str:
    """``"U+202E RIGHT-TO-LEFT OVERRIDE"``: a character named without being shown."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


# Client-controlled text is capped so that no request can inflate a record
# that will be kept for years under Object Lock.
MAX_USER_AGENT = 512
MAX_HOST = 256
MAX_PATH = 4096
MAX_QUERY = 4096
MAX_JUSTIFICATION = 500
TRUNCATED = "...[truncated]"


def capped(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters, marked when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED)] + TRUNCATED
