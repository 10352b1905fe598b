"""Obviously-correct pure-Python insights, to cross-check the query engine against.

Slow and simple on purpose: loops over the raw events, no SQL, no cleverness.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

OTHER = "$$_posthog_breakdown_other_$$"
NULL = "$$_posthog_breakdown_null_$$"


def when(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).astimezone(UTC)


def persons(events: list[dict[str, Any]]) -> dict[str, str]:
    """distinct_id → a person key, merging ids as $identify and $create_alias say."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for event in sorted(events, key=when):
        find(event["distinct_id"])
        props = event.get("properties") or {}
        other = None
        if event["event"] == "$identify":
            other = props.get("$anon_distinct_id")
        elif event["event"] == "$create_alias":
            other = props.get("alias")
        if isinstance(other, str) and other:
            parent[find(other)] = find(event["distinct_id"])
    return {d: find(d) for d in parent}


def matches(event: dict[str, Any], name: str, filters: list[tuple[str, str, Any]]) -> bool:
    if event["event"] != name:
        return False
    props = event.get("properties") or {}
    for key, op, value in filters:
        have = props.get(key)
        text = (
            None if have is None else (str(have).lower() if isinstance(have, bool) else str(have))
        )
        if op == "exact" and text != str(value):
            return False
        if op == "is_not" and text == str(value):
            return False
        if op == "gt" and not (
            isinstance(have, int | float) and not isinstance(have, bool) and have > value
        ):
            return False
        if op == "is_set" and have is None:
            return False
    return True


def day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def aggregate(
    events: list[dict[str, Any]], math_name: str, prop: str | None, person_of: dict[str, str]
) -> float:
    if math_name == "total":
        return float(len(events))
    if math_name == "dau":
        return float(len({person_of[e["distinct_id"]] for e in events}))
    if math_name == "unique_group":
        keys = {((e.get("properties") or {}).get("$groups") or {}).get("workspace") for e in events}
        return float(len(keys - {None}))
    values = []
    for event in events:
        value = (event.get("properties") or {}).get(prop or "")
        if isinstance(value, int | float) and not isinstance(value, bool):
            values.append(float(value))
        elif isinstance(value, str):  # like PostHog's toFloat: numeric text counts
            with contextlib.suppress(ValueError):
                values.append(float(value))
    if not values:
        return 0.0
    if math_name == "sum":
        return sum(values)
    if math_name == "avg":
        return sum(values) / len(values)
    if math_name == "min":
        return min(values)
    if math_name == "max":
        return max(values)
    return quantile(values, {"median": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[math_name])


def trend(
    events: list[dict[str, Any]],
    name: str,
    filters: list[tuple[str, str, Any]],
    math_name: str,
    prop: str | None,
    start: datetime,
    days: int,
    breakdown: str | None = None,
    limit: int = 25,
) -> dict[str | None, list[float]]:
    """Daily values of one series (per breakdown value), zero-filled."""
    person_of = persons(events)
    chosen = [
        e
        for e in events
        if matches(e, name, filters) and start <= when(e) < start + timedelta(days=days)
    ]
    groups: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    if breakdown is None:
        groups[None] = chosen
    else:
        counts: dict[str, int] = defaultdict(int)
        for event in chosen:
            value = (event.get("properties") or {}).get(breakdown)
            if value is not None:
                counts[_text(value)] += 1
        top = sorted(counts, key=lambda v: (-counts[v], v))[:limit]
        for event in chosen:
            value = (event.get("properties") or {}).get(breakdown)
            key = NULL if value is None else (_text(value) if _text(value) in top else OTHER)
            groups[key].append(event)
    result = {}
    for key, group in groups.items():
        per_day: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
        for event in group:
            per_day[day(when(event))].append(event)
        result[key] = [
            aggregate(per_day.get(day(start) + timedelta(days=i), []), math_name, prop, person_of)
            if per_day.get(day(start) + timedelta(days=i))
            else 0.0
            for i in range(days)
        ]
    return result


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def funnel_counts(
    events: list[dict[str, Any]],
    steps: list[tuple[str, list[tuple[str, str, Any]]]],
    window: timedelta,
    start: datetime,
    end: datetime,
) -> tuple[list[int], dict[str, list[datetime]]]:
    """People reaching each step: for every step-1 occurrence, greedily take the
    earliest later events for the next steps within the window; a person counts
    at the furthest step any attempt reaches."""
    person_of = persons(events)
    by_person: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if start <= when(event) < end:
            by_person[person_of[event["distinct_id"]]].append(event)
    reached = [0] * len(steps)
    chains: dict[str, list[datetime]] = {}
    for person, own in by_person.items():
        # At the same moment, events go in step order (a page firing two steps converts).
        def rank(e: dict[str, Any]) -> int:
            return next((i for i, (n, f) in enumerate(steps) if matches(e, n, f)), len(steps))

        own.sort(key=lambda e: (when(e), rank(e), e["uuid"]))
        best: list[datetime] = []
        for first, event in enumerate(own):
            if not matches(event, steps[0][0], steps[0][1]):
                continue
            chain, position = [when(event)], first
            for name, filters in steps[1:]:
                found = None
                for later in range(position + 1, len(own)):
                    candidate = own[later]
                    if when(candidate) - chain[0] > window:
                        break
                    if matches(candidate, name, filters):
                        found = later
                        break
                if found is None:
                    break
                chain.append(when(own[found]))
                position = found
            if len(chain) > len(best):
                best = chain
        for i in range(len(best)):
            reached[i] += 1
        if best:
            chains[person] = best
    return reached, chains
