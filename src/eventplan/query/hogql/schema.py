"""PostHog's tables (`events`, `persons`, `person_distinct_ids`, `sessions`, `groups`)
over our store.

Each is a subquery over the store's own tables, scoped to one project: a HogQL query
names `events` and reads this, never the store's tables themselves. A field resolves
to an expression over the subquery's columns; `properties.x` reads the typed column
the plan gave `x` before the JSON rest, and is typed as PostHog types a property
(a number where the plan says number, a boolean where boolean, else text).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from eventplan.query.sql import DIALECTS, Aliases, Compiler
from eventplan.store import Store
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
# PostHog's session properties we can give: those made of the events themselves.
SESSION_FIELDS = (
    "session_id",
    "distinct_id",
    "$start_timestamp",
    "$end_timestamp",
    "$session_duration",
    "$entry_current_url",
    "$exit_current_url",
    "$pageview_count",
    "$is_bounce",
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
        Table("sessions", SESSION_FIELDS, (), SESSION_FIELDS),
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
    reads: set[str] = field(default_factory=set)  # the subquery's columns the query reads


class Resolver:
    """Fields of PostHog's tables as SQL text of the store's dialect, and the scoped
    subqueries behind them, which hold only the columns the query reads."""

    def __init__(self, store: Store, project: str, aliases: Aliases | None = None) -> None:
        self.store = store
        self.dialect = store.dialect
        self.project = DIALECTS[self.dialect].text_literal(project)
        self.aliases = aliases or Aliases()
        self._columns_of: dict[str, list[str]] = {}
        for column in store.columns:
            self._columns_of.setdefault(column.key, []).append(column.name)

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
        compiler = Compiler(self.store.columns, self.dialect, alias, self.aliases)
        if head == "properties":
            if not rest:
                source.reads.add("properties")
                return f"{alias}.properties"
            source.reads.add("properties_rest")
            if len(rest) > 1:
                return compiler.rest(*rest)
            for name in self.aliases.stored_names(rest[0]):
                source.reads.update(self._columns_of.get(name, []))
            return compiler.typed(rest[0])
        if head == "person":
            return self._person_field(source, alias, rest)
        if head in ("$session_id", "$window_id", "elements_chain") and not rest:
            key = "$elements_chain" if head == "elements_chain" else head
            source.reads.update(["properties_rest", *self._columns_of.get(key, [])])
            text = compiler.text(key)
            return f"COALESCE({text}, '')" if head == "elements_chain" else text
        if head in EVENT_FIELDS and not rest:
            source.reads.add(head)
            return f"{alias}.{quote(head)}"
        return None

    def _person_field(self, source: Source, alias: str, rest: list[str]) -> str | None:
        if rest in (["id"], []):
            source.reads.add("person_id")
            return f"{alias}.person_id"
        if rest[0] == "properties":
            source.reads.add("person_properties")
            return self._json(f"{alias}.person_properties", rest[1:])
        if rest == ["created_at"]:
            source.reads.add("person_created_at")
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
            return self._events(source)
        if name == "persons":
            return (
                f"SELECT {d.as_text('person_id')} AS id, properties, created_at "
                f"FROM persons WHERE project = {p}"
            )
        if name == "sessions":
            return self._sessions()
        if name == "person_distinct_ids":
            return (
                f"SELECT distinct_id, {d.as_text('person_id')} AS person_id "
                f"FROM person_distinct_ids WHERE project = {p}"
            )
        return (
            "SELECT group_type, group_key AS key, properties, updated_at AS created_at, "
            f"updated_at FROM groups WHERE project = {p}"
        )

    def _sessions(self) -> str:
        """A session: the events with one `$session_id`, from the first to the last."""
        d = DIALECTS[self.dialect]
        compiler = Compiler(self.store.columns, self.dialect)
        session, url = compiler.text("$session_id"), compiler.text("$current_url")
        pageviews = d.count_if("e.event = '$pageview'")
        start, end = "min(e.timestamp)", "max(e.timestamp)"
        return (
            f"SELECT {session} AS session_id, "
            f"{d.value_at('min', 'e.distinct_id', 'e.timestamp')} AS distinct_id, "
            f'{start} AS "$start_timestamp", {end} AS "$end_timestamp", '
            f'{d.seconds_between(start, end)} AS "$session_duration", '
            f'{d.value_at("min", url, "e.timestamp")} AS "$entry_current_url", '
            f'{d.value_at("max", url, "e.timestamp")} AS "$exit_current_url", '
            f'{pageviews} AS "$pageview_count", '
            f'{d.as_boolean(f"{pageviews} <= 1")} AS "$is_bounce" '
            f"FROM events_data e WHERE e.project = {self.project} AND {session} IS NOT NULL "
            f"GROUP BY {session}"
        )

    def _events(self, source: Source) -> str:
        """The events subquery: the person's merges joined only when a person field is
        read, the whole `properties` built only when it is."""
        d = DIALECTS[self.dialect]
        person = d.as_text(d.person)
        reads = source.reads
        people = reads & {"person_properties", "person_created_at"}
        columns = []
        for name in sorted(reads):
            if name == "person_id":
                columns.append(f"{person} AS person_id")
            elif name == "properties":
                columns.append(f"{self.store.properties_sql('e')} AS properties")
            elif name in people:
                columns.append(f"pp.{name.removeprefix('person_')} AS {name}")
            elif name == "event" and self.aliases.events:
                columns.append(f"{self.aliases.planned_sql('e.event', d)} AS event")
            else:
                columns.append(f"e.{quote(name)} AS {quote(name)}")
        tables = d.events_with_person if people or "person_id" in reads else "events_data e"
        if people:
            tables += (
                " LEFT JOIN persons pp ON pp.project = e.project "
                f"AND {d.as_text('pp.person_id')} = {person}"
            )
        return (
            f"SELECT {', '.join(columns) or '1 AS one'} FROM {tables} "
            f"WHERE e.project = {self.project}"
        )
