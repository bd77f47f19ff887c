"""The one character test (``chalicelib.readable``), the CLI's escaping of it, and mailboxes."""

from __future__ import annotations

import pytest

from chalicelib.grants.mailboxes import mailbox
from chalicelib.readable import describe_character, is_unreadable, unreadable_character
from gatehouse.terminal import visible

UNREADABLE = [
    pytest.param("\x00", id="NUL"),
    pytest.param("\x07", id="BEL"),
    pytest.param("\t", id="tab"),
    pytest.param("\n", id="LF"),
    pytest.param("\r", id="CR"),
    pytest.param("\x1b", id="ESC"),
    pytest.param("\x7f", id="DEL"),
    pytest.param("\x85", id="NEL"),
    pytest.param("\x9b", id="C1 CSI"),
    pytest.param("\u00ad", id="soft hyphen (Cf)"),
    pytest.param("\u061c", id="Arabic letter mark"),
    pytest.param("\u200b", id="ZWSP"),
    pytest.param("\u200c", id="ZWNJ"),
    pytest.param("\u200d", id="ZWJ"),
    pytest.param("\u200e", id="LRM"),
    pytest.param("\u200f", id="RLM"),
    pytest.param("\u202a", id="LRE"),
    pytest.param("\u202b", id="RLE"),
    pytest.param("\u202c", id="PDF"),
    pytest.param("\u202d", id="LRO"),
    pytest.param("\u202e", id="RLO"),
    pytest.param("\u2066", id="LRI"),
    pytest.param("\u2067", id="RLI"),
    pytest.param("\u2068", id="FSI"),
    pytest.param("\u2069", id="PDI"),
    pytest.param("\u2060", id="word joiner"),
    pytest.param("\ufeff", id="BOM"),
    pytest.param("\ufff9", id="interlinear annotation"),
    pytest.param("\U000e0041", id="tag latin A"),
    pytest.param("\u2028", id="line separator"),
    pytest.param("\u2029", id="paragraph separator"),
    pytest.param("\ud800", id="high surrogate"),
    pytest.param("\udc80", id="low surrogate"),
    pytest.param("\ue000", id="private use"),
    pytest.param("\U000fffff", id="unassigned"),
]
SPACES = [
    pytest.param(" ", id="space"),
    pytest.param("\u00a0", id="no-break space"),
    pytest.param("\u2007", id="figure space"),
    pytest.param("\u3000", id="ideographic space"),
]
READABLE = [
    pytest.param("a", id="ASCII letter"),
    pytest.param("/", id="slash"),
    pytest.param("*", id="star"),
    pytest.param("\\", id="backslash"),
    pytest.param("\u00e9", id="e acute"),
    pytest.param("\u65e5", id="CJK"),
    pytest.param("\u05d0", id="Hebrew letter (RTL script, no control)"),
    pytest.param("\u2014", id="em dash"),
    pytest.param("\u2713", id="check mark"),
    pytest.param("\U0001f600", id="emoji"),
]


@pytest.mark.parametrize("char", UNREADABLE)
def test_control_format_separator_and_surrogate_characters_are_unreadable(char: str) -> None:
    assert is_unreadable(char)
    assert is_unreadable(char, allow_spaces=False)
    assert unreadable_character(f"/api/{char}/**") == char


@pytest.mark.parametrize("char", SPACES)
def test_spaces_are_unreadable_only_where_none_are_allowed(char: str) -> None:
    assert not is_unreadable(char)
    assert is_unreadable(char, allow_spaces=False)
    assert unreadable_character(f"a{char}b") is None
    assert unreadable_character(f"a{char}b", allow_spaces=False) == char


@pytest.mark.parametrize("char", READABLE)
def test_letters_symbols_and_other_scripts_are_readable(char: str) -> None:
    assert not is_unreadable(char, allow_spaces=False)
    assert unreadable_character(f"/api/{char}/**", allow_spaces=False) is None


def test_the_first_unreadable_character_is_the_one_named() -> None:
    assert unreadable_character("ok \u202e then \x1b") == "\u202e"
    assert unreadable_character("") is None


@pytest.mark.parametrize(
    ("char", "described"),
    [
        pytest.param("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE", id="named"),
        pytest.param("\x1b", "U+001B", id="controls have no name"),
        pytest.param("\ud800", "U+D800", id="surrogate"),
        pytest.param("\U000e0041", "U+E0041 TAG LATIN CAPITAL LETTER A", id="astral"),
    ],
)
def test_a_character_is_described_without_being_shown(char: str, described: str) -> None:
    assert describe_character(char) == described


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("/api/\x1b[2K**", "/api/\\x1b[2K**", id="erase line"),
        pytest.param("ok\rFAKE", "ok\\x0dFAKE", id="carriage return"),
        pytest.param("a\nb", "a\\x0ab", id="newline"),
        pytest.param("del\x7f c1\x9b", "del\\x7f c1\\x9b", id="DEL and C1"),
        pytest.param("/api/x\u202e**/", "/api/x\\u202e**/", id="RLO"),
        pytest.param("\u2066x\u2069", "\\u2066x\\u2069", id="isolates"),
        pytest.param("a\u200bb\ufeff", "a\\u200bb\\ufeff", id="zero width and BOM"),
        pytest.param("a\u2028b\u2029c", "a\\u2028b\\u2029c", id="separators"),
        pytest.param("lone\udc80", "lone\\udc80", id="lone surrogate"),
        pytest.param("x\U000e0041", "x\\U000e0041", id="tag character"),
        pytest.param("Kunde M\u00fcnchen \u65e5\u672c \u2713", None, id="other scripts kept"),
        pytest.param("two  spaces\u00a0nbsp\ttab", "two  spaces\u00a0nbsp\\x09tab", id="spaces"),
        pytest.param("C:\\x1b is text", None, id="a backslash is text"),
        pytest.param("", None, id="empty"),
    ],
)
def test_visible_escapes_exactly_the_unreadable_characters(text: str, shown: str | None) -> None:
    escaped = visible(text)

    assert escaped == (text if shown is None else shown)
    assert unreadable_character(escaped) is None
    assert visible(escaped) == escaped


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        pytest.param("erin@example.com", "erin@example.com", True, id="identical"),
        pytest.param("erin@example.com", "ERIN@Example.COM", True, id="case"),
        pytest.param("erin+x@example.com", "erin@example.com", True, id="tag"),
        pytest.param("erin+x@example.com", "erin+y@example.com", True, id="two tags"),
        pytest.param("erin+a+b@example.com", "erin@example.com", True, id="first plus counts"),
        pytest.param(" erin@example.com ", "erin@example.com", True, id="surrounding blanks"),
        pytest.param("erin@example.com", "erin@example.org", False, id="other domain"),
        pytest.param("erin@example.com", "erinx@example.com", False, id="other local part"),
        pytest.param("erin@example.com", "x+erin@example.com", False, id="tag is not the box"),
        pytest.param("erin@example.com", "erin@example.com.", True, id="root dot"),
        pytest.param("erin@b\u00fccher.example", "erin@xn--bcher-kva.example", True, id="IDN"),
        pytest.param("\u00e9rin@example.com", "e\u0301rin@example.com", True, id="NFC"),
        pytest.param("erin@example.com", "erin@example.com.evil", False, id="longer domain"),
        pytest.param("e.rin@gmail.com", "erin@googlemail.com", True, id="gmail dots and alias"),
        pytest.param("e.rin@example.com", "erin@example.com", False, id="dots count elsewhere"),
    ],
)
def test_mailboxes(one: str, other: str, same: bool) -> None:
    assert mailbox(one) is not None
    assert (mailbox(one) == mailbox(other)) is same


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("not-an-address", id="no @"),
        pytest.param('"erin"@example.com', id="quoted local part"),
        pytest.param("erin@[127.0.0.1]", id="address literal"),
        pytest.param("erin%example.com@example.com", id="percent routing"),
        pytest.param("erin@a+b.example", id="plus in the domain"),
        pytest.param("erin@x@example.com", id="two @"),
        pytest.param("@example.com", id="no local part"),
    ],
)
def test_address_that_cannot_be_compared_has_no_mailbox(address: str) -> None:
    assert mailbox(address) is None
