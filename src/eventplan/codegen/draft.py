"""A first plan drafted from what a team already sends: `eventplan init --from-code`.

Two sources, either or both: the code (`status`'s reading of it: each event's names,
properties, surfaces and trigger file) and the traffic (stored events or a PostHog
export: each property's type, whether every event carries it, and the few values a
text property takes). The draft passes `lint`: a name that breaks the naming
convention is listed as a legacy name, with the conforming name it could take
suggested in its description, never an error to fix before the plan can be used.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventplan.codegen.source import Module
from eventplan.codegen.status import Status, surface_of
from eventplan.plan.model import PROPERTY_TYPES, Naming, Plan
from eventplan.plan.validator import type_name

ENUM_MAX_VALUES = 12  # a text property with at most this many values is an enum
TYPO_RATIO = 5  # a value this many times rarer than a look-alike is its misspelling
TYPO_SIMILARITY = 0.8  # difflib's ratio between a misspelling and the value it spells
REQUIRED_SHARE = 0.995  # carried by this share of an event's sends: required
TEXT_VALUES_KEPT = 200  # distinct values counted per property, at most


@dataclass
class PropertyStats:
    seen: int = 0
    types: Counter[str] = field(default_factory=Counter)
    values: Counter[str] = field(default_factory=Counter)


@dataclass
class EventStats:
    seen: int = 0
    properties: dict[str, PropertyStats] = field(default_factory=dict)
    surfaces: set[str] = field(default_factory=set)
    files: Counter[str] = field(default_factory=Counter)


def json_type(value: Any) -> str | None:
    """The plan's type of a JSON value (None for null, objects and arrays)."""
    name = type_name(value)  # the validator's words: "integer", "array", "null", …
    return name if name in PROPERTY_TYPES else None


def observe_traffic(events: Iterable[Any], stats: dict[str, EventStats]) -> int:
    """Count each event's properties, their types and text values; returns how many
    events were read. PostHog's own `$` properties are left to PostHog."""
    read = 0
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            continue
        properties = event.get("properties")
        entry = stats.setdefault(event["event"], EventStats())
        entry.seen += 1
        read += 1
        for key, value in properties.items() if isinstance(properties, dict) else ():
            if key.startswith("$") or key in ("token", "distinct_id"):
                continue
            prop = entry.properties.setdefault(key, PropertyStats())
            prop.seen += 1
            kind = json_type(value)
            if kind is not None:
                prop.types[kind] += 1
            if isinstance(value, str) and (
                value in prop.values or len(prop.values) < TEXT_VALUES_KEPT
            ):
                prop.values[value] += 1
    return read


def observe_code(status: Status, modules: dict[str, Module], stats: dict[str, EventStats]) -> None:
    """Each event the code sends, with its properties, surfaces and files."""
    blank = Plan(name="draft", version="0")  # no `code:` rules yet: files say what they are
    for call in status.calls:
        entry = stats.setdefault(call.event, EventStats())
        entry.files[call.path] += 1
        module = modules.get(call.path)
        surface = surface_of(module, blank)[0] if module is not None else None
        if surface is not None:
            entry.surfaces.add(surface)
        for key in call.properties:
            entry.properties.setdefault(key, PropertyStats())


def conforming(name: str, pattern: str, separator: str) -> str:
    """A name the convention would take: camelCase and dashes made snake_case, and for
    an event without a scope, the first word made its scope."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").lower()
    snake = re.sub(r"[^a-z0-9_.]+", "_", snake).strip("_.")
    if separator and "." not in snake and "_" in snake:
        scope, _, action = snake.partition("_")
        snake = f"{scope}.{action}"
    return snake if re.search(pattern, snake) else name


def draft(name: str, stats: dict[str, EventStats]) -> dict[str, Any]:
    """The draft plan as the YAML file holds it."""
    naming = Naming()
    events = {
        event_name: _event(event_name, stats[event_name], naming)
        for event_name in sorted(stats)
        if not event_name.startswith("$") or event_name == "$pageview"  # PostHog's are valid
    }
    legacy_events = [
        e for e in events if not e.startswith("$") and not re.search(naming.event_pattern, e)
    ]
    legacy_properties = sorted(
        {
            key
            for spec in events.values()
            for key in spec.get("properties", {})
            if not re.search(naming.property_pattern, key)
        }
    )
    plan: dict[str, Any] = {
        "plan": name,
        "version": "0.1.0",
        "description": "Drafted by eventplan init from the code and traffic it read: review it.",
    }
    if legacy_events or legacy_properties:
        plan["naming"] = {"legacy_events": legacy_events, "legacy_properties": legacy_properties}
    plan["unplanned_properties"] = "warn"
    plan["events"] = events
    return plan


def _event(name: str, entry: EventStats, naming: Naming) -> dict[str, Any]:
    """One event of the draft: where it was seen, sent from, and its properties."""
    description = (
        f"Seen {entry.seen} time(s) in the traffic read." if entry.seen else "Sent by the code."
    )
    suggestion = conforming(name, naming.event_pattern, ".")
    if not name.startswith("$") and suggestion != name:
        description += f" Suggested name: {suggestion} (rename it with renamed_from)."
    spec: dict[str, Any] = {"description": description, "owner": "unassigned"}
    if entry.surfaces:
        spec["surfaces"] = sorted(entry.surfaces)
    if entry.files:
        spec["trigger"] = {
            "file": entry.files.most_common(1)[0][0],
            "hook": "found by eventplan init",
        }
    if entry.properties:
        spec["properties"] = {
            key: _property(entry.properties[key], entry.seen) for key in sorted(entry.properties)
        }
    return spec


def _property(stats: PropertyStats, sends: int) -> dict[str, Any]:
    kind = _type(stats)
    spec: dict[str, Any] = {"type": kind}
    if sends and stats.seen >= REQUIRED_SHARE * sends:
        spec["required"] = True
    if kind == "string" and stats.values:
        values = _without_typos(stats.values)
        counted = sum(stats.values.values())
        # Few values, each seen more than once, and many more sends than values: an enum.
        if (
            len(values) <= ENUM_MAX_VALUES
            and counted >= 5 * len(values)
            and all(stats.values[v] > 1 for v in values)
        ):
            spec["enum"] = sorted(values)
    return spec


def _without_typos(values: Counter[str]) -> list[str]:
    """The values but those that look like a misspelling of a far commoner one
    (`completex` beside `completed`): a broken send is not a value to plan."""
    kept = []
    for value, count in values.items():
        typo = any(
            other != value
            and values[other] >= TYPO_RATIO * count
            and difflib.SequenceMatcher(None, value, other).ratio() >= TYPO_SIMILARITY
            for other in values
        )
        if not typo:
            kept.append(value)
    return kept


def _type(stats: PropertyStats) -> str:
    if not stats.types:
        return "string"  # seen only in code, or only as null
    top, count = stats.types.most_common(1)[0]
    if top == "integer" and stats.types.get("number", 0):
        return "number"  # 2 and 2.5 alike
    return top if count else "string"
