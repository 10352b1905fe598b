"""From a request's body to a log record: what the acknowledgement waits for.

decode → the envelope, token and project → normalize (ids, clock skew) → the
client IP hashed once → one JSON line per event, carrying the request's envelope.
A malformed request is refused here, whole, with a 4xx. The plan's judgement
(enrich, validate, privacy) runs behind the acknowledgement, in the loader; the
raw properties reach disk only in the log, whose segments are deleted once the
store holds their events.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from eventplan.capture.bots import browser_agent
from eventplan.capture.decode import decode_body
from eventplan.capture.enrich import TrustedProxies, ip_hash
from eventplan.capture.errors import PayloadTooLarge, Unauthorized, Unavailable
from eventplan.capture.events import (
    Batch,
    find_token,
    normalize,
    split_payload,
    wide_ints_as_floats,
)
from eventplan.capture.v1 import V1Headers, read_batch
from eventplan.project import Project
from eventplan.store.records import LoggedEvent, encode_logged


class TokenBudget:
    """Events per second per token (a token bucket); exceeding it answers 503."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, token: str, count: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(token, (float(self.rate), now))
            level = min(float(self.rate), level + (now - last) * self.rate)
            if level < count and level < self.rate:
                self._buckets[token] = (level, now)
                wait = max(1, int((count - level) / self.rate) + 1)
                raise Unavailable(
                    f"this project token is over its budget of {self.rate} events/s; retry later",
                    retry_after=wait,
                )
            self._buckets[token] = (level - count, now)


@dataclass(frozen=True)
class CaptureRequest:
    """What capture reads of an HTTP request besides its body."""

    content_type: str
    content_encoding: str
    query: dict[str, str]
    peer: str | None  # the address the connection came from
    forwarded_for: str | None  # X-Forwarded-For, believed only from a trusted proxy
    user_agent: str = ""
    v1: V1Headers | None = None  # the headers of a Capture v1 request


@dataclass
class Ingested:
    project: Project
    events: list[LoggedEvent]
    record: bytes  # the events as the write-ahead log holds them
    # Capture v1: each event's uuid as the client wrote it, and those dropped (→ why)
    sent_uuids: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)


class Ingestor:
    def __init__(self, projects: list[Project], proxies: TrustedProxies, token_rate: int = 0):
        self.projects = projects
        self._by_token = {token: project for project in projects for token in project.tokens}
        self.proxies = proxies
        self.budget = TokenBudget(token_rate)

    def project_for(self, token: str) -> Project:
        project = self._by_token.get(token)
        if project is None:
            raise Unauthorized(f"unknown project token {token[:8]}…; check the client's api key")
        return project

    def ingest(
        self,
        body: bytes,
        request: CaptureRequest,
        *,
        received_us: int,
        limit: int,
        event_limit: int | None = None,
    ) -> Ingested:
        """A capture request's body as events ready for the log, or a CaptureError.
        With `event_limit` (the AI lane), an event larger than it is refused by name."""
        payload = decode_body(
            body,
            content_type=request.content_type,
            content_encoding=request.content_encoding,
            query=request.query,
            limit=limit,
        )
        envelope = Envelope(request, self.proxies, received_us)
        try:
            ingested = self._logged(payload, envelope)
        except OverflowError:
            # An integer past 64 bits, which the log cannot hold. PostHog's capture
            # reads one as a float, and so do we.
            ingested = self._logged(wide_ints_as_floats(payload), envelope)
        if event_limit is not None:
            refuse_large_events(ingested, event_limit)
        self.budget.take(ingested.project.tokens[0], len(ingested.events))
        return ingested

    def _logged(self, payload: Any, envelope: Envelope) -> Ingested:
        request = envelope.request
        if request.v1 is not None:
            project = self.project_for(request.v1.token())
            batch = read_batch(payload, request.v1, envelope.received_us)
        else:
            raw_events, fields = split_payload(payload)
            project = self.project_for(find_token(raw_events, fields))
            batch = Batch(normalize(raw_events, fields, request.query, envelope.received_us))
        logged = project.logged(
            batch.events, envelope.ip_hash, envelope.received_us, envelope.user_agent
        )
        return Ingested(project, logged, encode_logged(logged), batch.sent_uuids, batch.dropped)


class Envelope:
    """What every event of one request shares: its client (hashed), agent and time."""

    def __init__(self, request: CaptureRequest, proxies: TrustedProxies, received_us: int):
        self.request = request
        client_ip = proxies.client_ip(request.peer, request.forwarded_for)
        self.ip_hash = ip_hash(client_ip) if client_ip else None
        self.user_agent = browser_agent(request.user_agent)
        self.received_us = received_us


def refuse_large_events(ingested: Ingested, limit: int) -> None:
    """PayloadTooLarge naming the first event whose logged line is over `limit` bytes."""
    for event, line in zip(ingested.events, ingested.record.split(b"\n"), strict=False):
        if len(line) > limit:
            raise PayloadTooLarge(
                f"event {event.event!r} ({event.uuid}) is {len(line):,} bytes; this endpoint "
                f"takes at most {limit:,} bytes per event"
            )
