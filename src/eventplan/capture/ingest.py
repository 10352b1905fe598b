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
from dataclasses import dataclass
from typing import Any

from eventplan.capture.decode import decode_body
from eventplan.capture.enrich import TrustedProxies, ip_hash
from eventplan.capture.errors import Unauthorized, Unavailable
from eventplan.capture.events import find_token, normalize, split_payload, wide_ints_as_floats
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


@dataclass
class Ingested:
    project: Project
    events: list[LoggedEvent]
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
        payload = decode_body(
            body,
            content_type=request.content_type,
            content_encoding=request.content_encoding,
            query=query,
            limit=limit,
        )
        client_ip = self.proxies.client_ip(request.peer, request.forwarded_for)
        hashed_ip = ip_hash(client_ip) if client_ip else None
        project, events = self._logged(payload, query, hashed_ip, received_us)
        try:
            record = encode_logged(events)
        except OverflowError:
            # An integer past 64 bits, which the log cannot hold. PostHog's capture
            # reads one as a float, and so do we.
            project, events = self._logged(
                wide_ints_as_floats(payload), query, hashed_ip, received_us
            )
            record = encode_logged(events)
        self.budget.take(project.tokens[0], len(events))
        return Ingested(project, events, record)

    def _logged(
        self, payload: Any, query: dict[str, str], hashed_ip: str | None, received_us: int
    ) -> tuple[Project, list[LoggedEvent]]:
        raw_events, envelope = split_payload(payload)
        project = self.project_for(find_token(raw_events, envelope))
        events = normalize(raw_events, envelope, query, received_us)
        return project, project.logged(events, hashed_ip, received_us)
