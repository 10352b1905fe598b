"""The plan as Python objects: events, properties, property groups, dashboards, alerts.

Everything else (the validator, the privacy policy, the JSON Schema export, codegen,
the capture server's typed columns) reads these objects; nothing re-reads the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from eventplan.query.model import Interval, Math, Operator

PropertyType = Literal["string", "integer", "number", "boolean", "datetime"]
PROPERTY_TYPES: tuple[PropertyType, ...] = ("string", "integer", "number", "boolean", "datetime")

PrivacyPolicy = Literal["keep", "hash", "mask", "truncate", "drop"]
PRIVACY_POLICIES: tuple[PrivacyPolicy, ...] = ("keep", "hash", "mask", "truncate", "drop")

Surface = Literal["web", "server", "extension"]
SURFACES: tuple[Surface, ...] = ("web", "server", "extension")

UnplannedPropertyPolicy = Literal["allow", "warn", "reject"]
# What gateway mode forwards to PostHog, by verdict: plan-wide, and per event.
ForwardPolicy = Literal["all", "valid", "valid+invalid"]
EventForward = Literal["always", "valid", "never"]
SystemEventPolicy = Literal["valid", "unplanned"]

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Privacy:
    """What the capture server does to a property's value before anything is stored."""

    policy: PrivacyPolicy = "keep"
    keep_last: int = 4  # mask: characters left visible at the end
    length: int = 256  # truncate: characters kept


@dataclass(frozen=True)
class Property:
    name: str
    type: PropertyType
    description: str = ""
    required: bool = False
    nullable: bool = False
    enum: tuple[Scalar, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    privacy: Privacy = field(default_factory=Privacy)
    examples: tuple[Scalar, ...] = ()
    line: int = 0
    owner: str = ""  # the event or property group that defines it
    renamed_from: tuple[str, ...] = ()  # its names before: sent so, counted as this


@dataclass(frozen=True)
class Trigger:
    file: str = ""
    hook: str = ""


@dataclass(frozen=True)
class AppliesTo:
    """Which events a property group applies to: all, those on some surfaces, or a list."""

    all: bool = False
    surfaces: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    def matches(self, event: Event) -> bool:
        if self.all:
            return True
        if event.name in self.events:
            return True
        return any(surface in self.surfaces for surface in event.surfaces)


@dataclass(frozen=True)
class PropertyGroup:
    name: str
    description: str
    applies_to: AppliesTo
    properties: dict[str, Property]
    line: int = 0


@dataclass(frozen=True)
class Forwarding:
    """What gateway mode does with one event: forward it (by verdict; None: as the
    plan-wide `forward` says), to a `sample` of people, and whether an event it does
    not forward is still kept in the local store."""

    when: EventForward | None = None
    sample: float = 1.0
    keep_local: bool = True


@dataclass(frozen=True)
class Event:
    name: str
    description: str = ""
    owner: str = ""
    surfaces: tuple[str, ...] = ()
    trigger: Trigger = field(default_factory=Trigger)
    value: str = ""
    properties: dict[str, Property] = field(default_factory=dict)
    forwarding: Forwarding = field(default_factory=Forwarding)
    renamed_from: tuple[str, ...] = ()  # its names before: sent so, counted as this
    legacy: bool = False
    line: int = 0


@dataclass(frozen=True)
class Filter:
    """`property operator value`, as dashboards, alerts and queries use it."""

    property: str
    operator: Operator = "exact"
    value: Scalar | tuple[Scalar, ...] | None = None
    line: int = 0


@dataclass(frozen=True)
class EventRef:
    """One series of a trends insight, or one step of a funnel."""

    event: str
    filters: tuple[Filter, ...] = ()
    math: Math = "total"
    math_property: str | None = None
    name: str = ""
    line: int = 0


@dataclass(frozen=True)
class Insight:
    name: str
    kind: Literal["trends", "funnel"]
    title: str = ""
    description: str = ""
    series: tuple[EventRef, ...] = ()
    formula: str | None = None
    breakdowns: tuple[str, ...] = ()
    interval: Interval = "day"
    display: str = ""
    options: dict[str, object] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Dashboard:
    name: str
    title: str = ""
    description: str = ""
    insights: tuple[Insight, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Threshold:
    lower: float | None = None
    upper: float | None = None


AlertCondition = Literal[
    "absolute_value", "relative_increase", "relative_decrease", "above_baseline"
]


@dataclass(frozen=True)
class Alert:
    name: str
    description: str
    insight: Insight
    condition: AlertCondition
    threshold: Threshold
    frequency: str = "hourly"
    min_count: int = 0  # events in the checked interval (all series) below which it stays quiet
    factor: float = 3.0  # above_baseline: value above factor × median of the baseline
    baseline_intervals: int = 168  # above_baseline: how many earlier intervals (7 days hourly)
    owner: str = ""
    line: int = 0


@dataclass(frozen=True)
class Naming:
    event_pattern: str = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*\.[a-z][a-z0-9]*(_[a-z0-9]+)*$"
    property_pattern: str = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
    legacy_events: tuple[str, ...] = ()
    legacy_properties: tuple[str, ...] = ()


@dataclass(frozen=True)
class Acknowledgement:
    """A lint warning the plan's authors have looked at, with their reason."""

    code: str
    subjects: tuple[str, ...]
    reason: str
    line: int = 0


@dataclass(frozen=True)
class NamedWrapper:
    """A capture function `status` cannot see into (a package's, say): where it takes
    the event and the properties (a position, or a Python keyword)."""

    name: str
    event: int | str = 0
    properties: int | str | None = 1


@dataclass(frozen=True)
class CodeRules:
    """How `eventplan status` reads a codebase: surfaces by path (a glob → web, server
    or extension, before what a file says of itself), and wrappers it cannot infer."""

    surfaces: tuple[tuple[str, str], ...] = ()
    wrappers: tuple[NamedWrapper, ...] = ()


@dataclass(frozen=True)
class Plan:
    name: str
    version: str
    description: str = ""
    naming: Naming = field(default_factory=Naming)
    unplanned_properties: UnplannedPropertyPolicy = "warn"
    forward: ForwardPolicy = "valid+invalid"  # gateway mode
    system_events: SystemEventPolicy = "valid"
    hash_salt_env: str = "EVENTPLAN_HASH_SALT"
    events: dict[str, Event] = field(default_factory=dict)
    groups: dict[str, PropertyGroup] = field(default_factory=dict)
    dashboards: tuple[Dashboard, ...] = ()
    alerts: tuple[Alert, ...] = ()
    acknowledged: tuple[Acknowledgement, ...] = ()
    code: CodeRules = field(default_factory=CodeRules)
    path: str = ""

    def event_renames(self) -> dict[str, str]:
        """Each old event name (`renamed_from`) → the planned name it is now."""
        return {old: name for name, event in self.events.items() for old in event.renamed_from}

    def property_renames(self, event_name: str) -> dict[str, str]:
        """An event's old property names → the planned names they are now."""
        if event_name not in self.events:
            return {}
        return {
            old: key
            for key, prop in self.properties_of(event_name).items()
            for old in prop.renamed_from
        }

    def groups_for(self, event: Event) -> list[PropertyGroup]:
        return [group for group in self.groups.values() if group.applies_to.matches(event)]

    def properties_of(self, event_name: str) -> dict[str, Property]:
        """Every property an event may carry: the groups' that apply to it, then its own.

        An event's own definition wins over a group's: the seed registers `model_id`
        as a super-property and also names it on `chat_message_submitted`.
        """
        event = self.events[event_name]
        merged: dict[str, Property] = {}
        for group in self.groups_for(event):
            merged.update(group.properties)
        merged.update(event.properties)
        return merged

    def all_property_names(self) -> set[str]:
        names = {name for event in self.events.values() for name in event.properties}
        names.update(name for group in self.groups.values() for name in group.properties)
        return names
