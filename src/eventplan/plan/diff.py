"""What changed between two versions of a plan, and which changes break someone.

Breaking: anything that turns events an app already sends into invalid or
unplanned ones (a removed or renamed event or property, a changed type, a narrowed
enum or range, a new required property), and anything a dashboard or alert of the
new plan can no longer find. Renames are recognised as a removal and an addition
that look alike (same properties for events; same type and values for properties).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from eventplan.plan.model import Plan, Property


@dataclass(frozen=True)
class Change:
    kind: str
    event: str
    property: str | None
    detail: str
    breaking: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _similar_events(old: Plan, new: Plan, removed: str, added: str) -> bool:
    a, b = set(old.events[removed].properties), set(new.events[added].properties)
    return bool(a | b) and len(a & b) / len(a | b) >= 0.8


def _same_shape(a: Property, b: Property) -> bool:
    return a.type == b.type and a.enum == b.enum


def diff_plans(old: Plan, new: Plan) -> list[Change]:
    changes: list[Change] = []
    removed = [e for e in old.events if e not in new.events]
    added = [e for e in new.events if e not in old.events]
    declared = new.event_renames()
    for name in list(removed):
        # A rename the new plan declares keeps history: events sent under the old
        # name are stored and counted under the new one. Not breaking.
        match: str | None = declared.get(name)
        if match in added:
            changes.append(
                Change("event_renamed", name, None, f"{name} → {match} (renamed_from)", False)
            )
        else:
            match = next((a for a in added if _similar_events(old, new, name, a)), None)
            if match is None:
                continue
            changes.append(Change("event_renamed", name, None, f"{name} → {match}", True))
        removed.remove(name)
        added.remove(match)
    changes += [
        Change("event_removed", e, None, f"{e} is no longer planned", True) for e in removed
    ]
    changes += [Change("event_added", e, None, f"{e} is new", False) for e in added]
    for name in old.events:
        if name in new.events:
            changes += _event_changes(name, old.properties_of(name), new.properties_of(name))
    changes += _reference_changes(old, new)
    return changes


def _event_changes(event: str, old: dict[str, Property], new: dict[str, Property]) -> list[Change]:
    changes: list[Change] = []
    gone = [p for p in old if p not in new]
    fresh = [p for p in new if p not in old]
    declared = {o: key for key, prop in new.items() for o in prop.renamed_from}
    for name in list(gone):
        match: str | None = declared.get(name)
        if match in fresh:  # declared: kept whole, as for events
            changes.append(
                Change("property_renamed", event, name, f"{name} → {match} (renamed_from)", False)
            )
        else:
            match = next((f for f in fresh if _same_shape(old[name], new[f])), None)
            if match is None:
                continue
            changes.append(Change("property_renamed", event, name, f"{name} → {match}", True))
        gone.remove(name)
        fresh.remove(match)
    changes += [
        Change("property_removed", event, p, f"{p} is no longer planned", True) for p in gone
    ]
    for name in fresh:
        required = new[name].required
        changes.append(
            Change(
                "property_added",
                event,
                name,
                f"{name} is new{' and required' if required else ''}",
                required,
            )
        )
    for name in old:
        if name in new:
            changes += _property_changes(event, old[name], new[name])
    return changes


def _property_changes(event: str, a: Property, b: Property) -> list[Change]:
    changes: list[Change] = []
    name = a.name
    if a.type != b.type:
        changes.append(Change("type_changed", event, name, f"{a.type} → {b.type}", True))
    if a.enum != b.enum:
        before, after = set(a.enum or ()), set(b.enum or ())
        if b.enum is not None and (a.enum is None or before - after):
            lost = sorted(map(str, before - after)) if a.enum is not None else ["(any value)"]
            changes.append(
                Change("enum_narrowed", event, name, f"no longer allows {', '.join(lost)}", True)
            )
        elif after - before:
            changes.append(
                Change(
                    "enum_widened",
                    event,
                    name,
                    f"now also allows {', '.join(sorted(map(str, after - before)))}",
                    False,
                )
            )
        else:
            changes.append(Change("enum_removed", event, name, "any value is allowed now", False))
    if a.required != b.required:
        changes.append(
            Change(
                "required_changed",
                event,
                name,
                "now required" if b.required else "now optional",
                b.required,
            )
        )
    narrower = (
        (b.minimum is not None and (a.minimum is None or b.minimum > a.minimum))
        or (b.maximum is not None and (a.maximum is None or b.maximum < a.maximum))
        or (b.max_length is not None and (a.max_length is None or b.max_length < a.max_length))
        or (b.min_length is not None and (a.min_length is None or b.min_length > a.min_length))
        or (b.pattern is not None and b.pattern != a.pattern)
        or (a.nullable and not b.nullable)
    )
    if narrower:
        changes.append(
            Change("rule_narrowed", event, name, "accepts fewer values than before", True)
        )
    if a.privacy != b.privacy:
        changes.append(
            Change(
                "privacy_changed", event, name, f"{a.privacy.policy} → {b.privacy.policy}", False
            )
        )
    return changes


def _reference_changes(old: Plan, new: Plan) -> list[Change]:
    """Dashboards and alerts that refer to what the new plan no longer has."""
    from eventplan.plan.lint import references

    return [
        Change("dashboard_broken", "", None, finding.message, True)
        for finding in references(new)
        if finding.code in ("unknown_event", "unknown_property", "unknown_enum_value")
    ]
