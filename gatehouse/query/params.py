"""Named queries (``infra/athena/queries/*.sql``) and their typed parameters.

A named query file starts with a header, then one SELECT::

    -- name: accesses_by_path
    -- description: Who accessed a route or path in a window.
    -- param: route_id varchar   Route id to match
    -- param: from timestamp      Window start (inclusive), UTC
    SELECT ... WHERE resource.route_id = :route_id AND ...

Parameters are ``:name`` placeholders. A value arrives as a string (from the
CLI), is checked against the declared type, and replaces its placeholders in
the sqlglot tree as a typed SQL literal: a value never becomes SQL text by
concatenation, so no value can change the query's shape.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.tokenizer_core import TokenType

from gatehouse.query.errors import (
    QueryError,
    QueryNotReadOnly,
    QueryParamError,
    QuerySyntaxError,
    UnknownNamedQuery,
)
from gatehouse.query.schema import ROOT
from gatehouse.query.text import has_surrogate, strip_ansi

QUERIES_DIR = ROOT / "infra" / "athena" / "queries"
PARAM_TYPES = ("varchar", "timestamp", "bigint", "integer", "double", "boolean")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER = re.compile(r"^--\s*(name|description|param):\s*(.*?)\s*$")
# Placeholders are renamed before parsing so that keywords (``:from``, ``:to``)
# parse as placeholders too; the prefix is stripped again when binding.
_PREFIX = "gh_param__"
_INT_RANGES = {"integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
# [0-9], not \d: \d matches every script's digits, which int()/float() then read.
_TIMESTAMP = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,3}))?)?)?(Z|[+-]00:?00)?"
)
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


# Defaults of the parameters named queries share, by (name, type): a window
# is the last 24 hours, history the week before it. Timestamps are given as
# ``gatehouse.times`` reads them.
_DEFAULTS = {
    ("from", "timestamp"): "-24h",
    ("to", "timestamp"): "now",
    ("lookback_days", "integer"): "7",
}
# A varchar whose help says an empty value matches anything defaults to empty.
_MATCHES_ANY = "empty matches any"


@dataclass(frozen=True, slots=True)
class QueryParam:
    """One declared parameter: its name, Athena type and a line of help."""

    name: str
    type: str
    help: str = ""

    @property
    def default(self) -> str | None:
        """The value used when none is given (None: the parameter is required)."""
        if self.type == "varchar" and _MATCHES_ANY in self.help.lower():
            return ""
        return _DEFAULTS.get((self.name, self.type))


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """One file of ``infra/athena/queries``: header fields and the full SQL text."""

    name: str
    description: str
    params: tuple[QueryParam, ...]
    sql: str

    @property
    def param_types(self) -> dict[str, str]:
        """``{name: type}`` of the declared parameters."""
        return {param.name: param.type for param in self.params}


def parse_header(sql: str) -> tuple[dict[str, str], tuple[QueryParam, ...]]:
    """The ``-- name:`` / ``-- description:`` fields and ``-- param:`` lines of a header.

    The header is the leading block of ``--`` comment lines.

    Raises
    ------
    QueryParamError
        When a ``param`` line has no name, a bad name, an unknown type, or repeats a name.
    """
    fields: dict[str, str] = {}
    params: list[QueryParam] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("--"):
            break
        match = _HEADER.match(stripped)
        if match is None:
            continue
        key, value = match.groups()
        if key != "param":
            fields.setdefault(key, value)
            continue
        parts = value.split(None, 2)
        if len(parts) < 2 or not _NAME.fullmatch(parts[0]):
            raise QueryParamError(
                f"bad param line {stripped!r}: expected '-- param: name type help'"
            )
        name, kind = parts[0], parts[1].lower()
        if kind not in PARAM_TYPES:
            raise QueryParamError(
                f"param {name!r} has type {parts[1]!r}; allowed: {', '.join(PARAM_TYPES)}"
            )
        if any(param.name == name for param in params):
            raise QueryParamError(f"param {name!r} is declared twice")
        params.append(QueryParam(name, kind, parts[2] if len(parts) > 2 else ""))
    return fields, tuple(params)


def read_named_query(path: Path) -> NamedQuery:
    """The named query in ``path``, its header and placeholders checked against each other.

    Raises
    ------
    QueryError
        When the header lacks a name (equal to the file's stem) or a description,
        a placeholder is not declared, a declared param is never used, or the
        SQL is not one read-only query.
    """
    sql = path.read_text(encoding="utf-8")
    fields, params = parse_header(sql)
    if fields.get("name") != path.stem:
        raise QueryError(f"{path.name}: the header's name must be {path.stem!r}")
    if not fields.get("description"):
        raise QueryError(f"{path.name}: the header has no description")
    tree = parse_statement(sql)
    require_query(tree, "a named query")
    used = placeholders(tree)
    declared = {param.name for param in params}
    if used - declared:
        raise QueryParamError(
            f"{path.name}: placeholders without a '-- param:' line: "
            f"{', '.join(sorted(used - declared))}"
        )
    if declared - used:
        raise QueryParamError(
            f"{path.name}: declared params never used: {', '.join(sorted(declared - used))}"
        )
    return NamedQuery(path.stem, fields["description"], params, sql)


def named_queries(directory: Path | None = None) -> list[NamedQuery]:
    """Every named query under ``infra/athena/queries``, sorted by name."""
    folder = directory or QUERIES_DIR
    return [read_named_query(path) for path in sorted(folder.glob("*.sql"))]


def load_named_query(name: str, directory: Path | None = None) -> NamedQuery:
    """The named query ``name``.

    Raises
    ------
    UnknownNamedQuery
        When there is no such file (the message lists those there are).
    """
    folder = directory or QUERIES_DIR
    path = folder / f"{name}.sql"
    if not _NAME.fullmatch(name) or not path.is_file():
        known = ", ".join(path.stem for path in sorted(folder.glob("*.sql"))) or "none"
        raise UnknownNamedQuery(f"no named query {name!r} (known: {known})")
    return _cached_named_query(path, path.stat().st_mtime_ns)


@cache
def _cached_named_query(path: Path, mtime_ns: int) -> NamedQuery:
    del mtime_ns  # part of the cache key only: an edited file is read again
    return read_named_query(path)


def _rename_placeholders(sql: str) -> str:
    """``:name`` -> ``:gh_param__name`` wherever the tokenizer sees a placeholder."""
    try:
        tokens = Dialect.get_or_raise("athena").tokenize(sql)
    except sqlglot.errors.TokenError:
        raise QuerySyntaxError(
            "cannot read the SQL: a string, quoted name or comment is not closed"
        ) from None
    edits: list[int] = []
    for colon, name in itertools.pairwise(tokens):
        if (
            colon.token_type == TokenType.COLON
            and name.start == colon.end + 1
            and _NAME.fullmatch(name.text)
            and name.token_type not in (TokenType.STRING, TokenType.NUMBER)
        ):
            edits.append(name.start)
    for position in reversed(edits):
        sql = sql[:position] + _PREFIX + sql[position:]
    return sql


def parse_statement(sql: str) -> exp.Expression:
    """The one statement of ``sql`` (Athena dialect), placeholders as ``exp.Placeholder``.

    Raises
    ------
    QuerySyntaxError
        When sqlglot cannot parse it, or it holds no statement or more than one.
    """
    renamed = _rename_placeholders(sql)
    try:
        statements = [tree for tree in sqlglot.parse(renamed, read="athena") if tree is not None]
    except sqlglot.errors.ParseError as exc:
        raise QuerySyntaxError(parse_error_text(exc, renamed)) from None
    if len(statements) != 1:
        raise QuerySyntaxError(f"expected one SQL statement, found {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Expression):
        raise QuerySyntaxError("expected one SQL statement")
    return statement


def parse_error_text(error: sqlglot.errors.ParseError, renamed: str = "") -> str:
    """One line for the operator: where the SQL stops making sense, and the token there.

    sqlglot's own message repeats the statement with the token underlined by
    ANSI codes, and some of its descriptions name its classes; this names the
    line, column (of the SQL as written: ``renamed`` is what sqlglot read,
    placeholders renamed) and token instead.
    """
    first = error.errors[0] if error.errors else {}
    description = strip_ansi(str(first.get("description") or "")).rstrip(".")
    if not description or "<class" in description or "Required keyword" in description:
        description = "the statement is incomplete or malformed here"
    token = strip_ansi(str(first.get("highlight") or "")).replace(_PREFIX, "")
    where = ""
    line, column = first.get("line"), first.get("col")
    if isinstance(line, int) and isinstance(column, int):
        lines = renamed.split("\n")
        if 0 < line <= len(lines):
            column -= lines[line - 1][:column].count(_PREFIX) * len(_PREFIX)
        where = f" at line {line}, column {column}"
    near = f" near {token!r}" if token else ""
    return f"cannot parse the SQL (Athena dialect){where}{near}: {description}"


def require_query(tree: exp.Expression, what: str = "the engine") -> None:
    """Raise :class:`QueryNotReadOnly` unless ``tree`` is a query (SELECT, WITH, set operation)."""
    if isinstance(tree, exp.Query) and not any(
        isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop))
        for node in tree.walk()
    ):
        return
    kind = tree.key.upper() if not isinstance(tree, exp.Command) else str(tree.this).upper()
    raise QueryNotReadOnly(
        f"{what} runs only read-only queries (SELECT or WITH ... SELECT); "
        f"refused a {kind} statement"
    )


def placeholders(tree: exp.Expression) -> set[str]:
    """The names of the ``:name`` placeholders in ``tree``."""
    return {_param_name(node) for node in tree.find_all(exp.Placeholder)}


def _param_name(node: exp.Placeholder) -> str:
    name = str(node.name)
    if not name.startswith(_PREFIX):
        raise QuerySyntaxError("positional '?' placeholders are not supported: use :name")
    return name[len(_PREFIX) :]


def bind(
    tree: exp.Expression, declared: Mapping[str, str] | None, values: Mapping[str, str]
) -> exp.Expression:
    """A copy of ``tree`` with every placeholder replaced by its value as a typed literal.

    Parameters
    ----------
    declared:
        ``{name: type}``; None for ad-hoc SQL without a header, whose
        placeholders are all ``varchar``.
    values:
        ``{name: value}`` as strings.

    Raises
    ------
    QueryParamError
        For a value no placeholder takes, a placeholder without a value, or a
        value that is not of its type.
    """
    used = placeholders(tree)
    types = dict(declared) if declared is not None else dict.fromkeys(used, "varchar")
    unknown = sorted(set(values) - set(types))
    if unknown:
        known = ", ".join(sorted(types)) or "none"
        raise QueryParamError(f"unknown param(s) {', '.join(unknown)} (this query takes: {known})")
    missing = sorted(used - set(values))
    if missing:
        raise QueryParamError(f"missing param(s): {', '.join(missing)}")
    literals = {name: typed_literal(name, types[name], values[name]) for name in used}

    def replace(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder):
            return literals[_param_name(node)].copy()
        return node

    return tree.copy().transform(replace, copy=False)


def typed_literal(name: str, kind: str, value: str) -> exp.Expression:
    """``value`` as a SQL literal of Athena type ``kind``.

    Raises
    ------
    QueryParamError
        When ``value`` is not a valid ``kind``.
    """
    if not isinstance(value, str):
        raise QueryParamError(
            f"param {name!r}: expected a string value, got {type(value).__name__}"
        )
    literal = _LITERALS.get(kind)
    if literal is None:
        raise QueryParamError(f"param {name!r}: unknown type {kind!r}")
    return literal(name, kind, value)


def _varchar(name: str, kind: str, value: str) -> exp.Expression:
    if "\x00" in value:
        raise QueryParamError(f"param {name!r}: a NUL character is not allowed")
    if has_surrogate(value):
        # Not encodable as UTF-8: neither engine could take it (nor could Athena's API).
        raise QueryParamError(f"param {name!r}: a lone surrogate is not allowed")
    return exp.Literal.string(value)


def _integer(name: str, kind: str, value: str) -> exp.Expression:
    text = value.strip()
    if not _INTEGER.fullmatch(text):
        raise QueryParamError(f"param {name!r} ({kind}): {value!r} is not an integer")
    number = int(text)
    low, high = _INT_RANGES[kind]
    if not low <= number <= high:
        raise QueryParamError(f"param {name!r} ({kind}): {number} is out of range")
    return exp.cast(exp.Literal.number(number), "INTEGER" if kind == "integer" else "BIGINT")


def _double(name: str, kind: str, value: str) -> exp.Expression:
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        raise QueryParamError(f"param {name!r} ({kind}): {value!r} is not a number") from None
    if not math.isfinite(number):
        raise QueryParamError(f"param {name!r} ({kind}): {value!r} is not finite")
    if not _DOUBLE.fullmatch(text):
        # float() also reads other scripts' digits and "1_000".
        raise QueryParamError(f"param {name!r} ({kind}): {value!r} is not a number")
    return exp.cast(exp.Literal.number(repr(number)), "DOUBLE")


def _boolean(name: str, kind: str, value: str) -> exp.Expression:
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise QueryParamError(f"param {name!r} ({kind}): expected true or false, got {value!r}")
    return exp.Boolean(this=text == "true")


def _timestamp(name: str, kind: str, value: str) -> exp.Expression:
    del kind
    return exp.cast(exp.Literal.string(_timestamp_text(name, value)), "TIMESTAMP")


_LITERALS: dict[str, Callable[[str, str, str], exp.Expression]] = {
    "varchar": _varchar,
    "integer": _integer,
    "bigint": _integer,
    "double": _double,
    "boolean": _boolean,
    "timestamp": _timestamp,
}


def _timestamp_text(name: str, value: str) -> str:
    """``value`` (ISO 8601, UTC) as ``YYYY-MM-DD HH:MM:SS.fff``, checked to be a real time."""
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise QueryParamError(
            f"param {name!r} (timestamp): {value!r} is not 'YYYY-MM-DD[ HH:MM[:SS[.fff]]]' in UTC"
            " (a 'Z' or +00:00 suffix is allowed, other offsets are not)"
        )
    day, hour, minute, second, fraction, _zone = match.groups()
    try:
        moment = datetime.fromisoformat(day).replace(
            hour=int(hour or 0), minute=int(minute or 0), second=int(second or 0), tzinfo=UTC
        )
    except ValueError as exc:
        raise QueryParamError(f"param {name!r} (timestamp): {value!r}: {exc}") from None
    millis = (fraction or "").ljust(3, "0")
    # %Y does not zero-pad years before 1000 on every platform.
    return f"{moment.year:04d}-" + moment.strftime("%m-%d %H:%M:%S") + f".{millis}"
