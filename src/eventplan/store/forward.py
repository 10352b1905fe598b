"""Gateway mode: deliver stored events to an existing PostHog project.

The outbox is a table the store fills in the same transaction as the insert, so
an acknowledged event is either still in the write-ahead log or queued here: it
cannot be lost between the two. The forwarder posts batches to PostHog's
`/batch/` (gzip, PostHog's envelope) and retries network errors, 5xx and 429 with
exponential backoff (honouring Retry-After); any other answer marks the batch
failed with its reason, kept until `eventplan forward retry`. Delivery is
at-least-once with the events' own uuids, so a receiver that dedupes stores each
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from eventplan.store.base import Store

log = logging.getLogger("eventplan.forward")
BATCH = 500  # events per POST; PostHog's capture takes up to 20 MB per /batch/
MAX_BACKOFF = 300.0  # seconds between retries, at most
MAX_RETRY_AFTER = 3600.0  # the longest Retry-After from upstream we honour


@dataclass(frozen=True)
class Target:
    project: str
    url: str
    token: str


@dataclass
class ForwardStats:
    delivered: int = 0
    batches: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_success_at: float | None = None
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.delivered / elapsed if elapsed > 0 else 0.0


def backoff(attempts: int, retry_after: str | None) -> float:
    delay = min(2.0**attempts, MAX_BACKOFF)
    if retry_after and retry_after.isascii() and retry_after.isdigit():
        delay = max(delay, min(float(retry_after[:9]), MAX_RETRY_AFTER))
    return delay


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep, waking at once when asked to stop (the server's background loops)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


class Forwarder:
    def __init__(self, store: Store, targets: list[Target]) -> None:
        self.store = store
        self.targets = targets
        self.stats = ForwardStats()

    async def run_forever(self, stopping: asyncio.Event) -> None:
        """Deliver until `stopping` is set; a delivery in flight finishes first."""
        async with httpx.AsyncClient(timeout=30) as client:
            while not stopping.is_set():
                sent = 0
                try:
                    for target in self.targets:
                        sent += await self.deliver_once(client, target)
                except Exception as exc:  # the outbox keeps the events: never let the loop die
                    self._error(f"{type(exc).__name__}: {exc}")
                    log.exception("forwarding failed unexpectedly; trying again shortly")
                    await pause(stopping, 5)
                    continue
                if not sent:
                    await pause(stopping, 0.5)

    async def deliver_once(self, client: httpx.AsyncClient, target: Target) -> int:
        due = await asyncio.to_thread(self.store.outbox_due, target.project, BATCH)
        if not due:
            return 0
        uuids = [u for u, _, _ in due]
        attempts = max(a for _, _, a in due)
        body = (
            '{"api_key":'
            + _quote(target.token)
            + ',"historical_migration":false,"sent_at":'
            + _quote(datetime.now(UTC).isoformat())
            + ',"batch":['
            + ",".join(payload for _, payload, _ in due)
            + "]}"
        ).encode()
        try:
            response = await client.post(
                target.url.rstrip("/") + "/batch/",
                content=gzip.compress(body, 5),
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        except httpx.HTTPError as exc:
            await self._later(uuids, attempts, None, f"network: {type(exc).__name__}: {exc}")
            return 0
        if response.status_code == 200:
            await asyncio.to_thread(self.store.outbox_delivered, uuids)
            self.stats.delivered += len(uuids)
            self.stats.batches += 1
            self.stats.last_success_at = time.time()
            return len(uuids)
        reason = f"{response.status_code}: {response.text[:300]}"
        if response.status_code == 429 or response.status_code >= 500:
            await self._later(uuids, attempts, response.headers.get("retry-after"), reason)
        else:
            self._error(reason)
            await asyncio.to_thread(self.store.outbox_failed, uuids, reason)
            log.error("forwarding failed for good (%d events): %s", len(uuids), reason)
        return 0

    async def _later(
        self, uuids: list[str], attempts: int, retry_after: str | None, reason: str
    ) -> None:
        self._error(reason)
        delay = backoff(attempts, retry_after)
        await asyncio.to_thread(self.store.outbox_retry_later, uuids, delay, reason)

    def _error(self, reason: str) -> None:
        self.stats.last_error = reason
        self.stats.last_error_at = time.time()

    def status(self) -> dict[str, Any]:
        outbox = self.store.outbox_status()
        healthy_since_error = (
            self.stats.last_error_at is None
            or (self.stats.last_success_at or 0) > self.stats.last_error_at
        )
        return {
            "targets": [{"project": t.project, "url": t.url} for t in self.targets],
            "outbox_depth": outbox["pending"],
            "failed": outbox["failed"],
            "oldest_undelivered": outbox["oldest"],
            "delivered": self.stats.delivered,
            "delivery_rate": round(self.stats.rate(), 2),
            "last_error": self.stats.last_error,
            "errors": outbox["errors"],
            "healthy": healthy_since_error and not outbox["failed"],
        }


def _quote(text: str) -> str:
    import json

    return json.dumps(text)
