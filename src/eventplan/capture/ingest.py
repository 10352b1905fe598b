"""From a request's body to a log record: what the acknowledgement waits for.

decode → the token and project → normalize (ids, clock skew) → the request's
envelope on each event (the client IP hashed once, its agent, when it came) → the
project's judgement (planned names, enrichment, verdict, privacy policy) → the
record: the judged events laid out in the store's columns, msgpack. A malformed
request is refused here, whole, with a 4xx. Judged before the log, nothing the
privacy policy hides reaches disk, and the writer only stores. This runs in a
capture process beside the server when there is one (`capture/processes.py`), so
that neither the judging nor the layout takes the server's own Python from the
writer: it only joins the records' columns and inserts them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from eventplan.capture.bots import browser_agent
from eventplan.capture.decode import decode_body
from eventplan.capture.enrich import TrustedProxies, ip_hash
from eventplan.capture.errors import PayloadTooLarge, Unauthorized, Unavailable
from eventplan.capture.events import (
    Batch,
    IncomingEvent,
    find_token,
    normalize,
    split_payload,
    wide_ints_as_floats,
)
from eventplan.capture.judge import Pipeline
from eventplan.capture.v1 import V1Headers, read_batch
from eventplan.store.records import (
    LoggedEvent,
    StoredEvent,
    columns_of,
    decode_columns,
    encode_columns,
    encode_logged,
    events_in,
)


class TokenBudget:
    """Events per second per project (a token bucket); exceeding it answers 503."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, project: str, count: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(project, (float(self.rate), now))
            level = min(float(self.rate), level + (now - last) * self.rate)
            if level < count and level < self.rate:
                self._buckets[project] = (level, now)
                wait = max(1, int((count - level) / self.rate) + 1)
                raise Unavailable(
                    f"this project token is over its budget of {self.rate} events/s; retry later",
                    retry_after=wait,
                )
            self._buckets[project] = (level - count, now)


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


@dataclass(frozen=True)
class Envelope:
    """What every event of one request shares: its client (hashed), agent and time."""

    ip_hash: str | None
    user_agent: str | None
    received_us: int

    @classmethod
    def of(cls, request: CaptureRequest, proxies: TrustedProxies, received_us: int) -> Envelope:
        client_ip = proxies.client_ip(request.peer, request.forwarded_for)
        return cls(
            ip_hash(client_ip) if client_ip else None,
            browser_agent(request.user_agent),
            received_us,
        )


@dataclass
class Ingested:
    project: str  # the project's name
    record: bytes  # the judged events as the write-ahead log holds them
    count: int
    verdicts: dict[str, int]  # events by verdict
    # The events; None when a capture process read them (`stored_events`).
    events: list[StoredEvent] | None = None
    # Capture v1: each event's uuid as the client wrote it, and those dropped (→ why)
    sent_uuids: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    def stored_events(self) -> list[StoredEvent]:
        return self.events if self.events is not None else events_in(decode_columns(self.record))


class Ingestor:
    """Capture requests read into log records for the projects their tokens name, and
    judged by their pipelines; the same in the server and in a capture process."""

    def __init__(self, projects: dict[str, str], pipelines: dict[str, Pipeline]) -> None:
        self.projects = projects  # token → project name
        self.pipelines = pipelines  # project name → its judgement

    def project_for(self, token: str) -> str:
        project = self.projects.get(token)
        if project is None:
            raise Unauthorized(f"unknown project token {token[:8]}…; check the client's api key")
        return project

    def ingest(
        self,
        body: bytes,
        request: CaptureRequest,
        envelope: Envelope,
        *,
        limit: int,
        event_limit: int | None = None,
    ) -> Ingested:
        """A capture request's body as events ready for the log, or a CaptureError.
        With `event_limit` (the AI lane), an event larger than it is refused by name."""

        def decoded() -> Any:
            return decode_body(
                body,
                content_type=request.content_type,
                content_encoding=request.content_encoding,
                query=request.query,
                limit=limit,
            )

        try:
            return self._judged(decoded(), request, envelope, event_limit)
        except OverflowError:
            # An integer past 64 bits, which the log cannot hold. PostHog's capture
            # reads one as a float, and so do we: on a fresh decode, since the judging
            # (enrichment, the privacy policy) changed the first one in place.
            return self._judged(wide_ints_as_floats(decoded()), request, envelope, event_limit)

    def _judged(
        self, payload: Any, request: CaptureRequest, envelope: Envelope, event_limit: int | None
    ) -> Ingested:
        if request.v1 is not None:
            project = self.project_for(request.v1.token())
            batch = read_batch(payload, request.v1, envelope.received_us)
        else:
            raw_events, fields = split_payload(payload)
            project = self.project_for(find_token(raw_events, fields))
            batch = Batch(normalize(raw_events, fields, request.query, envelope.received_us))
        events = logged(batch.events, project, envelope)
        if event_limit is not None:
            refuse_large_events(events, event_limit)
        pipeline = self.pipelines[project]
        judged = pipeline.stored(events)
        record = encode_columns(columns_of(judged, pipeline.property_types))
        return Ingested(
            project,
            record,
            len(judged),
            verdict_counts(judged),
            judged,
            batch.sent_uuids,
            batch.dropped,
        )


def verdict_counts(events: list[StoredEvent]) -> dict[str, int]:
    """Events by verdict."""
    return dict(Counter(event.verdict for event in events))


def logged(events: list[IncomingEvent], project: str, envelope: Envelope) -> list[LoggedEvent]:
    """A request's normalized events as the log holds them, with its envelope. A
    client's own `$ip` is dropped here: no raw IP is ever written anywhere."""
    for event in events:
        event.properties.pop("$ip", None)
    return [
        LoggedEvent(
            uuid=event.uuid,
            event=event.event,
            distinct_id=event.distinct_id,
            timestamp=event.timestamp_us,
            created_at=envelope.received_us,
            project=project,
            ip_hash=envelope.ip_hash,
            properties=event.properties,
            set=event.set,
            set_once=event.set_once,
            user_agent=envelope.user_agent,
        )
        for event in events
    ]


def refuse_large_events(events: list[LoggedEvent], limit: int) -> None:
    """PayloadTooLarge naming the first event whose line of JSON is over `limit` bytes."""
    for event, line in zip(events, encode_logged(events).split(b"\n"), strict=False):
        if len(line) > limit:
            raise PayloadTooLarge(
                f"event {event.event!r} ({event.uuid}) is {len(line):,} bytes; this endpoint "
                f"takes at most {limit:,} bytes per event"
            )
