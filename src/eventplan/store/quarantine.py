"""Quarantine replay: re-validate held-back events against the current plan."""

from __future__ import annotations

import msgspec

from eventplan.capture.judge import Judge
from eventplan.plan.model import Plan
from eventplan.store.base import Store


def replay_quarantine(store: Store, plan: Plan, project: str | None = None) -> tuple[int, int]:
    """Move every quarantined event of `project` that `plan` now accepts; (moved, still held)."""
    judge = Judge(plan)
    held = store.quarantined(project or plan.name)
    passing = []
    for event in held:
        verdict = judge.rejudge_stored(event.event, event.properties, event.violations or [])
        if verdict.ok:
            passing.append(
                msgspec.structs.replace(
                    event,
                    verdict=verdict.verdict,
                    violations=verdict.violations or None,
                    plan_version=plan.version,
                )
            )
    if passing:
        store.insert(passing, store.wal_seq())
        store.delete_quarantined([event.uuid for event in passing])
    return len(passing), len(held) - len(passing)
