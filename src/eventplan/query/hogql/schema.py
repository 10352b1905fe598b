"""PostHog's tables (`events`, `persons`, `person_distinct_ids`, `groups`) over our store.

Each is a subquery over the store's own tables, scoped to one project: a HogQL query
names `events` and reads this, never the store's tables themselves. A field resolves
to an expression over the subquery's columns; `properties.x` reads the typed column
the plan gave `x` before the JSON rest, and is typed as PostHog types a property
(a number where the plan says number, else text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from eventplan.query.sql import DIALECTS, Compiler
from eventplan.store import Store
from eventplan.store.clickhouse import value_sql
from eventplan.store.columns import quote

EVENT_FIELDS = ("uuid", "event", "distinct_id", "timestamp", "created_at", "person_id")
# What `SELECT *` from events gives in PostHog, in its order.
EVENT_STAR = (
    "uuid",
    "event",
    "properties",
    "timestamp",
    "distinct_id",
    "elements_chain",
    "created_at",
    "$session_id",
    "$window_id",
)


@dataclass(frozen=True)
class Table:
    """A PostHog table: its plain fields, the JSON ones a name can dot into, `*`."""

    name: str
    fields: tuple[str, ...]
    json_fields: tuple[str, ...] = ("properties",)
    star: tuple[str, ...] = ()

    def has(self, name: str) -> bool:
        return name in self.fields or name in self.json_fields or name in self.star


TABLES = {
    t.name: t
    for t in (
        Table("events", EVENT_FIELDS, ("properties",), EVENT_STAR),
        Table("persons", ("id", "created_at"), ("properties",), ("id", "properties", "created_at")),
        Table(
            "person_distinct_ids", ("distinct_id", "person_id"), (), ("distinct_id", "person_id")
        ),
        Table(
            "groups",
            ("key", "group_type", "created_at", "updated_at"),
            ("properties",),
            ("group_type", "key", "properties", "created_at"),
        ),
    )
}


@dataclass
class Source:
    """One PostHog table in one FROM or JOIN of a query, under `alias`."""

    table: Table
    alias: str
    node: exp.Expr  # the table in the query, which the subquery replaces
    with_person: bool = False  # an events source joins the person when a field needs it


class Resolver:
    """Fields of PostHog's tables as SQL text of the store's dialect, and the scoped
    subqueries behind them."""

    def __init__(self, store: Store, project: str) -> None:
        self.store = store
        self.dialect = store.dialect
        self.project = value_sql(project)

    def field(self, source: Source, path: Sequence[str]) -> str | None:
        """SQL for `path` (`properties`, `$browser`) read from `source`; None when the
        table has no such field."""
        alias = quote(source.alias)
        head, rest = path[0], list(path[1:])
        if source.table.name == "events":
            return self._event_field(source, alias, head, rest)
        if head in source.table.json_fields:
            return self._json(f"{alias}.{quote(head)}", rest)
        if head in source.table.fields and not rest:
            return f"{alias}.{quote(head)}"
        return None

    def _event_field(self, source: Source, alias: str, head: str, rest: list[str]) -> str | None:
        compiler = Compiler(self.store.columns, self.dialect, alias)
        if head == "properties":
            if not rest:
                return f"{alias}.properties"
            return compiler.typed(rest[0]) if len(rest) == 1 else compiler.rest(*rest)
        if head == "person":
            return self._person_field(source, alias, rest)
        if head in ("$session_id", "$window_id") and not rest:
            return compiler.text(head)
        if head == "elements_chain" and not rest:
            return f"COALESCE({compiler.text('$elements_chain')}, '')"
        if head in EVENT_FIELDS and not rest:
            return f"{alias}.{quote(head)}"
        return None

    def _person_field(self, source: Source, alias: str, rest: list[str]) -> str | None:
        if rest in (["id"], []):
            return f"{alias}.person_id"
        source.with_person = True
        if rest[0] == "properties":
            return self._json(f"{alias}.person_properties", rest[1:])
        if rest == ["created_at"]:
            return f"{alias}.person_created_at"
        return None

    def _json(self, column: str, keys: Sequence[str]) -> str:
        return DIALECTS[self.dialect].json_text(column, keys) if keys else column

    def subquery(self, source: Source) -> str:
        """The project's rows of the table, in PostHog's shape."""
        p = self.project
        d = DIALECTS[self.dialect]
        name = source.table.name
        if name == "events":
            typed = "".join(f", e.{quote(c.name)}" for c in self.store.columns)
            person = d.as_text(d.person)
            joins = d.events_with_person
            extra = ""
            if source.with_person:
                extra = ", pp.properties AS person_properties, pp.created_at AS person_created_at"
                joins += (
                    " LEFT JOIN persons pp ON pp.project = e.project "
                    f"AND {d.as_text('pp.person_id')} = {person}"
                )
            return (
                "SELECT e.uuid AS uuid, e.event AS event, e.distinct_id AS distinct_id, "
                f"{person} AS person_id, e.timestamp AS timestamp, "
                f"e.created_at AS created_at, e.properties_rest AS properties_rest{typed}, "
                f"{self.store.properties_sql('e')} AS properties{extra} "
                f"FROM {joins} WHERE e.project = {p}"
            )
        if name == "persons":
            return (
                f"SELECT {d.as_text('person_id')} AS id, properties, created_at "
                f"FROM persons WHERE project = {p}"
            )
        if name == "person_distinct_ids":
            return (
                f"SELECT distinct_id, {d.as_text('person_id')} AS person_id "
                f"FROM person_distinct_ids WHERE project = {p}"
            )
        return (
            "SELECT group_type, group_key AS key, properties, updated_at AS created_at, "
            f"updated_at FROM groups WHERE project = {p}"
        )
