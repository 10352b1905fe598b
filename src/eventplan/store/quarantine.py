"""Quarantine replay: re-validate held-back events against the current plan."""

from __future__ import annotations

import msgspec

from eventplan.plan.model import Plan
from eventplan.plan.validator import Validator
from eventplan.store.duckdb import EventStore
from eventplan.store.records import StoredEvent


def replay_quarantine(store: EventStore, plan: Plan, project: str | None = None) -> tuple[int, int]:
    """Move every quarantined event of `project` that `plan` now accepts; (moved, still held)."""
    project = project or plan.name
    validator = Validator(plan)
    _, rows = store.sql(
        "SELECT uuid::VARCHAR, event, distinct_id, epoch_us(timestamp), epoch_us(created_at), "
        "ip_hash, properties, person_set, person_set_once FROM quarantine WHERE project = ?",
        [project],
    )
    passing: list[StoredEvent] = []
    for uuid, event, distinct_id, timestamp, created_at, ip_hash, props, set_, set_once in rows:
        properties = msgspec.json.decode(props or "{}")
        verdict = validator.check_properties(event, properties)
        if not verdict.ok:
            continue
        passing.append(
            StoredEvent(
                uuid=uuid,
                event=event,
                distinct_id=distinct_id,
                timestamp=timestamp,
                created_at=created_at,
                project=project,
                ip_hash=ip_hash,
                properties=properties,
                set=msgspec.json.decode(set_) if set_ else None,
                set_once=msgspec.json.decode(set_once) if set_once else None,
                verdict=verdict.verdict,
                violations=verdict.violations or None,
            )
        )
    if passing:
        store.insert(passing, store.wal_seq())
        store.delete_quarantined([event.uuid for event in passing])
    return len(passing), len(rows) - len(passing)
