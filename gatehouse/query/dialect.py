"""Athena (Trino) SQL to DuckDB SQL: sqlglot, then corrections where the two silently disagree.

sqlglot's ``read='athena', write='duckdb'`` translation keeps each function's
name and shape but not always its meaning. Each correction below rewrites one
construct so that DuckDB returns what Athena returns (the unit tests prove
each one necessary and sufficient on worked examples):

==========================  ===================================  =========================
construct                   Athena (Trino)                        plain DuckDB translation
==========================  ===================================  =========================
date_diff(unit, a, b)       whole units elapsed, truncated        unit boundaries crossed
int / int                   integer, truncated toward zero        double
int / 0, int % 0            error                                 NULL
decimal / decimal           decimal, scale max(s1, s2), rounded   double
json_extract_scalar(obj)    NULL for an object or array           the JSON text
json_* on invalid JSON      NULL                                  error
regexp_extract, no match    NULL                                  ''
regexp_replace '$1'         group 1 (Java replacement syntax)     literal '$1'
parse_datetime / format_    Joda patterns (yyyy-MM-dd)            passed through as strftime
 datetime                                                          patterns (wrong or error)
array_distinct              keeps first-seen order and one NULL   unordered, drops NULL
contains(arr, x)            NULL when not found and arr has NULL  false
split_part, index > parts   NULL                                  ''
substr(s, 0 [, n])          ''                                    from the start
approx_percentile           a member of the data (digest)         interpolated (t-digest)
count_if, all inputs NULL   0                                     NULL
date_trunc/date_add/+ on a  DATE                                  TIMESTAMP
 DATE
==========================  ===================================  =========================

``approx_percentile`` and ``approx_distinct`` become their exact forms
(``quantile_disc``, ``count(DISTINCT)``): Athena's answers are approximations
of those. Constructs whose answer cannot be made to agree (a Joda or MySQL
pattern letter without a strftime twin, ``$`` group references RE2 cannot
express, a division whose operand types are unknown) raise
:class:`~gatehouse.query.errors.NotTranslatable` rather than guess.

The DuckDB connection must run with ``TimeZone='UTC'`` (Athena's session zone).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify

from gatehouse.query.errors import NotTranslatable
from gatehouse.query.schema import sqlglot_schema

_INTEGER_TYPES = {
    exp.DataType.Type.TINYINT,
    exp.DataType.Type.SMALLINT,
    exp.DataType.Type.INT,
    exp.DataType.Type.BIGINT,
}
_UNKNOWN_TYPES = {exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL}
_DATE_DIFF_UNITS = {
    "millisecond",
    "second",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "quarter",
    "year",
}


def fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    """A DuckDB function call, printed as written."""
    return exp.Anonymous(this=name, expressions=list(args))


def _lambda(body: exp.Expression, *names: str) -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(name) for name in names])


def _case(*whens: tuple[exp.Expr, exp.Expr], default: exp.Expr | None = None) -> exp.Case:
    case = exp.Case()
    for condition, value in whens:
        case = case.when(condition, value)
    return case.else_(default) if default is not None else case


def _error(message: str) -> exp.Anonymous:
    return fn("error", exp.Literal.string(message))


def _literal_text(node: exp.Expression | None, what: str) -> str:
    if isinstance(node, exp.Literal) and node.is_string:
        return str(node.this)
    raise NotTranslatable(f"{what} must be a string literal for the local engine to translate it")


# --- date_diff -------------------------------------------------------------


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    # Trino (Joda) counts whole units elapsed, truncated toward zero, which is
    # DuckDB's date_sub; DuckDB's date_diff counts unit boundaries crossed.
    unit = node.text("unit").lower() or "day"
    if unit not in _DATE_DIFF_UNITS:
        raise NotTranslatable(f"date_diff unit {unit!r} is not one Athena knows")
    # sqlglot keeps date_diff(unit, start, end) as DateDiff(this=end, expression=start).
    return fn("date_sub", exp.Literal.string(unit), node.expression, node.this)


# --- division ----------------------------------------------------------------


def _type_of(node: exp.Expression) -> exp.DataType | None:
    kind = node.type
    if kind is None or kind.this in _UNKNOWN_TYPES:
        return None
    return kind


def _decimal_scale(node: exp.Expression) -> int | None:
    """The scale Trino gives ``node`` when it is a decimal (a literal ``1.50`` is decimal(3,2))."""
    if isinstance(node, exp.Paren):
        return _decimal_scale(node.this)
    if isinstance(node, exp.Neg):
        return _decimal_scale(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        text = str(node.this)
        if "." in text and "e" not in text.lower():
            return len(text.split(".", 1)[1])
        return None
    kind = _type_of(node)
    if kind is not None and kind.this == exp.DataType.Type.DECIMAL:
        params = kind.expressions
        return int(params[1].name) if len(params) == 2 else 0
    return None


def _is_integer(node: exp.Expression) -> bool | None:
    """True/False when the operand's type is known to be/not be an integer; None if unknown."""
    if _decimal_scale(node) is not None:
        return False
    kind = _type_of(node)
    if kind is None:
        return None
    return kind.this in _INTEGER_TYPES


def _division(node: exp.Div | exp.Mod) -> exp.Expression | None:
    """The corrected division, or None when none is needed; raises when types are unknown."""
    left, right = node.this, node.expression
    left_int, right_int = _is_integer(left), _is_integer(right)
    scales = [_decimal_scale(left), _decimal_scale(right)]
    if (
        isinstance(node, exp.Div)
        and any(scale is not None for scale in scales)
        and (left_int is not None and right_int is not None)
    ):
        if all(
            scale is not None or is_int
            for scale, is_int in zip(scales, (left_int, right_int), strict=True)
        ):
            # decimal / decimal: scale max(s1, s2), rounded half away from zero.
            scale = max(scale or 0 for scale in scales)
            decimal = exp.DataType.build(f"DECIMAL(38, {scale})")
            quotient = exp.Div(this=exp.cast(left, "DOUBLE"), expression=exp.cast(right, "DOUBLE"))
            return exp.cast(fn("round", quotient, exp.Literal.number(scale)), decimal)
        return None  # decimal with double: double division in both
    if left_int is None or right_int is None:
        if left_int is False or right_int is False:
            return None  # a double operand: double division in both
        raise NotTranslatable(
            f"cannot tell whether {node.sql(dialect='athena')!r} divides integers (Athena "
            "truncates) or not: CAST an operand to bigint or double"
        )
    if not (left_int and right_int):
        return None
    operator = exp.IntDiv if isinstance(node, exp.Div) else exp.Mod
    guarded = _case(
        (exp.EQ(this=right.copy(), expression=exp.Literal.number(0)), _error("Division by zero")),
        default=operator(this=left, expression=right),
    )
    return exp.Paren(this=guarded)


# --- JSON ----------------------------------------------------------------------


def _json_path_literal(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.JSONPath):
        return exp.Literal.string(node.sql(dialect="athena").strip("'"))
    return node


def _json_extract_scalar(node: exp.JSONExtractScalar) -> exp.Expression:
    # Trino: NULL for an object, an array, a missing path or invalid JSON.
    text, path = node.this, _json_path_literal(node.expression)
    kind = fn("json_type", text.copy(), path.copy())
    scalar = exp.Not(
        this=exp.In(
            this=kind, expressions=[exp.Literal.string("OBJECT"), exp.Literal.string("ARRAY")]
        )
    )
    return _case(
        (exp.and_(fn("json_valid", text.copy()), scalar), fn("json_extract_string", text, path))
    )


def _json_extract(node: exp.JSONExtract) -> exp.Expression:
    text, path = node.this, _json_path_literal(node.expression)
    return _case((fn("json_valid", text.copy()), fn("json_extract", text, path)))


# --- regular expressions ------------------------------------------------------------


def _regexp_extract(node: exp.RegexpExtract) -> exp.Expression:
    # Trino: NULL when the pattern does not match (DuckDB: '').
    subject, pattern = node.this, node.expression
    group = node.args.get("group") or exp.Literal.number(0)
    return _case(
        (
            fn("regexp_matches", subject.copy(), pattern.copy()),
            fn("regexp_extract", subject, pattern, group),
        )
    )


def java_replacement_to_re2(replacement: str) -> str:
    """A Java ``Matcher.replaceAll`` replacement (``$1``, ``\\$``) in RE2's syntax (``\\1``).

    Raises
    ------
    NotTranslatable
        For ``${name}``, a group number above 9, or a dangling ``$`` / ``\\``.
    """
    out: list[str] = []
    index = 0
    while index < len(replacement):
        char = replacement[index]
        if char == "\\":
            if index + 1 == len(replacement):
                raise NotTranslatable("regexp_replace: the replacement ends with a lone backslash")
            literal = replacement[index + 1]
            out.append("\\\\" if literal == "\\" else literal)
            index += 2
        elif char == "$":
            digits = re.match(r"[0-9]+", replacement[index + 1 :])
            if digits is None:
                raise NotTranslatable(
                    "regexp_replace: only $0..$9 group references can be translated "
                    f"(found {replacement[index : index + 3]!r})"
                )
            if len(digits.group()) > 1:
                raise NotTranslatable(
                    f"regexp_replace: ${digits.group()} is ambiguous locally (RE2 knows \\0..\\9)"
                )
            out.append("\\" + digits.group())
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    replacement = node.args.get("replacement")
    if replacement is None:
        return node
    text = _literal_text(replacement, "regexp_replace's replacement")
    node.set("replacement", exp.Literal.string(java_replacement_to_re2(text)))
    return node


# --- date and time patterns ------------------------------------------------------

# Joda letters (by run length) -> strftime; a run not listed is refused.
_JODA = {
    "yyyy": "%Y",
    "yy": "%y",
    "y": "%Y",
    "YYYY": "%Y",
    "xxxx": "%G",
    "MMMM": "%B",
    "MMM": "%b",
    "MM": "%m",
    "M": "%-m",
    "dd": "%d",
    "d": "%-d",
    "DDD": "%j",
    "HH": "%H",
    "H": "%-H",
    "hh": "%I",
    "h": "%-I",
    "mm": "%M",
    "m": "%-M",
    "ss": "%S",
    "s": "%-S",
    "SSS": "%g",
    "SSSSSS": "%f",
    "a": "%p",
    "EEEE": "%A",
    "EEE": "%a",
    "E": "%a",
    "ZZ": "%z",
    "Z": "%z",
    "z": "%Z",
    "ww": "%V",
}


def joda_to_strftime(pattern: str) -> str:
    """A Joda-Time pattern (``yyyy-MM-dd'T'HH:mm``) as a DuckDB strftime format.

    Raises
    ------
    NotTranslatable
        For a pattern letter run without a strftime equivalent.
    """
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "'":
            if pattern.startswith("''", index):  # '' outside quotes: one quote
                out.append("'")
                index += 2
                continue
            index += 1
            while True:
                end = pattern.find("'", index)
                if end == -1:
                    raise NotTranslatable(f"Joda pattern {pattern!r}: unterminated quote")
                out.append(pattern[index:end].replace("%", "%%"))
                if pattern.startswith("''", end):  # '' inside quotes: one quote
                    out.append("'")
                    index = end + 2
                    continue
                index = end + 1
                break
        elif char.isalpha():
            run = len(pattern) - index - len(pattern[index:].lstrip(char))
            token = pattern[index : index + run]
            if token not in _JODA:
                raise NotTranslatable(
                    f"Joda pattern {pattern!r}: {token!r} has no local equivalent"
                )
            out.append(_JODA[token])
            index += run
        else:
            out.append("%%" if char == "%" else char)
            index += 1
    return "".join(out)


# sqlglot has already mapped Trino's MySQL-style specifiers (%i, %e, %W...) to
# strftime; these are the results it maps faithfully. Anything else (%D, %U,
# %v...) it passed through unchanged, and DuckDB would read it differently.
_STRFTIME_SPECIFIERS = {
    *"aAbBdmyYHIMSfpjg%",
    "-d",
    "-m",
    "-H",
    "-I",
    "-M",
    "-S",
    "-j",
}


def _check_mysql_format(node: exp.Expression) -> None:
    fmt = node.args.get("format")
    text = _literal_text(fmt, "the format of date_format/date_parse")
    for specifier in re.findall(r"%(-?.)", text):
        if specifier not in _STRFTIME_SPECIFIERS:
            raise NotTranslatable(
                f"date format (as strftime) {text!r}: %{specifier} has no faithful local twin"
            )


def _parse_datetime(node: exp.ParseDatetime) -> exp.Expression:
    fmt = joda_to_strftime(_literal_text(node.args.get("format"), "parse_datetime's pattern"))
    # Trino returns timestamp with time zone (UTC unless the pattern names a zone).
    return exp.cast(fn("strptime", node.this, exp.Literal.string(fmt)), "TIMESTAMPTZ")


def _format_datetime(node: exp.Anonymous) -> exp.Expression:
    value, pattern = [*node.expressions, None, None][:2]
    if value is None:
        raise NotTranslatable("format_datetime takes a value and a pattern")
    fmt = joda_to_strftime(_literal_text(pattern, "format_datetime's pattern"))
    return fn("strftime", value, exp.Literal.string(fmt))


# --- arrays and strings -------------------------------------------------------------


def _array_distinct(node: exp.ArrayDistinct) -> exp.Expression:
    # Trino keeps the first occurrence of each value, in order, NULL included.
    array = node.this
    first = exp.EQ(
        this=fn("list_position", array.copy(), exp.column("x")), expression=exp.column("i")
    )
    return fn("list_filter", array, _lambda(first, "x", "i"))


def _array_contains(node: exp.ArrayContains) -> exp.Expression:
    array, value = node.this, node.expression
    nulls = fn(
        "list_filter",
        array.copy(),
        _lambda(exp.Is(this=exp.column("x"), expression=exp.Null()), "x"),
    )
    return _case(
        (
            exp.or_(
                exp.Is(this=array.copy(), expression=exp.Null()),
                exp.Is(this=value.copy(), expression=exp.Null()),
            ),
            exp.Null(),
        ),
        (fn("list_contains", array.copy(), value.copy()), exp.true()),
        (exp.GT(this=fn("len", nulls), expression=exp.Literal.number(0)), exp.Null()),
        default=exp.false(),
    )


def _split_part(node: exp.SplitPart) -> exp.Expression:
    text, delimiter, index = node.this, node.args["delimiter"], node.args["part_index"]
    parts = fn("len", fn("string_split", text.copy(), delimiter.copy()))
    return _case(
        (
            exp.LT(this=index.copy(), expression=exp.Literal.number(1)),
            _error("split_part: index must be greater than zero"),
        ),
        (exp.GT(this=index.copy(), expression=parts), exp.Null()),
        default=fn("split_part", text, delimiter, index),
    )


def _substring(node: exp.Substring) -> exp.Expression:
    start = node.args.get("start")
    if start is None:
        return node
    zero = exp.EQ(this=start.copy(), expression=exp.Literal.number(0))
    return _case((zero, exp.Literal.string("")), default=node)


def _approx_quantile(node: exp.ApproxQuantile) -> exp.Expression:
    if node.args.get("accuracy") is not None or node.args.get("weight") is not None:
        raise NotTranslatable("approx_percentile with a weight or accuracy is not translated")
    return fn("quantile_disc", node.this, node.args["quantile"])


def _approx_distinct(node: exp.ApproxDistinct) -> exp.Expression:
    return exp.Count(this=exp.Distinct(expressions=[node.this]))


def _count_if(node: exp.CountIf) -> exp.Expression:
    # Trino counts (0 when no row is true); DuckDB's count_if is NULL when every input is NULL.
    return exp.Count(this=_case((node.this, exp.Literal.number(1))))


def _is_date(node: exp.Expression) -> bool:
    kind = _type_of(node)
    return kind is not None and kind.this == exp.DataType.Type.DATE


def _date_result(node: exp.Expression) -> exp.Expression:
    # Trino keeps DATE for date_trunc/date_add/+ interval on a date; DuckDB widens to TIMESTAMP.
    operand = node.this
    if isinstance(node, exp.Add | exp.Sub):
        dated = _is_date(node.this) and isinstance(node.expression, exp.Interval)
    else:
        dated = _is_date(operand)
    return exp.cast(node, "DATE") if dated else node


def _data_type(node: exp.DataType) -> exp.Expression:
    # TIMESTAMP(p) is a Trino precision; DuckDB reads TIMESTAMP(0) as TIMESTAMP_S, a
    # type it will not compare with TIMESTAMPTZ. Its microseconds hold every Athena value.
    if (
        node.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ)
        and node.expressions
    ):
        return exp.DataType.build(node.this)
    return node


def _anonymous(node: exp.Anonymous) -> exp.Expression:
    if str(node.this).lower() == "format_datetime":
        return _format_datetime(node)
    return node


_CORRECTIONS: dict[type[exp.Expression], Callable[..., exp.Expression]] = {
    exp.DateDiff: _date_diff,
    exp.JSONExtractScalar: _json_extract_scalar,
    exp.JSONExtract: _json_extract,
    exp.RegexpExtract: _regexp_extract,
    exp.RegexpReplace: _regexp_replace,
    exp.ParseDatetime: _parse_datetime,
    exp.ArrayDistinct: _array_distinct,
    exp.ArrayContains: _array_contains,
    exp.SplitPart: _split_part,
    exp.Substring: _substring,
    exp.ApproxQuantile: _approx_quantile,
    exp.ApproxDistinct: _approx_distinct,
    exp.CountIf: _count_if,
    exp.DateTrunc: _date_result,
    exp.DateAdd: _date_result,
    exp.DataType: _data_type,
    exp.Anonymous: _anonymous,
}


def _typed(tree: exp.Expression) -> exp.Expression:
    """``tree`` with types annotated; qualified first when a division's operands need it."""
    schema: dict[str, object] = dict(sqlglot_schema())
    annotate_types(tree, schema=schema, dialect="athena")
    divisions = [
        node for node in tree.find_all(exp.Div, exp.Mod) if isinstance(node, exp.Div | exp.Mod)
    ]
    if all(_division_types_known(node) for node in divisions):
        return tree
    try:
        qualified = qualify(tree.copy(), schema=schema, dialect="athena", quote_identifiers=False)
        return annotate_types(qualified, schema=schema, dialect="athena")
    except (OptimizeError, SqlglotError):
        return tree  # the division check below names the operand it cannot type


def _division_types_known(node: exp.Div | exp.Mod) -> bool:
    sides = (_is_integer(node.this), _is_integer(node.expression))
    return None not in sides or False in sides


def correct(tree: exp.Expression) -> exp.Expression:
    """A copy of the Athena tree with every correction applied (still an sqlglot tree)."""
    tree = _typed(tree.copy())

    def visit(node: exp.Expression) -> exp.Expression:
        if isinstance(node, (exp.Div, exp.Mod)):
            return _division(node) or node
        if isinstance(node, (exp.Add, exp.Sub)):
            return _date_result(node)
        if isinstance(node, (exp.TimeToStr, exp.StrToTime)):
            _check_mysql_format(node)
            return node
        handler = _CORRECTIONS.get(type(node))
        return handler(node) if handler else node

    # Children first, so a correction sees its corrected arguments.
    return tree.transform(visit, copy=False)


def to_duckdb(tree: exp.Expression) -> str:
    """DuckDB SQL that answers as Athena would answer ``tree`` (an Athena-dialect sqlglot tree).

    Raises
    ------
    NotTranslatable
        For a construct the local engine cannot answer as Athena would.
    """
    return correct(tree).sql(dialect="duckdb")


def plain_duckdb(sql: str) -> str:
    """sqlglot's translation alone, without corrections (what the tests prove wrong)."""
    return sqlglot.transpile(sql, read="athena", write="duckdb")[0]
