"""From a decoded request to stored-event records: the capture pipeline in order.

normalize (envelope, token, ids, clock skew) → enrich (ip_hash, referrer, UTM) →
validate (the plan's verdict) → privacy (hash, mask, truncate, drop). Nothing
touches disk before the privacy policy has run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from eventplan.capture.decode import decode_body
from eventplan.capture.enrich import TrustedProxies, ip_hash
from eventplan.capture.errors import Unauthorized, Unavailable
from eventplan.capture.events import find_token, normalize, split_payload, wide_ints_as_floats
from eventplan.project import Project
from eventplan.store.records import StoredEvent, encode_events


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


@dataclass
class Ingested:
    project: Project
    events: list[StoredEvent]
    record: bytes  # the events as the write-ahead log holds them


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
        self, body: bytes, request: CaptureRequest, *, received_us: int, limit: int
    ) -> Ingested:
        """A capture request's body as events ready for the log, or a CaptureError."""
        query = request.query

        def decoded() -> Any:
            return decode_body(
                body,
                content_type=request.content_type,
                content_encoding=request.content_encoding,
                query=query,
                limit=limit,
            )

        client_ip = self.proxies.client_ip(request.peer, request.forwarded_for)
        hashed_ip = ip_hash(client_ip) if client_ip else None
        project, events = self._judged(decoded(), query, hashed_ip, received_us)
        try:
            record = encode_events(events)
        except OverflowError:
            # An integer past 64 bits, which the log cannot hold. PostHog's capture
            # reads one as a float, and so do we: on a fresh decode, since enrichment
            # and the privacy policy changed the first one in place.
            project, events = self._judged(
                wide_ints_as_floats(decoded()), query, hashed_ip, received_us
            )
            record = encode_events(events)
        self.budget.take(project.tokens[0], len(events))
        return Ingested(project, events, record)

    def _judged(
        self, payload: Any, query: dict[str, str], hashed_ip: str | None, received_us: int
    ) -> tuple[Project, list[StoredEvent]]:
        raw_events, envelope = split_payload(payload)
        project = self.project_for(find_token(raw_events, envelope))
        events = normalize(raw_events, envelope, query, received_us)
        return project, project.judge(events, hashed_ip, received_us)
