"""Typed columns derived from the plan.

The plan knows every property's type, so each planned property gets its own
column (`p_<name>`), and only what the plan does not type stays in a JSON column.
A name planned with two types on different events (`status` is a string on
`chat_message_stream` and an integer on `openrouter.models_fetch_failed`) gets one
column per type, the later one suffixed with its type. The store records which
column holds what, so a name never changes once data is in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from eventplan.plan.model import Plan, PropertyType
from eventplan.plan.posthog import BOT_NAME

SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "datetime": "VARCHAR",  # kept as sent (RFC 3339 text): exact round trip into `properties`
}


@dataclass(frozen=True)
class Column:
    name: str  # the SQL column
    key: str  # the property it holds
    type: PropertyType

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


# Typed in every store, planned or not: queries leave bots out by it on every event.
BUILTIN_TYPES: Final[tuple[tuple[str, PropertyType], ...]] = ((BOT_NAME, "string"),)


def typed_properties(plan: Plan, event: str) -> dict[str, PropertyType]:
    """The properties of an event a store keeps in typed columns, by key: the
    built-in ones every event has, then the plan's (none for an event it lacks)."""
    planned = plan.properties_of(event) if event in plan.events else {}
    return {**dict(BUILTIN_TYPES), **{prop.name: prop.type for prop in planned.values()}}


def planned_types(plans: Iterable[Plan]) -> list[tuple[str, PropertyType]]:
    """Every (property, type) pair the plans define, and the built-in ones, in a
    stable order."""
    pairs = {
        (prop.name, prop.type)
        for plan in plans
        for event in plan.events
        for prop in plan.properties_of(event).values()
    }
    return sorted(pairs | set(BUILTIN_TYPES))


def new_column(prop: str, type_: PropertyType, taken: set[str]) -> Column:
    """A column for a pair the store does not have yet; existing names never change.
    SQL names ignore case, so `Size` and `size` are two names only with a suffix."""
    lowered = {name.lower() for name in taken}
    name = f"p_{prop}"
    if name.lower() in lowered:
        name = f"p_{prop}__{type_}"
    number = 2
    while name.lower() in lowered:
        name = f"p_{prop}__{type_}{number}"
        number += 1
    return Column(name=name, key=prop, type=type_)


def missing_columns(
    plans: Iterable[Plan], catalog: Iterable[tuple[str, str, str]] = ()
) -> list[Column]:
    """Columns the plans need that a catalogue of (name, property, type) lacks."""
    catalog = list(catalog)
    taken = {name for name, _, _ in catalog}
    have = {(prop, type_) for _, prop, type_ in catalog}
    added = []
    for prop, type_ in planned_types(plans):
        if (prop, type_) in have:
            continue
        column = new_column(prop, type_, taken)
        taken.add(column.name)
        added.append(column)
    return added


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
