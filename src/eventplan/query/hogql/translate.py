"""A parsed HogQL query, translated into one SELECT of the store's engine.

Every table a query names becomes the project's rows of that PostHog table (a
subquery `schema.Resolver` writes), every field an expression over it, every function
its engine's form. Names that are nothing of the query's (a table, field or function
PostHog would not know) are refused with PostHog's words for it. The project's scope
is part of the subqueries, never taken from the text.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from functools import cache

import sqlglot
from sqlglot import exp

from eventplan.query.hogql import functions
from eventplan.query.hogql.dialect import HogQLError
from eventplan.query.hogql.names import column_name
from eventplan.query.hogql.schema import TABLES, Resolver, Source


@dataclass
class Scope:
    """What the names of one SELECT can reach: its sources, its aliases, outer scopes."""

    outer: Scope | None = None
    sources: dict[str, Source | list[str]] = field(default_factory=dict)
    ctes: dict[str, list[str]] = field(default_factory=dict)
    aliases: set[str] = field(default_factory=set)

    def cte(self, name: str) -> list[str] | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return scope.ctes[name]
            scope = scope.outer
        return None

    def find(self, parts: list[str]) -> tuple[str, Source | list[str], list[str]] | None:
        """The source a field path starts from (by its alias, else the first source that
        has the field), with the path left to read in it; outer scopes after this one."""
        scope: Scope | None = self
        while scope is not None:
            if len(parts) > 1 and parts[0] in scope.sources:
                return parts[0], scope.sources[parts[0]], parts[1:]
            for alias, source in scope.sources.items():
                has = parts[0] in source if isinstance(source, list) else source.table.has(parts[0])
                if has or (isinstance(source, Source) and _is_person(source, parts)):
                    return alias, source, parts
            scope = scope.outer
        return None


def _is_person(source: Source, parts: list[str]) -> bool:
    return source.table.name == "events" and parts[0] == "person"


class Translator:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.dialect = resolver.dialect  # sqlglot's name for it is the store's
        # Each table's subquery goes in as a name no query can guess, put in the text
        # once the tree is printed: its SQL is ours and need not be parsed again.
        self.subqueries: dict[str, str] = {}
        self._nonce = secrets.token_hex(8)

    def sql(self, tree: exp.Expr) -> str:
        """The translated tree as the engine's SQL, with the tables' subqueries."""
        text = str(tree.sql(dialect=self.dialect))
        for name, subquery in self.subqueries.items():
            text = text.replace(name, f"({subquery})")
        return text

    def query(self, node: exp.Expr, outer: Scope | None) -> list[str]:
        """Translate a SELECT or set operation in place; the names of its columns."""
        if isinstance(node, exp.Subquery):
            return self.query(node.this, outer)
        if isinstance(node, exp.SetOperation):
            names = self.query(node.left, outer)
            self.query(node.right, outer)
            return names
        if not isinstance(node, exp.Select):
            raise HogQLError(f"only SELECT queries are allowed, not {node.key.upper()}")
        return self.select(node, outer)

    def select(self, select: exp.Select, outer: Scope | None) -> list[str]:
        scope = Scope(outer)
        with_ = select.args.get("with_") or select.args.get("with")
        if with_ is not None:
            for cte in with_.expressions:
                scope.ctes[cte.alias] = self.query(cte.this, scope)
        for node in self._sources(select):
            self._source(node, scope)
        self._expand_stars(select, scope)
        scope.aliases = {p.alias for p in select.expressions if isinstance(p, exp.Alias)}
        names = [column_name(p) for p in select.expressions]
        self._functions(select)
        for nested in list(select.find_all(exp.Select, exp.SetOperation)):
            if (
                nested is not select
                and _owner(nested) is select
                and not _is_source(nested)
                and not isinstance(nested.parent, exp.SetOperation)
            ):
                self.query(nested, scope)
        for column in list(select.find_all(exp.Column)):
            if _owner(column) is select and not isinstance(column.this, exp.Star):
                self._field(column, scope)
        self._name_columns(select, names)
        for source in scope.sources.values():
            if isinstance(source, Source):
                self._replace_table(source)
        return names

    def _functions(self, select: exp.Select) -> None:
        """The select's own calls in the engine's terms, innermost first."""
        to_engine = functions.to_duckdb if self.dialect == "duckdb" else functions.to_clickhouse
        for node in reversed(list(select.walk())):
            if isinstance(node, exp.Func) and _owner(node) is select:
                new = to_engine(node)
                if new is not node:
                    node.replace(new)

    @staticmethod
    def _sources(select: exp.Select) -> list[exp.Expr]:
        from_ = select.args.get("from_") or select.args.get("from")
        found = [from_.this] if from_ is not None else []
        found.extend(join.this for join in select.args.get("joins") or [])
        return found

    def _source(self, node: exp.Expr, scope: Scope) -> None:
        if isinstance(node, exp.Subquery):
            # It sees the query's CTEs and outer scopes, not the sources beside it.
            around = Scope(outer=scope.outer, ctes=scope.ctes)
            alias = node.alias or f"_subquery{len(scope.sources)}"
            scope.sources[alias] = self.query(node.this, around)
            return
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            raise HogQLError(f"Unsupported table expression: {node.sql(dialect='clickhouse')}")
        name = node.name
        alias = node.alias or name
        if node.args.get("db") or node.args.get("catalog"):
            raise HogQLError(f"Unknown table `{node.sql(dialect='clickhouse')}`.")
        cte = scope.cte(name)
        if cte is not None:
            scope.sources[alias] = cte
        elif name in TABLES:
            scope.sources[alias] = Source(TABLES[name], alias, node)
        else:
            raise HogQLError(f"Unknown table `{name}`.")

    def _expand_stars(self, select: exp.Select, scope: Scope) -> None:
        """`*` and `e.*`: the fields PostHog's `*` gives, one column each."""
        expanded: list[exp.Expr] = []
        for projection in select.expressions:
            star_of = _star_source(projection)
            if star_of is None:
                expanded.append(projection)
                continue
            for alias, source in scope.sources.items():
                if star_of and alias != star_of:
                    continue
                names = source if isinstance(source, list) else list(source.table.star)
                expanded.extend(exp.column(n, table=alias, quoted=True) for n in names)
        select.set("expressions", expanded)

    def _field(self, column: exp.Column, scope: Scope) -> None:
        node, parts = _field_path(column)
        found = scope.find(parts)
        if found is None:
            if len(parts) == 1 and _is_alias(parts[0], scope):
                return
            raise HogQLError(f"Unable to resolve field: {'.'.join(parts)}")
        alias, source, path = found
        if isinstance(source, list):
            if len(path) != 1 or path[0] not in source:
                raise HogQLError(f"Unable to resolve field: {'.'.join(parts)}")
            node.replace(exp.column(path[0], table=alias, quoted=True))
            return
        sql = self.resolver.field(source, path)
        if sql is None:
            raise HogQLError(f"Unable to resolve field: {'.'.join(parts)}")
        node.replace(_parsed(sql, self.dialect).copy())

    @staticmethod
    def _name_columns(select: exp.Select, names: list[str]) -> None:
        """Each column under PostHog's name, so an outer query can refer to it."""
        select.set(
            "expressions",
            [
                p if isinstance(p, exp.Alias) else exp.alias_(p, name, quoted=True)
                for p, name in zip(select.expressions, names, strict=True)
            ],
        )

    def _replace_table(self, source: Source) -> None:
        name = f"eventplan_{self._nonce}_{len(self.subqueries)}_table"
        self.subqueries[name] = self.resolver.subquery(source)
        alias = exp.TableAlias(this=exp.to_identifier(source.alias, quoted=True))
        source.node.replace(exp.Table(this=exp.to_identifier(name), alias=alias))


@cache
def _parsed(sql: str, dialect: str) -> exp.Expr:
    return sqlglot.parse_one(sql, read=dialect)


def _owner(node: exp.Expr) -> exp.Expr | None:
    """The SELECT a node belongs to (the nearest one around it)."""
    parent = node.parent
    while parent is not None and not isinstance(parent, exp.Select):
        parent = parent.parent
    return parent


def _is_source(query: exp.Expr) -> bool:
    parent = query.parent
    in_from = isinstance(parent, exp.Subquery) and isinstance(parent.parent, exp.From | exp.Join)
    return in_from or isinstance(parent, exp.CTE)


def _is_alias(name: str, scope: Scope) -> bool:
    current: Scope | None = scope
    while current is not None:
        if name in current.aliases:
            return True
        current = current.outer
    return False


def _star_source(projection: exp.Expr) -> str | None:
    """'' for `*`, the alias for `e.*`, None for anything else."""
    if isinstance(projection, exp.Star):
        return ""
    if isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
        return str(projection.table)
    return None


def _field_path(column: exp.Column) -> tuple[exp.Expr, list[str]]:
    """A field's whole path (`properties.$set.$geoip_city_name`, `properties['a/b']`)
    and the node that holds all of it."""
    parts = [part.name for part in column.parts]
    node: exp.Expr = column
    while True:
        parent = node.parent
        if isinstance(parent, exp.Dot) and parent.this is node:
            parts.append(parent.expression.name)
        elif (
            isinstance(parent, exp.Bracket)
            and parent.this is node
            and len(parent.expressions) == 1
            and isinstance(parent.expressions[0], exp.Literal)
            and parent.expressions[0].is_string
        ):
            parts.append(parent.expressions[0].this)
        else:
            return node, parts
        node = parent
