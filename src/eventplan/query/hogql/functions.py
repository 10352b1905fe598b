"""HogQL's functions: which ones a query may call, and what each is in DuckDB.

HogQL's functions are ClickHouse's, so on ClickHouse a call stays as written. sqlglot
already knows many of them (`countIf`, `toStartOfDay`, `dateDiff`, …) and prints
those for DuckDB itself; the rest are written here as DuckDB templates in which `_0`,
`_1`, … stand for the arguments. A function on neither list is refused, as PostHog
refuses it: a query reaches nothing but the functions named here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import sqlglot
from sqlglot import exp

from eventplan.query.hogql.dialect import HogQLError

Rewrite = Callable[[list[exp.Expr]], exp.Expr]

# The functions sqlglot parses into a node of its own and prints right for each engine.
KNOWN: tuple[type[exp.Expr], ...] = (
    exp.Abs,
    exp.AnyValue,
    exp.ArgMax,
    exp.ArgMin,
    exp.Array,
    exp.ArrayContains,
    exp.Avg,
    exp.Case,
    exp.Cast,
    exp.Ceil,
    exp.Coalesce,
    exp.Count,
    exp.CountIf,
    exp.CurrentDate,
    exp.CurrentTimestamp,
    exp.DateAdd,
    exp.DateDiff,
    exp.DateSub,
    exp.DayOfWeekIso,
    exp.Exp,
    exp.Explode,
    exp.Extract,
    exp.Floor,
    exp.Greatest,
    exp.If,
    exp.Least,
    exp.Length,
    exp.Ln,
    exp.Log,
    exp.Lower,
    exp.Max,
    exp.Min,
    exp.Pow,
    exp.RegexpLike,
    exp.Round,
    exp.Split,
    exp.Sqrt,
    exp.Stddev,
    exp.StddevPop,
    exp.StddevSamp,
    exp.StrPosition,
    exp.Substring,
    exp.Sum,
    exp.TimestampTrunc,
    exp.TimeToStr,
    exp.Transform,
    exp.Trim,
    exp.TryCast,
    exp.Upper,
    exp.Variance,
    exp.VariancePop,
)


@cache
def _template(sql: str, dialect: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read=dialect)


def template(sql: str, dialect: str = "duckdb") -> Rewrite:
    """A rewrite that fills `_0`, `_1`, … of a DuckDB expression with the arguments."""

    def rewrite(args: list[exp.Expr]) -> exp.Expr:
        def fill(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and re.fullmatch(r"_\d", node.name):
                index = int(node.name[1:])
                if index >= len(args):
                    raise HogQLError(f"the function needs at least {index + 1} arguments")
                return args[index].copy()
            return node

        return _template(sql, dialect).copy().transform(fill)

    return rewrite


def _multi_if(args: list[exp.Expr]) -> exp.Expr:
    if len(args) < 3 or len(args) % 2 == 0:
        raise HogQLError("multiIf takes pairs of condition and value, then a default")
    case = exp.Case(default=args[-1])
    for condition, value in zip(args[:-1:2], args[1:-1:2], strict=True):
        case = case.when(condition, value)
    return case


def _extract(args: list[exp.Expr]) -> exp.Expr:
    # ClickHouse's extract gives the first group when the pattern has one, else the match.
    pattern = args[1] if len(args) > 1 else None
    groups = 0
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        try:
            groups = re.compile(pattern.this).groups
        except re.error as exc:
            raise HogQLError(f"extract: the pattern is not a regular expression: {exc}") from exc
    return template(f"regexp_extract(_0, _1, {1 if groups else 0})")(args)


def _replace_one(args: list[exp.Expr]) -> exp.Expr:
    needle = args[1] if len(args) > 1 else None
    if not (isinstance(needle, exp.Literal) and needle.is_string):
        raise HogQLError("replaceOne needs a string literal to replace")
    return template("regexp_replace(_0, _1, _2)")(
        [args[0], exp.Literal.string(re.escape(needle.this)), *args[2:]]
    )


def _json_keys(args: list[exp.Expr]) -> str:
    keys = []
    for arg in args[1:]:
        if not (isinstance(arg, exp.Literal) and arg.is_string):
            raise HogQLError("a JSONExtract function takes the keys as string literals")
        keys.append('"' + arg.this.replace('"', '\\"') + '"')
    return "$" + "".join(f".{k}" for k in keys)


def _json(kind: str) -> Rewrite:
    def rewrite(args: list[exp.Expr]) -> exp.Expr:
        path = exp.Literal.string(_json_keys(args))
        text = template("json_extract_string(_0, _1)")([args[0], path])
        if kind == "raw":
            return template("CAST(json_extract(_0, _1) AS VARCHAR)")([args[0], path])
        if kind == "array":
            items = exp.Literal.string(_json_keys(args) + "[*]")
            return template("CAST(json_extract(_0, _1) AS VARCHAR[])")([args[0], items])
        return text if kind == "string" else template(f"TRY_CAST(_0 AS {kind})")([text])

    return rewrite


def _combined(name: str) -> Rewrite:
    """`sumIf(x, cond)` and the like: the aggregate over the rows where cond holds."""
    base = name[:-2].lower()
    distinct = base in ("countdistinct", "uniq", "uniqexact")
    function = {"countdistinct": "count", "uniq": "count", "uniqexact": "count"}.get(base, base)
    function = {"any": "any_value", "argmax": "arg_max", "argmin": "arg_min"}.get(
        function, function
    )

    def rewrite(args: list[exp.Expr]) -> exp.Expr:
        if len(args) < 2:
            raise HogQLError(f"{name} takes the value, then the condition")
        names = ", ".join(f"_{i}" for i in range(len(args) - 1))
        prefix = "DISTINCT " if distinct else ""
        sql = f"{function}({prefix}{names}) FILTER (WHERE _{len(args) - 1})"
        return template(sql)(args)

    return rewrite


COMBINED = {"sumIf", "avgIf", "minIf", "maxIf", "anyIf", "countDistinctIf", "uniqIf"}
COMBINED |= {"uniqExactIf", "argMaxIf", "argMinIf"}

# HogQL's name → its DuckDB form, for what sqlglot leaves as a plain call.
DUCKDB: dict[str, Rewrite] = {
    "toFloat": template("TRY_CAST(_0 AS DOUBLE)"),
    "toFloatOrNull": template("TRY_CAST(_0 AS DOUBLE)"),
    "toFloatOrZero": template("COALESCE(TRY_CAST(_0 AS DOUBLE), 0)"),
    "toInt": template("TRY_CAST(trunc(TRY_CAST(_0 AS DOUBLE)) AS BIGINT)"),
    "toIntOrNull": template("TRY_CAST(trunc(TRY_CAST(_0 AS DOUBLE)) AS BIGINT)"),
    "toIntOrZero": template("COALESCE(TRY_CAST(trunc(TRY_CAST(_0 AS DOUBLE)) AS BIGINT), 0)"),
    "toString": template("CAST(_0 AS VARCHAR)"),
    "toDate": template("CAST(_0 AS DATE)"),
    "toDateTime": template("CAST(_0 AS TIMESTAMPTZ)"),
    "toHour": template("hour(_0)"),
    "toMinute": template("minute(_0)"),
    "toSecond": template("second(_0)"),
    "toDayOfMonth": template("day(_0)"),
    "toMonth": template("month(_0)"),
    "toYear": template("year(_0)"),
    "toStartOfWeek": template("CAST(_0 AS DATE) - CAST(dayofweek(_0) AS INTEGER)"),  # Sunday
    "toUnixTimestamp": template("CAST(epoch(_0) AS BIGINT)"),
    "now": template("now()"),
    "today": template("current_date"),
    "yesterday": template("current_date - 1"),
    "multiIf": _multi_if,
    "extract": _extract,
    "replaceOne": _replace_one,
    "replaceAll": template("replace(_0, _1, _2)"),
    "replaceRegexpOne": template("regexp_replace(_0, _1, _2)"),
    "replaceRegexpAll": template("regexp_replace(_0, _1, _2, 'g')"),
    "empty": template("(length(_0) = 0)"),
    "notEmpty": template("(length(_0) > 0)"),
    "JSONExtractString": _json("string"),
    "JSONExtractRaw": _json("raw"),
    "JSONExtractArrayRaw": _json("array"),
    "JSONExtractInt": _json("BIGINT"),
    "JSONExtractFloat": _json("DOUBLE"),
    "JSONExtractBool": _json("BOOLEAN"),
    "uniqExact": template("count(DISTINCT _0)"),
    "median": template("quantile_cont(_0, 0.5)"),
    "groupArray": template("list(_0)"),
    "groupUniqArray": template("list(DISTINCT _0)"),
    **{name: _combined(name) for name in COMBINED},
}
BY_LOWER_NAME = {name.lower(): name for name in DUCKDB}

# HogQL's own names that ClickHouse spells otherwise, and what returns its plain
# DateTime (which leaves ClickHouse as a bare number) as a DateTime64.
CLICKHOUSE: dict[str, Rewrite] = {
    "toFloat": template("accurateCastOrNull(_0, 'Float64')", "clickhouse"),
    "toFloatOrZero": template("ifNull(accurateCastOrNull(_0, 'Float64'), 0)", "clickhouse"),
    "toInt": template("accurateCastOrNull(_0, 'Int64')", "clickhouse"),
    "toIntOrZero": template("ifNull(accurateCastOrNull(_0, 'Int64'), 0)", "clickhouse"),
    "toDateTime": template("toDateTime64(_0, 6, 'UTC')", "clickhouse"),
    "now": template("now64(6, 'UTC')", "clickhouse"),
}


def hogql_name(node: exp.Func) -> str:
    """The function's name as the query wrote it (sqlglot keeps it for plain calls)."""
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc | exp.CombinedAggFunc):
        return str(node.name)
    return str(node.sql_name())


# Known to sqlglot, printed right for ClickHouse, and given their DuckDB form below.
TRANSLATED = (exp.ApproxDistinct, exp.Quantile, exp.Concat, exp.JSONExtractScalar)
OPERATORS = (exp.Connector, exp.Binary, exp.Unary, exp.Predicate)  # `and`, `=`, `not`, …


def check(node: exp.Expr) -> None:
    """Refuse a call to anything but HogQL's functions named above."""
    if not isinstance(node, exp.Func) or isinstance(node, KNOWN + TRANSLATED + OPERATORS):
        return
    name = hogql_name(node)
    plain = isinstance(node, exp.Anonymous | exp.AnonymousAggFunc | exp.CombinedAggFunc)
    if not (plain and name.lower() in BY_LOWER_NAME):
        raise HogQLError(f"Unsupported function call '{name}(...)'")


def to_duckdb(node: exp.Expr) -> exp.Expr:
    """One node in DuckDB's terms (applied bottom-up over a checked tree)."""
    if isinstance(node, exp.ApproxDistinct):  # ClickHouse's uniq is exact on small sets
        return exp.Count(this=exp.Distinct(expressions=[node.this]))
    if isinstance(node, exp.Quantile):  # ClickHouse's quantile interpolates
        return template("quantile_cont(_0, _1)")([node.this, node.args["quantile"]])
    if isinstance(node, exp.Concat):  # HogQL's concat reads NULL as ''
        return template("concat(" + ", ".join(f"_{i}" for i in range(len(node.expressions))) + ")")(
            list(node.expressions)
        )
    if isinstance(node, exp.JSONExtractScalar):  # JSONExtractString, keys as PostHog sends
        path = node.expression
        keys = path.expressions[1:] if isinstance(path, exp.JSONPath) else [path]
        if not all(isinstance(k, exp.JSONPathKey | exp.Literal) for k in keys):
            raise HogQLError("JSONExtractString takes the keys as string literals")
        return _json("string")([node.this, *(exp.Literal.string(str(k.this)) for k in keys)])
    if isinstance(node, exp.Anonymous | exp.AnonymousAggFunc | exp.CombinedAggFunc):
        name = BY_LOWER_NAME.get(str(node.name).lower())
        if name is not None:
            return DUCKDB[name](list(node.expressions))
    return node


def to_clickhouse(node: exp.Expr) -> exp.Expr:
    """One node in ClickHouse's terms: HogQL's functions are ClickHouse's, but for
    concat, which reads NULL as '' in HogQL."""
    if isinstance(node, exp.Concat):
        parts = [
            exp.func("ifNull", exp.func("toString", e), exp.Literal.string(""))
            for e in node.expressions
        ]
        return exp.Concat(expressions=parts)
    if isinstance(node, exp.Anonymous):
        # HogQL's names in any case, as on DuckDB; ClickHouse's own are case-sensitive.
        name = BY_LOWER_NAME.get(str(node.name).lower(), str(node.name))
        if name in CLICKHOUSE:
            return CLICKHOUSE[name](list(node.expressions))
        node.set("this", name)
    return node
