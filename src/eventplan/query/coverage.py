"""Coverage: the plan against what actually arrives.

Per planned event its volume (24 h, 7 d), when it was last seen and its invalid
share; events planned but never seen; events seen but not planned; properties
planned but never sent. The plan page and `eventplan coverage` both show this.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from eventplan.plan.model import Plan, Property
from eventplan.query.sql import Aliases, Compiler
from eventplan.store import Store


def coverage(
    store: Store,
    plan: Plan,
    project: str,
    now: datetime | None = None,
    include_bots: bool = False,
) -> dict[str, Any]:
    """The plan against `project`'s events (people's only, unless `include_bots`)."""
    now = now or datetime.now(UTC)
    compiler = Compiler(store.columns, store.dialect, aliases=Aliases.of(plan))
    count_if = compiler.dialect.count_if
    invalid = count_if("timestamp >= ? AND verdict <> 'valid'")
    counted = "TRUE" if include_bots else compiler.people_only()
    _, rows = store.sql(
        f"SELECT event, {count_if('timestamp >= ?')}, {count_if('timestamp >= ?')}, "
        f"max(timestamp), {invalid}, count(*) "
        f"FROM events_data e WHERE project = ? AND {counted} GROUP BY event",
        [now - timedelta(days=1), now - timedelta(days=7), now - timedelta(days=7), project],
    )
    seen = _by_planned_name(rows, compiler.aliases)
    events = [
        _planned_event(store, compiler, plan, project, name, seen.get(name)) for name in plan.events
    ]
    unplanned = [
        {"event": name, "total": row[5], "last_seen": row[3].isoformat()}
        for name, row in sorted(seen.items())
        if name not in plan.events
    ]
    return {
        "project": project,
        "include_bots": include_bots,
        "plan": plan.name,
        "version": plan.version,
        "events": events,
        "planned_never_seen": [e["event"] for e in events if not e["total"]],
        "seen_not_planned": [u for u in unplanned if not u["event"].startswith("$")],
        "posthog_events_seen": [u for u in unplanned if u["event"].startswith("$")],
    }


def _by_planned_name(rows: list[Any], aliases: Aliases) -> dict[str, tuple[Any, ...]]:
    """Each event's counts under its planned name: the rows of its old names added in
    (counts summed, the latest time kept)."""
    seen: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        name = aliases.planned(row[0])
        before = seen.get(name)
        if before is None:
            seen[name] = tuple(row)
            continue
        seen[name] = (
            name,
            before[1] + row[1],
            before[2] + row[2],
            max(before[3], row[3]),
            before[4] + row[4],
            before[5] + row[5],
        )
    return seen


def _planned_event(
    store: Store,
    compiler: Compiler,
    plan: Plan,
    project: str,
    name: str,
    row: tuple[Any, ...] | None,
) -> dict[str, Any]:
    """One planned event: what the plan says of it, and what its traffic holds (`row`:
    the counts of the last day and week, the last time, the invalid ones, the total)."""
    event = plan.events[name]
    last_7d = row[2] if row else 0
    return {
        "event": name,
        "description": event.description,
        "owner": event.owner,
        "surfaces": list(event.surfaces),
        "trigger": f"{event.trigger.file} — {event.trigger.hook}",
        "value": event.value,
        "properties": [_property(p) for p in plan.properties_of(name).values()],
        "last_24h": row[1] if row else 0,
        "last_7d": last_7d,
        "last_seen": row[3].isoformat() if row else None,
        "invalid_share": round(row[4] / last_7d, 4) if row and last_7d else 0.0,
        "total": row[5] if row else 0,
        "properties_never_sent": _never_sent(store, compiler, plan, project, name) if row else [],
    }


def _property(prop: Property) -> dict[str, Any]:
    return {
        "name": prop.name,
        "type": prop.type,
        "required": prop.required,
        "enum": list(prop.enum) if prop.enum else None,
        "description": prop.description,
    }


def _never_sent(store: Store, compiler: Compiler, plan: Plan, project: str, name: str) -> list[str]:
    """The event's planned properties that none of its stored events has."""
    props = list(plan.properties_of(name))
    if not props:  # nothing planned, nothing unsent (and no empty SELECT)
        return []
    counts = ", ".join(f"count({compiler.text(p)})" for p in props)
    names = (name, *compiler.aliases.events.get(name, ()))
    _, [present] = store.sql(
        f"SELECT {counts} FROM events_data e "
        f"WHERE e.event IN ({', '.join('?' for _ in names)}) AND e.project = ?",
        [*names, project],
    )
    return [p for p, n in zip(props, present, strict=True) if not n]


MAX_VIOLATIONS_READ = 100_000  # broken events read for their most common violation


def event_traffic(
    store: Store, plan: Plan, project: str, days: int, now: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Per event name (an old name counted as the new), people's events of the last
    `days` days: how many arrived, how many broke the plan, and the violation most of
    those broke (`code property`)."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    compiler = Compiler(store.columns, store.dialect, aliases=Aliases.of(plan))
    where = f"e.project = ? AND e.timestamp >= ? AND {compiler.people_only()}"
    invalid = compiler.dialect.count_if("verdict <> 'valid'")
    _, rows = store.sql(
        f"SELECT event, count(*), {invalid} FROM events_data e WHERE {where} GROUP BY event",
        [project, since],
    )
    traffic: dict[str, dict[str, Any]] = {}
    for event, total, bad in rows:
        entry = traffic.setdefault(compiler.aliases.planned(event), {"seen": 0, "invalid": 0})
        entry["seen"] += int(total)
        entry["invalid"] += int(bad)
    worst = _top_violations(store, compiler, where, [project, since])
    for event, entry in traffic.items():
        entry["invalid_share"] = (
            round(entry["invalid"] / entry["seen"], 4) if entry["seen"] else 0.0
        )
        entry["top_violation"] = worst.get(event)
    return traffic


def _top_violations(
    store: Store, compiler: Compiler, where: str, params: list[Any]
) -> dict[str, str]:
    """Per event name, the error most of its broken events have (`code property`)."""
    _, broken = store.sql(
        f"SELECT event, violations FROM events_data e WHERE {where} AND verdict <> 'valid' "
        f"AND violations IS NOT NULL LIMIT {MAX_VIOLATIONS_READ}",
        params,
    )
    tally: dict[str, dict[str, int]] = {}
    for event, violations in broken:
        codes = tally.setdefault(compiler.aliases.planned(event), {})
        for violation in msgspec.json.decode(violations) if violations else []:
            if violation.get("severity", "error") == "error":
                key = f"{violation['code']} {violation.get('property') or ''}".strip()
                codes[key] = codes.get(key, 0) + 1
    return {e: max(codes, key=lambda k: (codes[k], k)) for e, codes in tally.items() if codes}
