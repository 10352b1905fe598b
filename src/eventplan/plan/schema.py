"""JSON Schema (draft 2020-12) export: the plan's rules for other tools.

One schema per event, over the PostHog event shape (`event`, `properties`). It
states exactly what `Validator` checks, no more: a property-based test holds the
two to the same answers.
"""

from __future__ import annotations

from typing import Any

from eventplan.plan.model import Plan, Property
from eventplan.plan.posthog import PLAIN_BUILTIN_PROPERTIES

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def property_schema(prop: Property) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    if prop.description:
        schema["description"] = prop.description
    json_type = "string" if prop.type == "datetime" else prop.type
    schema["type"] = [json_type, "null"] if prop.nullable else json_type
    if prop.type == "datetime":
        schema["format"] = "date-time"
    if prop.enum is not None:
        schema["enum"] = [*prop.enum, None] if prop.nullable else list(prop.enum)
    if prop.min_length is not None:
        schema["minLength"] = prop.min_length
    if prop.max_length is not None:
        schema["maxLength"] = prop.max_length
    if prop.pattern is not None:
        schema["pattern"] = prop.pattern
    if prop.minimum is not None:
        schema["minimum"] = prop.minimum
    if prop.maximum is not None:
        schema["maximum"] = prop.maximum
    if prop.examples:
        schema["examples"] = list(prop.examples)
    return schema


def event_schema(plan: Plan, name: str) -> dict[str, Any]:
    """The schema of one planned event; raises KeyError for an unplanned one."""
    event = plan.events[name]
    properties = plan.properties_of(name)
    required = sorted(p.name for p in properties.values() if p.required)
    props_schema: dict[str, Any] = {
        "type": "object",
        "properties": {p.name: property_schema(p) for p in properties.values()},
    }
    if required:
        props_schema["required"] = required
    if plan.unplanned_properties == "reject":
        # PostHog's own properties (`$…`, and `token`, `distinct_id`, … from posthog-js)
        # are always allowed.
        for builtin in sorted(PLAIN_BUILTIN_PROPERTIES - set(properties)):
            props_schema["properties"][builtin] = {}
        props_schema["patternProperties"] = {"^\\$": {}}
        props_schema["additionalProperties"] = False
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"eventplan:{plan.name}/{plan.version}/{name}",
        "title": name,
        "description": event.description,
        "type": "object",
        "properties": {"event": {"const": name}, "properties": props_schema},
        "required": ["event", "properties"] if required else ["event"],
    }
    return schema


def plan_schemas(plan: Plan) -> dict[str, dict[str, Any]]:
    """Every planned event's schema, keyed by event name."""
    return {name: event_schema(plan, name) for name in plan.events}
