"""Request path normalisation and path globs."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from chalicelib.authorize.iam import glob_to_arn_paths
from chalicelib.policy import AmbiguousPath, RequestTarget, normalize_path, parse_target
from chalicelib.policy.globs import InvalidGlob, compile_glob
from chalicelib.policy.paths import fold_case

# --- normalize_path ----------------------------------------------------------------------

AMBIGUOUS_PATHS = [
    pytest.param("/admin%2Fusers", id="encoded slash %2F"),
    pytest.param("/admin%2fusers", id="encoded slash %2f"),
    pytest.param("/admin%5Cusers", id="encoded backslash %5C"),
    pytest.param("/admin%5cusers", id="encoded backslash %5c"),
    pytest.param("/admin\\users", id="literal backslash"),
    pytest.param("/public/../admin", id="dot-dot segment"),
    pytest.param("/public/..", id="trailing dot-dot segment"),
    pytest.param("/public/./admin", id="dot segment"),
    pytest.param("/.", id="root dot segment"),
    pytest.param("/public/%2e%2e/admin", id="encoded dot-dot lower"),
    pytest.param("/public/%2E%2E/admin", id="encoded dot-dot upper"),
    pytest.param("/public/.%2e/admin", id="half-encoded dot-dot"),
    pytest.param("/public/%2e/admin", id="encoded dot"),
    pytest.param("//admin", id="leading empty segment"),
    pytest.param("/public//admin", id="empty segment in the middle"),
    pytest.param("/admin\x00.txt", id="literal NUL"),
    pytest.param("/admin%00.txt", id="encoded NUL"),
    pytest.param("/admin\x1f", id="literal control char"),
    pytest.param("/admin%0A", id="encoded newline"),
    pytest.param("/admin%0d%0aX-Injected: 1", id="encoded CRLF"),
    pytest.param("/admin%7F", id="encoded DEL"),
    pytest.param("/admin\t", id="literal tab"),
    pytest.param("/admin%zz", id="invalid percent-encoding %zz"),
    pytest.param("/admin%4", id="truncated percent-encoding %4"),
    pytest.param("/admin%", id="lone percent"),
    pytest.param("/admin%ff", id="non-UTF-8 %ff"),
    pytest.param("/admin%C3", id="truncated UTF-8 sequence"),
    pytest.param("/admin%c0%af", id="overlong UTF-8 slash"),
    pytest.param("admin", id="no leading slash"),
    pytest.param("", id="empty"),
    pytest.param("%2Fadmin", id="encoded leading slash"),
    pytest.param("/public%252F..%252Fadmin", id="double-encoded separator %252F"),
    pytest.param("/%25", id="encoded percent"),
    pytest.param("/admin;x/secret", id="path parameter (servlet containers strip it)"),
    pytest.param("/api/export.", id="trailing dot (IIS strips it)"),
    pytest.param("/api/export%20", id="trailing encoded space (IIS strips it)"),
    pytest.param("/files/...", id="three dots end with a dot"),
    pytest.param("/" + "a" * 4096, id="longer than 4096 characters"),
    pytest.param("/a" * 129, id="more than 128 segments"),
    pytest.param("/admin%3bx/secret", id="encoded path parameter"),
    pytest.param("/api/billing#x", id="raw fragment mark"),
    pytest.param("/admin#", id="raw fragment mark at the end"),
    pytest.param("/files/x.xlsx#.pdf", id="fragment mark hiding a suffix"),
    pytest.param("/api/billing%23x", id="encoded fragment mark"),
    pytest.param("/api/billing?x", id="raw question mark"),
    pytest.param("/api/billing%3Fx", id="encoded question mark"),
    pytest.param("/api/billing%3fx", id="encoded question mark lower"),
    pytest.param("/admin%E2%80%AE", id="bidi override"),
    pytest.param("/ad%E2%80%8Bmin", id="zero-width space"),
    pytest.param("/admin%EF%BB%BF", id="byte order mark"),
    pytest.param("/admin%C2%A0x", id="no-break space"),
    pytest.param("/admin%E2%80%A8x", id="line separator"),
    pytest.param("/admin%EE%80%80", id="private use"),
    pytest.param("/admin%C2%85", id="C1 next line"),
]


@pytest.mark.parametrize("raw_path", AMBIGUOUS_PATHS)
def test_ambiguous_path_is_refused(raw_path: str) -> None:
    with pytest.raises(AmbiguousPath):
        normalize_path(raw_path)


def test_ambiguous_path_is_a_value_error_naming_the_problem() -> None:
    with pytest.raises(ValueError, match="encoded path separator"):
        normalize_path("/a%2Fb")


ACCEPTED_PATHS = [
    pytest.param("/", "/", id="root"),
    pytest.param("/api/projects/42", "/api/projects/42", id="plain"),
    pytest.param("/api/projects/", "/api/projects/", id="trailing slash kept"),
    pytest.param("/caf%C3%A9", "/café", id="unicode via percent-encoding"),
    pytest.param("/café", "/café", id="raw unicode"),
    pytest.param("/a%20b", "/a b", id="encoded space"),
    pytest.param("/%41pi", "/Api", id="encoded unreserved letter"),
    pytest.param("/files/.hidden", "/files/.hidden", id="dot-prefixed name"),
    pytest.param("/files/a..b", "/files/a..b", id="dots inside a name"),
    pytest.param("/a+b/(c)", "/a+b/(c)", id="regex metacharacters"),
]


@pytest.mark.parametrize(("raw_path", "normalised"), ACCEPTED_PATHS)
def test_unambiguous_path_is_decoded(raw_path: str, normalised: str) -> None:
    assert normalize_path(raw_path) == normalised


SAFE_SEGMENT = st.text(
    alphabet=st.sampled_from("abcxyzABC0189-_~.!$&'()*+,=:@"), min_size=1, max_size=8
).filter(lambda segment: not segment.endswith("."))
SAFE_PATH = st.builds(
    lambda segments, trailing: "/" + "/".join(segments) + ("/" if trailing and segments else ""),
    st.lists(SAFE_SEGMENT, max_size=5),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(SAFE_PATH)
def test_path_of_safe_segments_normalises_to_itself(path: str) -> None:
    assert normalize_path(path) == path


# Any text segment, percent-encoded as a client would: exercises the decoder broadly.
PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp"))
ENCODED_PATH = st.lists(st.text(PRINTABLE, max_size=6), min_size=1, max_size=4).map(
    lambda segments: "/" + "/".join(quote(segment, safe="") for segment in segments)
)


@settings(max_examples=200, deadline=None)
@given(ENCODED_PATH)
@example("/public%252F..%252Fadmin")  # double-encoded: decodes to "/public%2F..%2Fadmin"
def test_normalisation_is_idempotent_on_its_output(raw_path: str) -> None:
    try:
        once = normalize_path(raw_path)
    except AmbiguousPath:
        assume(False)
        return
    assert normalize_path(once) == once


# --- compile_glob ------------------------------------------------------------------------

GLOB_CASES = [
    pytest.param("/api/*", "/api/x", True, id="star matches one segment"),
    pytest.param("/api/*", "/api/x/y", False, id="star does not cross slash"),
    pytest.param("/api/*", "/api", False, id="star needs the separator"),
    pytest.param("/api/*/items", "/api/x/items", True, id="star in the middle"),
    pytest.param("/api/*/items", "/api/x/y/items", False, id="star in the middle one segment"),
    pytest.param("/api/**/items", "/api/items", True, id="double star middle zero segments"),
    pytest.param("/api/**/items", "/api/x/items", True, id="double star middle one segment"),
    pytest.param("/api/**/items", "/api/x/y/z/items", True, id="double star middle many"),
    pytest.param("/api/**/items", "/api/x/itemsx", False, id="double star middle literal tail"),
    pytest.param("/api/**", "/api", True, id="trailing double star matches parent"),
    pytest.param("/api/**", "/api/", True, id="trailing double star matches parent slash"),
    pytest.param("/api/**", "/api/x/y", True, id="trailing double star matches below"),
    pytest.param("/api/**", "/apix", False, id="trailing double star segment boundary"),
    pytest.param("/api/**", "/ap", False, id="trailing double star shorter"),
    pytest.param("/**", "/", True, id="root double star matches root"),
    pytest.param("/**", "/anything/at/all", True, id="root double star matches all"),
    pytest.param("/files/*.pdf", "/files/a.pdf", True, id="star extension"),
    pytest.param("/files/*.pdf", "/files/.pdf", True, id="star extension empty stem"),
    pytest.param("/files/*.pdf", "/files/a.pdfx", False, id="star extension anchored"),
    pytest.param("/files/*.pdf", "/files/a/b.pdf", False, id="star extension one segment"),
    pytest.param("/files/*.pdf", "/files/aXpdf", False, id="dot is literal"),
    pytest.param("/a+b/(c)", "/a+b/(c)", True, id="metacharacters literal match"),
    pytest.param("/a+b/(c)", "/aab/c", False, id="plus and parens are not regex"),
    pytest.param("/a+b/(c)", "/aaab/(c)", False, id="plus is not repetition"),
    pytest.param("/v1.0/[x]", "/v1.0/[x]", True, id="brackets literal"),
    pytest.param("/v1.0/[x]", "/v1x0/x", False, id="brackets not a class"),
    pytest.param("/a|b", "/a", False, id="pipe not alternation"),
    pytest.param("/a$", "/a$", True, id="dollar literal"),
    pytest.param("/a?b", "/ab", False, id="question mark literal"),
    pytest.param("/", "/", True, id="root literal"),
    pytest.param("/", "/x", False, id="root literal only root"),
    pytest.param("/api", "/api/", True, id="literal matches its trailing slash too"),
    pytest.param("/api", "/api/x", False, id="literal does not match below it"),
    pytest.param("/API", "/api", False, id="case-sensitive"),
]


@pytest.mark.parametrize(("pattern", "path", "expected"), GLOB_CASES)
def test_glob_matches(pattern: str, path: str, expected: bool) -> None:
    assert compile_glob(pattern).matches(path) is expected


@pytest.mark.parametrize(
    "pattern",
    ["/a**b", "/api/**x", "/x**/y", "api/**", "", "*"],
    ids=["a**b", "trailing **x", "x** prefix", "no leading slash", "empty", "bare star"],
)
def test_invalid_glob_is_refused(pattern: str) -> None:
    with pytest.raises(InvalidGlob):
        compile_glob(pattern)


LITERAL_SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/*", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=6,
)
LITERAL_PATH = st.lists(LITERAL_SEGMENT, min_size=1, max_size=4).map(
    lambda segments: "/" + "/".join(segments)
)


@settings(max_examples=100, deadline=None)
@given(LITERAL_PATH, st.text(max_size=12))
def test_glob_without_wildcards_matches_exactly_its_own_text(pattern: str, other: str) -> None:
    glob = compile_glob(pattern)

    assert glob.matches(pattern)
    assert glob.matches(other) is (other == pattern)
    assert not glob.matches(pattern + "/x")
    assert not glob.matches(pattern + "x")


# --- glob_to_arn_paths -------------------------------------------------------------------

ARN_CASES = [
    pytest.param("/**", ("*",), True, id="everything"),
    pytest.param("/api/**", ("api", "api/*"), True, id="literal stem and double star"),
    pytest.param("/api/v1", ("api/v1", "api/v1/"), True, id="literal path"),
    pytest.param("/", ("",), True, id="root"),
    pytest.param("/api/*", ("api/*",), False, id="single star over-approximated"),
    pytest.param("/files/*.pdf", ("files/*",), False, id="extension over-approximated"),
    pytest.param("/api/*/items/**", ("api/*",), False, id="star stem"),
    pytest.param("/api/**/items", ("api/*",), False, id="double star middle"),
]


@pytest.mark.parametrize(("pattern", "arn_paths", "exact"), ARN_CASES)
def test_glob_to_arn_paths(pattern: str, arn_paths: tuple[str, ...], exact: bool) -> None:
    assert glob_to_arn_paths(pattern) == (arn_paths, exact)


@pytest.mark.parametrize(
    ("pattern", "has_regex"),
    [
        ("/api/**", True),
        ("/api/*/items", True),
        ("/files/*.pdf", True),
        ("/**/internal", False),
        ("/x/*a*b", False),
    ],
)
def test_only_globs_a_regex_could_backtrack_on_are_matched_segment_wise(
    pattern: str, has_regex: bool
) -> None:
    assert (compile_glob(pattern).regex is not None) is has_regex


# --- properties: normalize_path ----------------------------------------------------------

# Raw paths built from pieces an attacker would combine: dots and encoded dots,
# encoded and literal separators, percent signs, controls, and ordinary text.
HOSTILE_PIECES = st.sampled_from(
    [
        "a",
        "B",
        "é",
        "~",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "%25",
        "%",
        "%4",
        "%41",
        "%C3%A9",
        "%ff",
        "/",
        "\\",
        ";",
        " ",
        "%20",
        "\x00",
        "%00",
        "\n",
        "%0a",
    ]
)
HOSTILE_PATH = st.lists(HOSTILE_PIECES, max_size=10).map(lambda pieces: "/" + "".join(pieces))


def _is_normal(path: str) -> bool:
    """What a normalised path looks like, written independently of the normaliser."""
    segments = path.split("/")[1:]
    return (
        path.startswith("/")
        and "%" not in path
        and "\\" not in path
        and ";" not in path
        and "?" not in path
        and "#" not in path
        and not any(ord(char) < 0x20 or ord(char) == 0x7F for char in path)
        and all(segment not in (".", "..") for segment in segments)
        and all(not segment.endswith((".", " ")) for segment in segments)
        and all(segment for segment in segments[:-1])
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(HOSTILE_PATH, ENCODED_PATH, st.text(max_size=20)))
@example("/%2e%2e/admin")
@example("/a/.%2E/b")
def test_normalised_output_has_no_dot_segments_or_encoded_separators(raw_path: str) -> None:
    try:
        normalised = normalize_path(raw_path)
    except AmbiguousPath:
        return
    assert _is_normal(normalised), normalised
    assert normalize_path(normalised) == normalised  # a fixed point


@settings(max_examples=300, deadline=None)
@given(st.one_of(HOSTILE_PATH, ENCODED_PATH))
def test_every_spelling_of_a_dot_segment_is_refused(raw_path: str) -> None:
    decoded_segments = [
        segment.replace("%2e", ".").replace("%2E", ".") for segment in raw_path.split("/")[1:]
    ]
    if any(segment in (".", "..") for segment in decoded_segments):
        with pytest.raises(AmbiguousPath):
            normalize_path(raw_path)


@settings(max_examples=200, deadline=None)
@given(st.one_of(HOSTILE_PATH, ENCODED_PATH, SAFE_PATH))
def test_percent_encoding_a_normalised_path_does_not_change_it(raw_path: str) -> None:
    try:
        normalised = normalize_path(raw_path)
    except AmbiguousPath:
        return
    assert normalize_path(quote(normalised, safe="/")) == normalised


# --- properties: glob matching against a reference ---------------------------------------


def _segment_matches(glob: str, text: str) -> bool:
    """``*`` is any run of characters (within one segment); everything else is literal."""
    if not glob:
        return not text
    if glob[0] == "*":
        return any(_segment_matches(glob[1:], text[cut:]) for cut in range(len(text) + 1))
    return bool(text) and glob[0] == text[0] and _segment_matches(glob[1:], text[1:])


def _segments_match(globs: list[str], parts: list[str]) -> bool:
    """``**`` is any number (zero too) of whole segments."""
    if not globs:
        return not parts
    if globs[0] == "**":
        return any(_segments_match(globs[1:], parts[cut:]) for cut in range(len(parts) + 1))
    return (
        bool(parts)
        and _segment_matches(globs[0], parts[0])
        and _segments_match(globs[1:], parts[1:])
    )


def reference_match(pattern: str, path: str) -> bool:
    """The documented glob semantics, by brute force.

    The path matches as written, or (a trailing slash being routed like none)
    without its trailing slash.
    """
    globs, parts = pattern.split("/")[1:], path.split("/")[1:]
    if _segments_match(globs, parts):
        return True
    return len(parts) > 1 and parts[-1] == "" and _segments_match(globs, parts[:-1])


GLOB_SEGMENTS = st.sampled_from(["a", "b", "ab", "*", "a*", "*b", "*a*", "a*b*", "**", "x.y"])
GLOB_PATTERNS = st.lists(GLOB_SEGMENTS, min_size=1, max_size=4).map(lambda s: "/" + "/".join(s))
PATH_SEGMENTS = st.sampled_from(["a", "b", "ab", "ba", "aab", "x.y", "xy", "A", "aB"])
GLOB_PATHS = st.builds(
    lambda parts, trailing: "/" + "/".join(parts) + ("/" if trailing and parts else ""),
    st.lists(PATH_SEGMENTS, max_size=5),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(GLOB_PATTERNS, GLOB_PATHS)
@example("/a/*", "/a/")
@example("/**/a/*", "/a/")
@example("/**/*", "/")
def test_glob_matching_equals_the_reference(pattern: str, path: str) -> None:
    assert compile_glob(pattern).matches(path) is reference_match(pattern, path)


@settings(max_examples=500, deadline=None)
@given(GLOB_PATTERNS, GLOB_PATHS, st.booleans())
@example("/a/*", "/a/", False)
def test_a_leading_double_star_never_matches_less(
    pattern: str, path: str, ignore_case: bool
) -> None:
    # "/**" + pattern also matches everything pattern matches (zero extra segments).
    if compile_glob(pattern, ignore_case=ignore_case).matches(path):
        assert compile_glob("/**" + pattern, ignore_case=ignore_case).matches(path)


# --- properties: deny globs ignore case --------------------------------------------------

ASCII_CASE = st.sampled_from(["a", "b", "A", "B", "aB", "Ab", "x.Y"])
CASED_PATTERNS = st.lists(
    st.one_of(ASCII_CASE, st.sampled_from(["*", "**", "a*", "*B"])), min_size=1, max_size=4
).map(lambda s: "/" + "/".join(s))
CASED_PATHS = st.builds(
    lambda parts, trailing: "/" + "/".join(parts) + ("/" if trailing and parts else ""),
    st.lists(ASCII_CASE, max_size=5),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(CASED_PATTERNS, CASED_PATHS)
def test_case_insensitive_globs_match_like_the_lower_cased_glob(pattern: str, path: str) -> None:
    folded = compile_glob(pattern, ignore_case=True)
    lowered = compile_glob(pattern.lower())

    assert folded.matches(path) is lowered.matches(path.lower())
    assert folded.matches(path) is folded.matches(path.swapcase()) is folded.matches(path.upper())
    if path != path.lower() and "*" not in pattern:
        # Allow globs keep case: a literal pattern matches only its own spelling.
        assert compile_glob(pattern).matches(path) is (path.rstrip("/") == pattern)


@pytest.mark.parametrize(
    ("patterns", "path"),
    [
        pytest.param(("/admin/**", "/**/admin/**"), "/ADMIN/users", id="ascii upper case"),
        pytest.param(("/admin", "/**/admin"), "/ADM\u0130N", id="dotted capital I"),
        pytest.param(("/admin", "/**/admin"), "/adm\u0131n", id="dotless small i"),
        pytest.param(("/\u017fecret", "/**/\u017fecret"), "/SECRET", id="long s in the glob"),
        pytest.param(("/secret", "/**/secret"), "/\u017fecret", id="long s in the path"),
        pytest.param(("/kube", "/**/kube"), "/\u212aube", id="kelvin sign"),
        pytest.param(("/\u03c3", "/**/\u03c3"), "/\u03a3", id="sigma"),
        pytest.param(("/\u03c2", "/**/\u03c2"), "/\u03a3", id="final sigma"),
    ],
)
def test_case_insensitive_matching_does_not_depend_on_how_a_glob_is_matched(
    patterns: tuple[str, str], path: str
) -> None:
    # The first glob is matched by a regex, the second segment by segment;
    # for a path with no extra leading segment they must give one answer.
    by_regex, by_segments = (compile_glob(p, ignore_case=True) for p in patterns)
    assert by_regex.regex is not None
    assert by_segments.regex is None

    assert by_regex.matches(path) is by_segments.matches(path)


# --- the request target: decided, recorded and forwarded as one ---------------------------

# Every character a raw path could carry, in every spelling: raw, encoded (both
# cases), UTF-8 encoded, plus the URL delimiters that would move the path's end.
TARGET_PIECES = st.one_of(
    st.sampled_from(["/", "a", "Z", "9", "-", ".", "~", "%", "#", "?", "&", "=", "+", ":", "@"]),
    st.characters(codec="utf-8").map(lambda char: quote(char, safe="")),
    st.characters(codec="utf-8").map(lambda char: quote(char, safe="").lower()),
    st.characters(codec="utf-8"),
)
RAW_TARGET = st.lists(TARGET_PIECES, max_size=12).map(lambda pieces: "/" + "".join(pieces))


def _backend_path(wire_path: str) -> str:
    """What a backend makes of the path it receives: cut at ? and #, then percent-decode."""
    for delimiter in "?#":
        wire_path = wire_path.split(delimiter, 1)[0]
    return unquote_to_bytes(wire_path).decode("utf-8")


@settings(max_examples=1500, deadline=None)
@given(st.one_of(RAW_TARGET, HOSTILE_PATH, ENCODED_PATH))
@example("/api/billing#x")
@example("/files/x.xlsx%23.pdf")
@example("/admin%3F")
@example("/caf%C3%A9/a%20b")
def test_the_upstream_reads_exactly_the_path_that_was_decided(raw_path: str) -> None:
    try:
        target = parse_target(raw_path)
    except AmbiguousPath:
        return
    assert target.path == normalize_path(raw_path)
    assert _backend_path(target.wire_path) == target.path
    assert set(target.wire_path) <= WIRE_CHARACTERS  # nothing a URL parser would split on
    assert parse_target(target.wire_path) == target  # the wire form is canonical


WIRE_CHARACTERS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*,=:@/%"
)


@pytest.mark.parametrize(
    ("raw_path", "path", "wire_path"),
    [
        pytest.param("/api/x", "/api/x", "/api/x", id="plain path is its own wire form"),
        pytest.param("/a%20b", "/a b", "/a%20b", id="space encoded again"),
        pytest.param("/%41pi", "/Api", "/Api", id="needless encoding dropped"),
        pytest.param("/caf%c3%a9", "/café", "/caf%C3%A9", id="UTF-8 in upper-case hex"),
        pytest.param("/café", "/café", "/caf%C3%A9", id="raw UTF-8 encoded"),
        pytest.param("/a%21b", "/a!b", "/a!b", id="sub-delimiters kept literal"),
        pytest.param("/a+b", "/a+b", "/a%2Bb", id="plus encoded (S3 reads it as a space)"),
        pytest.param('/a"b<c>', '/a"b<c>', "/a%22b%3Cc%3E", id="unsafe ASCII encoded"),
    ],
)
def test_target_has_one_canonical_wire_form(raw_path: str, path: str, wire_path: str) -> None:
    assert parse_target(raw_path) == RequestTarget(path, wire_path)


# Characters whose case mappings differ between common backend stacks (Java,
# .NET, Go, Python, ICU, Turkish locales) or that NFKC turns into ASCII.
CASE_MAPPING_HAZARDS = [
    pytest.param("\u0131", id="dotless i upper-cases to I"),
    pytest.param("\u0130", id="dotted capital I lower-cases to i + dot"),
    pytest.param("\u017f", id="long s upper-cases to S"),
    pytest.param("\u212a", id="Kelvin sign lower-cases to k"),
    pytest.param("\u00df", id="sharp s upper-cases to SS"),
    pytest.param("\u1e9e", id="capital sharp s folds to ss"),
    pytest.param("\ufb00", id="ff ligature upper-cases to FF"),
    pytest.param("\u0149", id="n preceded by apostrophe upper-cases to N"),
    pytest.param("\u01f0", id="j with caron upper-cases to J + caron"),
    pytest.param("\uff41", id="fullwidth a is a after NFKC"),
    pytest.param("\u1d00", id="small capital A-like letter"),
    pytest.param("\U0001d41a", id="mathematical bold a"),
    pytest.param("\u2170", id="small roman numeral one is i after NFKC"),
]


@pytest.mark.parametrize("char", CASE_MAPPING_HAZARDS)
@pytest.mark.parametrize("spelling", ["raw", "encoded"])
def test_letter_some_stack_reads_as_ascii_is_refused(char: str, spelling: str) -> None:
    path = f"/adm{char}n"
    raw_path = path if spelling == "raw" else quote(path)
    if char == "\u1d00":
        # U+1D00 has no mapping to ASCII: it must stay accepted (no false refusal).
        assert normalize_path(raw_path) == path
        return
    with pytest.raises(AmbiguousPath, match=r"ASCII|NFKC"):
        normalize_path(raw_path)


@pytest.mark.parametrize(
    "raw_path",
    [
        pytest.param("/api/billing%EF%BC%8Finvoices", id="fullwidth solidus"),
        pytest.param("/api/%EF%BC%8E%EF%BC%8E/admin", id="fullwidth full stops"),
        pytest.param("/api/projects/%EF%BC%94%EF%BC%92", id="fullwidth digits"),
        pytest.param("/api/%EF%BC%85", id="fullwidth percent"),
        pytest.param("/api/%C2%B2", id="superscript two"),
        pytest.param("/api/cafe%CC%81", id="decomposed e acute (NFC joins it)"),
        pytest.param("/api/%E2%84%AB", id="Angstrom sign (NFC is A with ring)"),
    ],
)
def test_path_that_unicode_normalisation_would_change_is_refused(raw_path: str) -> None:
    with pytest.raises(AmbiguousPath):
        normalize_path(raw_path)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/caf\u00e9", id="e acute"),
        pytest.param("/\u043f\u0440\u0438\u0432\u0435\u0442", id="Cyrillic"),
        pytest.param("/\u6587\u4ef6", id="CJK"),
        pytest.param("/\u03c3\u03b1\u03c2", id="Greek with final sigma"),
        pytest.param("/na\u00efve", id="i with diaeresis"),
    ],
)
def test_non_ascii_letters_that_stay_non_ascii_are_accepted(path: str) -> None:
    assert normalize_path(path) == path


@pytest.mark.parametrize(
    ("glob_text", "path"),
    [
        pytest.param("/admin/**", "/ADMIN/x", id="ASCII upper"),
        pytest.param("/stra\u00dfe/**", "/STRASSE/x", id="sharp s against SS"),
        pytest.param("/\u03c3\u03b1\u03c2/**", "/\u03a3\u0391\u03a3/x", id="final sigma"),
        pytest.param("/caf\u00e9/**", "/CAF\u00c9", id="accented capital"),
    ],
)
def test_case_insensitive_globs_fold_both_sides_alike(glob_text: str, path: str) -> None:
    assert compile_glob(glob_text, ignore_case=True).matches(path)
    assert fold_case(glob_text.rstrip("/*")) == fold_case(path.split("/x")[0])
