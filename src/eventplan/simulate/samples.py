"""Plan-shaped sample events: every planned event with plausible values, some broken.

Used for `examples/`, the validation benchmark and tests. Values come from the
plan: enum members, a property's `examples`, or a random value inside its bounds.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
import string
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from eventplan.capture.enrich import DERIVED_PROPERTIES
from eventplan.plan.model import Plan, Property

BREAKAGES = ("missing_required", "not_in_enum", "wrong_type", "unplanned_event")


def sample_value(prop: Property, rng: random.Random) -> Any:
    if prop.examples:
        return rng.choice(prop.examples)
    if prop.enum is not None:
        return rng.choice(prop.enum)
    if prop.type == "boolean":
        return rng.random() < 0.5
    if prop.type in ("integer", "number"):
        low = prop.minimum if prop.minimum is not None else 0
        high = prop.maximum if prop.maximum is not None else low + 10_000
        value = rng.uniform(low, min(high, low + 100_000))
        return int(value) if prop.type == "integer" else round(value, 3)
    if prop.type == "datetime":
        moment = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400 * 30))
        return moment.isoformat().replace("+00:00", "Z")
    low = max(prop.min_length or 1, 1)
    high = min(prop.max_length or 24, 24)
    size = rng.randint(min(low, high), high)
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=size))


def sample_properties(plan: Plan, event: str, rng: random.Random) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name, prop in plan.properties_of(event).items():
        if prop.required or rng.random() < 0.7:
            props[name] = sample_value(prop, rng)
    return props


def break_event(plan: Plan, event: dict[str, Any], rng: random.Random) -> str:
    """Break one rule of the plan in `event` the way real apps do; returns which."""
    properties = event["properties"]
    planned = plan.properties_of(event["event"]) if event["event"] in plan.events else {}
    # Capture derives some properties when they are missing; removing one of those
    # would not break the event once it arrives.
    required = [
        name
        for name, p in planned.items()
        if p.required and name in properties and name not in DERIVED_PROPERTIES
    ]
    enums = [
        name for name, p in planned.items() if p.enum and p.type == "string" and name in properties
    ]
    kind = rng.choice(BREAKAGES)
    if kind == "missing_required" and required:
        del properties[rng.choice(required)]
    elif kind == "not_in_enum" and enums:
        name = rng.choice(enums)
        properties[name] = str(properties[name])[:-1] + "x"  # a misspelt value
    elif kind == "wrong_type" and required:
        name = rng.choice(required)
        properties[name] = [properties[name]]
    else:
        kind = "unplanned_event"
        event["event"] = event["event"].lstrip("$").replace(".", "_") + "_v2"
    return kind


def sample_events(
    plan: Plan,
    count: int,
    *,
    seed: int = 0,
    invalid_share: float = 0.1,
    start: datetime | None = None,
) -> list[dict[str, Any]]:
    """`count` PostHog-shaped events of the plan's events, `invalid_share` of them broken."""
    rng = random.Random(seed)
    names = [name for name in plan.events if not name.startswith("$")] + ["$pageview"]
    names = [name for name in names if name in plan.events]
    start = start or datetime(2026, 11, 1, tzinfo=UTC)
    events = []
    for index in range(count):
        name = rng.choice(names)
        moment = start + timedelta(seconds=index)
        event: dict[str, Any] = {
            "event": name,
            "distinct_id": f"user-{rng.randrange(max(count // 20, 1))}",
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": moment.isoformat(),
            "properties": {"$lib": "posthog-python", **sample_properties(plan, name, rng)},
        }
        if rng.random() < invalid_share:
            break_event(plan, event, rng)
        events.append(event)
    return events
