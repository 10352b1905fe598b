"""The live feed: captured events fanned out to connected browsers, filtered on the server."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eventplan.plan.posthog import BOT_NAME
from eventplan.store.records import StoredEvent

QUEUE_SIZE = 1000  # a browser that falls this far behind misses events rather than slowing capture


@dataclass
class LiveFilter:
    """What a live page shows: one event name, one distinct id, only events that break
    the plan; from the page's query string (`event`, `distinct_id`, `verdict=problems`),
    which is how a dashboard's warning links to the events behind it."""

    event: str = ""
    distinct_id: str = ""
    problems_only: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> LiveFilter:
        return cls(
            event=params.get("event", ""),
            distinct_id=params.get("distinct_id", ""),
            problems_only=params.get("verdict") == "problems",
        )

    def matches(self, event: StoredEvent) -> bool:
        if self.event and event.event != self.event:
            return False
        if self.distinct_id and event.distinct_id != self.distinct_id:
            return False
        return not (self.problems_only and event.verdict == "valid")


@dataclass
class Subscriber:
    project: str
    filter: LiveFilter
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


def row(event: StoredEvent) -> dict[str, Any]:
    """What a live-feed row shows of an event."""
    return {
        "uuid": event.uuid,
        "event": event.event,
        "distinct_id": event.distinct_id,
        "timestamp": datetime.fromtimestamp(event.timestamp / 1e6, UTC).isoformat(),
        "verdict": event.verdict,
        "plan_version": event.plan_version,
        "bot": event.properties.get(BOT_NAME),
        "violations": [
            {"code": v.code, "property": v.property, "message": v.message, "severity": v.severity}
            for v in event.violations or []
        ],
    }


class LiveFeed:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, project: str, live_filter: LiveFilter) -> Subscriber:
        subscriber = Subscriber(project, live_filter)
        self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def watching(self, project: str) -> bool:
        """Whether a browser watches the project's live feed."""
        return any(subscriber.project == project for subscriber in self._subscribers)

    def publish(self, events: list[StoredEvent]) -> None:
        for subscriber in self._subscribers:
            for event in events:
                if event.project == subscriber.project and subscriber.filter.matches(event):
                    if subscriber.queue.full():
                        break
                    subscriber.queue.put_nowait(row(event))
