"""Alerts on a schedule: keep their history and tell a webhook when one changes.

A check compares what fires now with what fired at the previous check; only the
changes (fired, resolved) are recorded and sent, so a long incident notifies once
when it starts and once when it ends, not at every check.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from eventplan.plan.model import Plan
from eventplan.query.alerts import AlertResult, check_alerts
from eventplan.store import Store

log = logging.getLogger("eventplan.alerts")
WEBHOOK_ATTEMPTS = 4  # then the change stays in the history with notified = false


@dataclass(frozen=True)
class Change:
    project: str
    alert: str
    kind: str
    subject: str  # breakdown value or event, "" for the whole insight
    state: str  # "fired" or "resolved"
    value: float | None
    threshold: str
    owner: str
    at: datetime

    def message(self) -> dict[str, Any]:
        subject = f" ({self.subject})" if self.subject else ""
        verb = "FIRED" if self.state == "fired" else "resolved"
        value = f": {self.value:g} {self.threshold}" if self.value is not None else ""
        owner = f" — owner {self.owner}" if self.owner else ""
        return {
            "text": f"[eventplan/{self.project}] alert {self.alert}{subject} {verb}{value}{owner}",
            "project": self.project,
            "alert": self.alert,
            "kind": self.kind,
            "subject": self.subject,
            "state": self.state,
            "value": self.value,
            "threshold": self.threshold,
            "owner": self.owner,
            "at": self.at.isoformat(),
        }


class AlertMonitor:
    def __init__(self, store: Store, plans: dict[str, Plan], webhook: str | None) -> None:
        self.store = store
        self.plans = plans
        self.webhook = webhook
        self._firing: dict[tuple[str, str, str], tuple[AlertResult, Any]] = {}
        self.last: dict[str, list[AlertResult]] = {}

    def check(self, now: datetime | None = None) -> list[Change]:
        """Evaluate every project's alerts once; returns (and records) what changed."""
        now = now or datetime.now(UTC)
        changes: list[Change] = []
        seen: set[tuple[str, str, str]] = set()
        for project, plan in self.plans.items():
            results = check_alerts(self.store, plan, project, now=now)
            self.last[project] = results
            for result in results:
                for firing in result.firing:
                    key = (project, result.name, firing.breakdown_value or "")
                    seen.add(key)
                    if key not in self._firing:
                        changes.append(
                            Change(
                                project,
                                result.name,
                                result.kind,
                                key[2],
                                "fired",
                                firing.value,
                                firing.threshold,
                                firing.owner or result.owner,
                                now,
                            )
                        )
                    self._firing[key] = (result, firing)
        for key in [k for k in self._firing if k not in seen]:
            result, firing = self._firing.pop(key)
            changes.append(
                Change(
                    key[0],
                    key[1],
                    result.kind,
                    key[2],
                    "resolved",
                    None,
                    firing.threshold,
                    firing.owner or result.owner,
                    now,
                )
            )
        if changes:
            self.store.record_alert_changes([vars(c) for c in changes])
        return changes

    async def notify(self, changes: list[Change]) -> None:
        if not self.webhook:
            return
        async with httpx.AsyncClient(timeout=10) as client:
            for change in changes:
                delivered = False
                for attempt in range(WEBHOOK_ATTEMPTS):
                    try:
                        response = await client.post(self.webhook, json=change.message())
                        delivered = response.status_code < 300
                    except httpx.HTTPError as exc:
                        log.warning("webhook for %s failed: %s", change.alert, exc)
                    if delivered:
                        break
                    await asyncio.sleep(0.5 * 2**attempt)
                if delivered:
                    self.store.mark_alert_notified(
                        change.project, change.alert, change.subject, change.state, change.at
                    )
