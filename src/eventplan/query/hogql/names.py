"""A HogQL result column's name, as PostHog names it: the alias, else the last name of
a field (`properties.$browser` → `$browser`), else the expression printed in HogQL's
own form, where operators are functions (`a - b` → `minus(a, b)`)."""

from __future__ import annotations

from sqlglot import exp

from eventplan.query.hogql.dialect import HogQL

OPERATORS: dict[type[exp.Expr], str] = {
    exp.Add: "plus",
    exp.Sub: "minus",
    exp.Mul: "multiply",
    exp.Div: "divide",
    exp.Mod: "modulo",
    exp.EQ: "equals",
    exp.NEQ: "notEquals",
    exp.GT: "greater",
    exp.GTE: "greaterOrEquals",
    exp.LT: "less",
    exp.LTE: "lessOrEquals",
    exp.Like: "like",
    exp.ILike: "ilike",
    exp.And: "and",
    exp.Or: "or",
}


def column_name(projection: exp.Expr) -> str:
    if isinstance(projection, exp.Alias):
        return str(projection.alias)
    if isinstance(projection, exp.Column):
        return str(projection.name)
    if isinstance(projection, exp.Dot):
        return str(projection.expression.name)
    return hogql_text(projection)


def hogql_text(node: exp.Expr) -> str:
    root = exp.Paren(this=node.copy())  # a parent, so that even the top can be replaced
    for part in reversed(list(root.this.walk())):
        call = _as_call(part)
        if call is not part:
            part.replace(call)
    return str(root.this.sql(dialect=HogQL, normalize_functions=False))


def _as_call(part: exp.Expr) -> exp.Expr:
    """Operators as HogQL prints them: functions."""
    name = OPERATORS.get(type(part))
    if name is not None and isinstance(part, exp.Binary):
        return exp.Anonymous(this=name, expressions=[part.left, part.right])
    if isinstance(part, exp.Not):
        return exp.Anonymous(this="not", expressions=[part.this])
    if isinstance(part, exp.If):
        args = [part.this, part.args.get("true"), part.args.get("false")]
        return exp.Anonymous(this="if", expressions=[a for a in args if a is not None])
    if isinstance(part, exp.Paren) and isinstance(part.this, exp.Expr):
        return part.this
    if isinstance(part, exp.TimestampTrunc) and "clickhouse_name" in part.meta:
        return exp.Anonymous(this=part.meta["clickhouse_name"], expressions=[part.this])
    return part
