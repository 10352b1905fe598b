"""Read a plan file into a `Plan`, collecting every structural problem with its line.

`read_plan` returns the plan it could build plus every finding, so one run reports
them all; `eventplan.plan.load_plan` adds the linter's hard rules and raises
`PlanError` if the file has any error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import yaml

from eventplan.plan.model import (
    PRIVACY_POLICIES,
    PROPERTY_TYPES,
    SURFACES,
    Acknowledgement,
    Alert,
    AlertCondition,
    AppliesTo,
    CodeRules,
    Dashboard,
    Event,
    EventForward,
    EventRef,
    Filter,
    Forwarding,
    ForwardPolicy,
    Insight,
    NamedWrapper,
    Naming,
    Plan,
    Privacy,
    Property,
    PropertyGroup,
    Scalar,
    SystemEventPolicy,
    Threshold,
    Trigger,
    UnplannedPropertyPolicy,
)
from eventplan.plan.yamlsource import SourceList, SourceMap, load_yaml
from eventplan.query.model import Interval, Math, Operator

Severity = Literal["error", "warning"]

# The keys each part of the plan file may have.
PLAN_KEYS = (
    "plan",
    "version",
    "description",
    "naming",
    "unplanned_properties",
    "forward",
    "system_events",
    "privacy",
    "property_groups",
    "events",
    "dashboards",
    "alerts",
    "acknowledge",
    "code",
)
EVENT_KEYS = (
    "description",
    "owner",
    "surfaces",
    "trigger",
    "value",
    "properties",
    "forward",
    "sample",
    "keep_local",
    "renamed_from",
)
PROPERTY_KEYS = (
    "type",
    "description",
    "required",
    "nullable",
    "enum",
    "minimum",
    "maximum",
    "min_length",
    "max_length",
    "pattern",
    "privacy",
    "examples",
    "renamed_from",
)
INSIGHT_KEYS = (
    "kind",
    "title",
    "description",
    "series",
    "steps",
    "formula",
    "breakdowns",
    "interval",
    "display",
    "options",
)
ALERT_KEYS = (
    "description",
    "insight",
    "condition",
    "threshold",
    "frequency",
    "min_count",
    "factor",
    "baseline_intervals",
    "owner",
)
# Each vocabulary is its Literal type, one registry: what the loader accepts is what
# the engine computes on every backend (read with `Reader.choice`).
Choice = TypeVar("Choice", bound=str)


@dataclass(frozen=True)
class Diagnostic:
    """One linter finding: rendered as `path:line: code: message`."""

    path: str
    line: int
    code: str
    message: str
    severity: Severity = "error"
    acknowledged: str = ""

    def render(self) -> str:
        text = f"{self.path}:{self.line}: {self.code}: {self.message}"
        if self.severity == "warning":
            text = f"{self.path}:{self.line}: {self.code} (warning): {self.message}"
        if self.acknowledged:
            text += f" [acknowledged: {self.acknowledged}]"
        return text


class _Reader:
    """Turns the YAML tree into model objects, noting problems instead of stopping."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.diagnostics: list[Diagnostic] = []

    def error(self, line: int, code: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, line, code, message, "error"))

    def warn(self, line: int, code: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(self.path, line, code, message, "warning"))

    # -- helpers ---------------------------------------------------------------

    def mapping(
        self, value: Any, line: int, where: str, duplicate_code: str = "duplicate_key"
    ) -> SourceMap:
        if isinstance(value, SourceMap):
            for key, key_line in value.duplicate_keys:
                self.error(key_line, duplicate_code, f"{where}: `{key}` is defined twice")
            return value
        if value is not None:
            self.error(line, "wrong_shape", f"{where} must be a mapping, got {_kind(value)}")
        empty = SourceMap()
        empty.line, empty.key_lines, empty.duplicate_keys = line, {}, []
        return empty

    def text(self, node: SourceMap, key: str, where: str, default: str = "") -> str:
        value = node.get(key, default)
        if value is None:
            return default
        if not isinstance(value, str | int | float):
            self.error(node.line_of(key), "wrong_shape", f"{where}.{key} must be text")
            return default
        return str(value)

    def choice(
        self, node: SourceMap, key: str, where: str, vocabulary: Any, default: Choice, code: str
    ) -> Choice:
        """A value of the `Literal` type `vocabulary`; anything else is the error `code`,
        and the default stands in for it so the rest of the plan can still be read."""
        allowed: tuple[str, ...] = get_args(vocabulary)
        value = self.text(node, key, where, default)
        if value not in allowed:
            self.error(
                node.line_of(key) or 0,
                code,
                f"{where}: {key} `{value}`; expected one of {', '.join(allowed)}",
            )
            return default
        return cast(Choice, value)

    def strings(self, node: SourceMap, key: str, where: str) -> tuple[str, ...]:
        value = node.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(node.line_of(key), "wrong_shape", f"{where}.{key} must be a list of names")
            return ()
        return tuple(value)

    def unknown_keys(self, node: SourceMap, allowed: tuple[str, ...], where: str) -> None:
        for key in node:
            if key not in allowed:
                self.error(
                    node.line_of(key),
                    "unknown_key",
                    f"{where}: unknown key `{key}` (expected one of: {', '.join(allowed)})",
                )

    # -- the plan --------------------------------------------------------------

    def plan(self, root: Any) -> Plan:
        top = self.mapping(root, 1, "the plan")
        self.unknown_keys(top, PLAN_KEYS, "the plan")
        name = self.text(top, "plan", "plan")
        if not name:
            self.error(top.line, "missing_key", "the plan needs a `plan:` name")
        version = self.text(top, "version", "plan", "0")
        unplanned: UnplannedPropertyPolicy = self.choice(
            top, "unplanned_properties", "plan", UnplannedPropertyPolicy, "warn", "unknown_policy"
        )
        system_events: SystemEventPolicy = self.choice(
            top, "system_events", "plan", SystemEventPolicy, "valid", "unknown_policy"
        )
        forward: ForwardPolicy = self.choice(
            top, "forward", "plan", ForwardPolicy, "valid+invalid", "unknown_policy"
        )
        privacy = self.mapping(top.get("privacy"), top.line_of("privacy"), "privacy")
        groups = self.groups(top)
        events = self.events(top)
        return Plan(
            name=name,
            version=version,
            description=self.text(top, "description", "plan"),
            naming=self.naming(top),
            unplanned_properties=unplanned,
            system_events=system_events,
            forward=forward,
            hash_salt_env=self.text(privacy, "hash_salt_env", "privacy", "EVENTPLAN_HASH_SALT"),
            events=events,
            groups=groups,
            dashboards=self.dashboards(top),
            alerts=self.alerts(top),
            acknowledged=self.acknowledgements(top),
            code=self.code_rules(top),
            path=self.path,
        )

    def code_rules(self, top: SourceMap) -> CodeRules:
        """`code:` — `surfaces:` (a path glob → a surface) and `wrappers:` (a function
        name → where it takes `event` and `properties`)."""
        node = self.mapping(top.get("code"), top.line_of("code"), "code")
        self.unknown_keys(node, ("surfaces", "wrappers"), "code")
        surfaces = self.mapping(node.get("surfaces"), node.line_of("surfaces"), "code.surfaces")
        pairs = []
        for glob, surface in surfaces.items():
            if surface not in SURFACES:
                self.error(
                    surfaces.line_of(glob),
                    "unknown_surface",
                    f"code.surfaces: {glob} is {surface!r}; expected one of {', '.join(SURFACES)}",
                )
                continue
            pairs.append((str(glob), str(surface)))
        wrappers = self.mapping(node.get("wrappers"), node.line_of("wrappers"), "code.wrappers")
        named = []
        for name, raw in wrappers.items():
            where = f"code.wrappers.{name}"
            spec = self.mapping(raw, wrappers.line_of(name), where)
            self.unknown_keys(spec, ("event", "properties"), where)
            event, properties = spec.get("event", 0), spec.get("properties", 1)
            for key, value in (("event", event), ("properties", properties)):
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int | str)
                ):
                    self.error(
                        spec.line_of(key), "wrong_shape", f"{where}.{key}: a position or a keyword"
                    )
                    break
            else:
                named.append(NamedWrapper(str(name), event, properties))
        return CodeRules(tuple(pairs), tuple(named))

    def naming(self, top: SourceMap) -> Naming:
        node = self.mapping(top.get("naming"), top.line_of("naming"), "naming")
        self.unknown_keys(
            node, ("events", "properties", "legacy_events", "legacy_properties"), "naming"
        )
        default = Naming()
        event_pattern = self.text(node, "events", "naming", default.event_pattern)
        property_pattern = self.text(node, "properties", "naming", default.property_pattern)
        for key, pattern in (("events", event_pattern), ("properties", property_pattern)):
            try:
                re.compile(pattern)
            except re.error as exc:
                self.error(node.line_of(key), "bad_pattern", f"naming.{key}: {exc}")
                # The rules still run, against the default convention.
                if key == "events":
                    event_pattern = default.event_pattern
                else:
                    property_pattern = default.property_pattern
        return Naming(
            event_pattern=event_pattern,
            property_pattern=property_pattern,
            legacy_events=self.strings(node, "legacy_events", "naming"),
            legacy_properties=self.strings(node, "legacy_properties", "naming"),
        )

    def groups(self, top: SourceMap) -> dict[str, PropertyGroup]:
        node = self.mapping(
            top.get("property_groups"), top.line_of("property_groups"), "property_groups"
        )
        groups: dict[str, PropertyGroup] = {}
        for name, raw in node.items():
            where = f"property group `{name}`"
            group = self.mapping(raw, node.line_of(name), where)
            self.unknown_keys(group, ("description", "applies_to", "properties"), where)
            groups[name] = PropertyGroup(
                name=name,
                description=self.text(group, "description", where),
                applies_to=self.applies_to(group, where),
                properties=self.properties(group, where, owner=f"group {name}"),
                line=node.line_of(name),
            )
        return groups

    def applies_to(self, group: SourceMap, where: str) -> AppliesTo:
        raw = group.get("applies_to", "all")
        if raw == "all":
            return AppliesTo(all=True)
        node = self.mapping(raw, group.line_of("applies_to"), f"{where}.applies_to")
        self.unknown_keys(node, ("surfaces", "events"), f"{where}.applies_to")
        surfaces = self.surfaces(node, where, f"{where}.applies_to")
        return AppliesTo(surfaces=surfaces, events=self.strings(node, "events", where))

    def surfaces(self, node: SourceMap, where: str, key_where: str) -> tuple[str, ...]:
        """The `surfaces:` list; each must be one the plan format knows."""
        surfaces = self.strings(node, "surfaces", key_where)
        for surface in surfaces:
            if surface not in SURFACES:
                self.error(
                    node.line_of("surfaces"),
                    "unknown_surface",
                    f"{where}: unknown surface `{surface}` (expected {', '.join(SURFACES)})",
                )
        return surfaces

    def events(self, top: SourceMap) -> dict[str, Event]:
        node = self.mapping(top.get("events"), top.line_of("events"), "events", "duplicate_event")
        if not node:
            self.error(node.line, "no_events", "the plan defines no events")
        events: dict[str, Event] = {}
        for name, raw in node.items():
            where = f"event `{name}`"
            spec = self.mapping(raw, node.line_of(name), where)
            self.unknown_keys(spec, EVENT_KEYS, where)
            surfaces = self.surfaces(spec, where, where)
            trigger = self.mapping(spec.get("trigger"), spec.line_of("trigger"), where)
            self.unknown_keys(trigger, ("file", "hook"), f"{where}.trigger")
            events[name] = Event(
                name=name,
                description=self.text(spec, "description", where),
                owner=self.text(spec, "owner", where),
                surfaces=surfaces,
                trigger=Trigger(
                    file=self.text(trigger, "file", where), hook=self.text(trigger, "hook", where)
                ),
                value=self.text(spec, "value", where),
                properties=self.properties(spec, where, owner=name),
                forwarding=self.forwarding(spec, where),
                renamed_from=self.old_names(spec, where),
                line=node.line_of(name),
            )
        return events

    def forwarding(self, spec: SourceMap, where: str) -> Forwarding:
        """An event's `forward:` (always, valid, never), `sample:` (a share of people,
        above 0 and at most 1) and `keep_local:`."""
        when: EventForward = self.choice(
            spec, "forward", where, EventForward, "always", "unknown_policy"
        )
        sample = self.number(spec, "sample", where)
        if sample is not None and not 0 < sample <= 1:
            self.error(
                spec.line_of("sample"),
                "bad_sample",
                f"{where}: sample {sample} must be above 0 and at most 1 (a share of people)",
            )
            sample = None
        keep_local = spec.get("keep_local", True)
        if not isinstance(keep_local, bool):
            self.error(
                spec.line_of("keep_local"),
                "wrong_shape",
                f"{where}.keep_local must be true or false",
            )
            keep_local = True
        return Forwarding(when, 1.0 if sample is None else float(sample), keep_local)

    def properties(self, parent: SourceMap, where: str, owner: str) -> dict[str, Property]:
        node = self.mapping(
            parent.get("properties"), parent.line_of("properties"), where, "duplicate_property"
        )
        result: dict[str, Property] = {}
        for name, raw in node.items():
            line = node.line_of(name)
            if isinstance(raw, str):  # shorthand: `chat_id: string`
                raw = _shorthand(raw, line)
            prop = self.property(name, self.mapping(raw, line, f"{where} property `{name}`"), line)
            if prop is not None:
                result[name] = Property(**{**prop.__dict__, "owner": owner})
        return result

    def property(self, name: str, spec: SourceMap, line: int) -> Property | None:
        where = f"property `{name}`"
        self.unknown_keys(spec, PROPERTY_KEYS, where)
        type_ = spec.get("type")
        if type_ not in PROPERTY_TYPES:
            self.error(
                spec.line_of("type"),
                "unknown_type",
                f"{where} has type `{type_}`; expected one of {', '.join(PROPERTY_TYPES)}",
            )
            return None
        enum = self.enum(spec, where, type_)
        pattern = self.pattern(spec, where)
        minimum, maximum = self.bounds(spec, where, type_)
        return Property(
            name=name,
            type=type_,
            description=self.text(spec, "description", where),
            required=self.flag(spec, "required", where),
            nullable=self.flag(spec, "nullable", where),
            enum=enum,
            minimum=minimum,
            maximum=maximum,
            min_length=self.count(spec, "min_length", where),
            max_length=self.count(spec, "max_length", where),
            pattern=str(pattern) if pattern is not None else None,
            privacy=self.privacy(spec, where),
            examples=tuple(spec.get("examples") or ()),
            renamed_from=self.old_names(spec, where),
            line=line,
        )

    def old_names(self, spec: SourceMap, where: str) -> tuple[str, ...]:
        """`renamed_from:` — one old name or a list of them."""
        raw = spec.get("renamed_from")
        if raw is None:
            return ()
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            self.error(
                spec.line_of("renamed_from"),
                "wrong_shape",
                f"{where}.renamed_from: a name or a list of names",
            )
            return ()
        return tuple(names)

    def pattern(self, spec: SourceMap, where: str) -> Any:
        """The property's regular expression, None when it has none or it is broken."""
        pattern = spec.get("pattern")
        if pattern is not None:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                self.error(spec.line_of("pattern"), "bad_pattern", f"{where}: {exc}")
                return None
        return pattern

    def bounds(self, spec: SourceMap, where: str, type_: str) -> tuple[float | None, float | None]:
        """minimum and maximum: a range that is not empty, on a number only."""
        minimum, maximum = self.number(spec, "minimum", where), self.number(spec, "maximum", where)
        if minimum is not None and maximum is not None and minimum > maximum:
            self.error(
                spec.line_of("minimum"),
                "empty_range",
                f"{where}: minimum {minimum} is above maximum {maximum}",
            )
        if (minimum is not None or maximum is not None) and type_ not in ("integer", "number"):
            self.error(
                spec.line_of("minimum" if minimum is not None else "maximum"),
                "bound_on_non_number",
                f"{where}: minimum/maximum apply to integer and number, not {type_}",
            )
        return minimum, maximum

    def enum(self, spec: SourceMap, where: str, type_: str) -> tuple[Scalar, ...] | None:
        if "enum" not in spec:
            return None
        raw = spec["enum"]
        line = spec.line_of("enum")
        if not isinstance(raw, list) or not raw:
            self.error(line, "empty_enum", f"{where}: enum must list at least one value")
            return None
        seen: set[tuple[str, Scalar]] = set()
        for index, value in enumerate(raw):
            item_line = raw.line_of(index) if isinstance(raw, SourceList) else line
            if not _fits(value, type_):
                self.error(
                    item_line,
                    "enum_wrong_type",
                    f"{where}: enum value {value!r} is not a {type_}",
                )
            key = (type(value).__name__, value)
            if key in seen:
                self.error(item_line, "duplicate_enum", f"{where}: enum lists {value!r} twice")
            seen.add(key)
        return tuple(raw)

    def flag(self, spec: SourceMap, key: str, where: str) -> bool:
        value = spec.get(key, False)
        if not isinstance(value, bool):
            self.error(spec.line_of(key), "wrong_shape", f"{where}.{key} must be true or false")
            return False
        return value

    def number(self, spec: SourceMap, key: str, where: str) -> float | None:
        value = spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(spec.line_of(key), "wrong_shape", f"{where}.{key} must be a number")
            return None
        return value

    def count(self, spec: SourceMap, key: str, where: str) -> int | None:
        value = spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.error(spec.line_of(key), "wrong_shape", f"{where}.{key} must be a whole number")
            return None
        return value

    def privacy(self, spec: SourceMap, where: str) -> Privacy:
        raw = spec.get("privacy", "keep")
        line = spec.line_of("privacy")
        if isinstance(raw, str):
            raw = _shorthand_privacy(raw, line)
        node = self.mapping(raw, line, f"{where}.privacy")
        self.unknown_keys(node, ("policy", "keep_last", "length"), f"{where}.privacy")
        policy = node.get("policy", "keep")
        if policy not in PRIVACY_POLICIES:
            self.error(
                line,
                "unknown_privacy",
                f"{where}: privacy `{policy}`; expected one of {', '.join(PRIVACY_POLICIES)}",
            )
            return Privacy()
        keep_last = self.count(node, "keep_last", where)
        length = self.count(node, "length", where)
        if policy == "truncate" and length is None:
            self.error(line, "missing_key", f"{where}: truncate needs a `length`")
        return Privacy(
            policy=policy,
            keep_last=4 if keep_last is None else keep_last,
            length=256 if length is None else length,
        )

    # -- dashboards and alerts -------------------------------------------------

    def dashboards(self, top: SourceMap) -> tuple[Dashboard, ...]:
        node = self.mapping(top.get("dashboards"), top.line_of("dashboards"), "dashboards")
        dashboards = []
        for name, raw in node.items():
            where = f"dashboard `{name}`"
            spec = self.mapping(raw, node.line_of(name), where)
            self.unknown_keys(spec, ("title", "description", "insights"), where)
            insights_node = self.mapping(spec.get("insights"), spec.line_of("insights"), where)
            insights = tuple(
                self.insight(
                    key,
                    self.mapping(value, insights_node.line_of(key), f"insight `{key}`"),
                    insights_node.line_of(key),
                )
                for key, value in insights_node.items()
            )
            dashboards.append(
                Dashboard(
                    name=name,
                    title=self.text(spec, "title", where, name),
                    description=self.text(spec, "description", where),
                    insights=insights,
                    line=node.line_of(name),
                )
            )
        return tuple(dashboards)

    def insight(self, name: str, spec: SourceMap, line: int) -> Insight:
        where = f"insight `{name}`"
        self.unknown_keys(spec, INSIGHT_KEYS, where)
        kind = spec.get("kind", "trends")
        if kind not in ("trends", "funnel"):
            self.error(spec.line_of("kind"), "unknown_kind", f"{where}: kind `{kind}`")
            kind = "trends"
        key = "steps" if kind == "funnel" else "series"
        raw_series = spec.get(key) or []
        if not isinstance(raw_series, list) or not raw_series:
            self.error(spec.line_of(key), "missing_key", f"{where} needs at least one of `{key}`")
            raw_series = []
        series = tuple(
            self.event_ref(
                item,
                raw_series.line_of(i) if isinstance(raw_series, SourceList) else line,
                where,
            )
            for i, item in enumerate(raw_series)
        )
        # The intervals the engine computes on every backend: its Literal, one registry.
        interval: Interval = self.choice(
            spec, "interval", where, Interval, "day", "unknown_interval"
        )
        options = self.mapping(spec.get("options"), spec.line_of("options"), where)
        return Insight(
            name=name,
            kind=kind,
            title=self.text(spec, "title", where, name),
            description=self.text(spec, "description", where),
            series=series,
            formula=self.text(spec, "formula", where) or None,
            breakdowns=self.strings(spec, "breakdowns", where),
            interval=interval,
            display=self.text(spec, "display", where),
            options=dict(options),
            line=line,
        )

    def event_ref(self, raw: Any, line: int, where: str) -> EventRef:
        if isinstance(raw, str):
            return EventRef(event=raw, line=line)
        spec = self.mapping(raw, line, where)
        self.unknown_keys(spec, ("event", "name", "where", "filters", "math", "property"), where)
        event = self.text(spec, "event", where)
        if not event:
            self.error(line, "missing_key", f"{where}: a series or step needs an `event`")
        math: Math = self.choice(spec, "math", where, Math, "total", "unknown_math")
        math_property = self.text(spec, "property", where) or None
        if math not in ("total", "dau", "unique_group") and math_property is None:
            self.error(line, "missing_key", f"{where}: math `{math}` needs a `property`")
        filters = [
            Filter(property=str(key), value=_scalar_or_tuple(value), line=spec.line_of("where"))
            for key, value in self.mapping(spec.get("where"), line, where).items()
        ]
        raw_filters = spec.get("filters") or []
        if not isinstance(raw_filters, list):
            self.error(spec.line_of("filters"), "wrong_shape", f"{where}.filters must be a list")
            raw_filters = []
        for index, item in enumerate(raw_filters):
            item_line = raw_filters.line_of(index) if isinstance(raw_filters, SourceList) else line
            node = self.mapping(item, item_line, f"{where} filter")
            operator: Operator = self.choice(
                node, "operator", where, Operator, "exact", "unknown_operator"
            )
            filters.append(
                Filter(
                    property=self.text(node, "property", where),
                    operator=operator,
                    value=_scalar_or_tuple(node.get("value")),
                    line=item_line,
                )
            )
        return EventRef(
            event=event,
            filters=tuple(filters),
            math=math,
            math_property=math_property,
            name=self.text(spec, "name", where),
            line=line,
        )

    def alerts(self, top: SourceMap) -> tuple[Alert, ...]:
        node = self.mapping(top.get("alerts"), top.line_of("alerts"), "alerts")
        return tuple(self.alert(name, node) for name in node)

    def alert(self, name: str, node: SourceMap) -> Alert:
        where = f"alert `{name}`"
        line = node.line_of(name)
        spec = self.mapping(node[name], line, where)
        self.unknown_keys(spec, ALERT_KEYS, where)
        insight = self.insight(
            name,
            self.mapping(spec.get("insight"), spec.line_of("insight"), where),
            spec.line_of("insight"),
        )
        condition: AlertCondition = self.choice(
            spec, "condition", where, AlertCondition, "absolute_value", "unknown_condition"
        )
        threshold = self.threshold(spec, where, condition)
        factor = self.number(spec, "factor", where)
        return Alert(
            name=name,
            description=self.text(spec, "description", where),
            insight=insight,
            condition=condition,
            threshold=threshold,
            frequency=self.text(spec, "frequency", where, "hourly"),
            min_count=self.count(spec, "min_count", where) or 0,
            factor=3.0 if factor is None else factor,
            baseline_intervals=self.count(spec, "baseline_intervals", where) or 168,
            owner=self.text(spec, "owner", where),
            line=line,
        )

    def threshold(self, spec: SourceMap, where: str, condition: AlertCondition) -> Threshold:
        """An alert's lower and upper bounds; one of them, unless it compares with its
        own baseline."""
        node = self.mapping(spec.get("threshold"), spec.line_of("threshold"), where)
        self.unknown_keys(node, ("lower", "upper"), f"{where}.threshold")
        lower = self.number(node, "lower", where)
        upper = self.number(node, "upper", where)
        if lower is None and upper is None and condition != "above_baseline":
            self.error(spec.line_of("threshold"), "missing_key", f"{where} needs a lower or upper")
        return Threshold(lower=lower, upper=upper)

    def acknowledgements(self, top: SourceMap) -> tuple[Acknowledgement, ...]:
        raw = top.get("acknowledge") or []
        if not isinstance(raw, list):
            self.error(top.line_of("acknowledge"), "wrong_shape", "acknowledge must be a list")
            return ()
        result = []
        for index, item in enumerate(raw):
            line = raw.line_of(index) if isinstance(raw, SourceList) else top.line
            node = self.mapping(item, line, "acknowledge")
            reason = self.text(node, "reason", "acknowledge")
            if not reason:
                self.error(line, "missing_key", "an acknowledged warning needs a `reason`")
            result.append(
                Acknowledgement(
                    code=self.text(node, "code", "acknowledge"),
                    subjects=self.strings(node, "subjects", "acknowledge"),
                    reason=reason,
                    line=line,
                )
            )
        return tuple(result)


def _kind(value: Any) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )


def _shorthand(type_name: str, line: int) -> SourceMap:
    node = SourceMap(type=type_name)
    node.line, node.key_lines, node.duplicate_keys = line, {"type": line}, []
    return node


def _shorthand_privacy(policy: str, line: int) -> SourceMap:
    node = SourceMap(policy=policy)
    node.line, node.key_lines, node.duplicate_keys = line, {"policy": line}, []
    return node


def _fits(value: Any, type_: str) -> bool:
    if type_ in ("string", "datetime"):
        return isinstance(value, str)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, bool)


def _scalar_or_tuple(value: Any) -> Scalar | tuple[Scalar, ...] | None:
    if isinstance(value, list):
        return tuple(value)
    return cast(Scalar | None, value)


def read_plan(path: str | Path) -> tuple[Plan | None, list[Diagnostic]]:
    """Build the plan and return it with every structural finding (for the linter)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Diagnostic(name, 0, "unreadable", f"cannot read the plan: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        message = f"the plan is not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x}"
        return None, [Diagnostic(name, 0, "unreadable", message)]
    return read_plan_text(text, name)


def read_plan_text(text: str, name: str = "<plan>") -> tuple[Plan | None, list[Diagnostic]]:
    try:
        root = load_yaml(text)
    except RecursionError:
        return None, [Diagnostic(name, 0, "yaml_syntax", "the file nests too deeply to read")]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [
            Diagnostic(name, line, "yaml_syntax", f"the file is not valid YAML: {problem}")
        ]
    reader = _Reader(name)
    plan = reader.plan(root)
    return plan, reader.diagnostics
