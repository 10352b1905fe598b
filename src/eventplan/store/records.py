"""An event as the write-ahead log holds it, and as the store loads it.

Capture judges what it received before it logs it: a log record holds the request's
`StoredEvent`s (msgpack), each normalized (ids, time), carrying the request's
envelope (project, hashed IP, received time), enriched, judged, and with the privacy
policy applied. So nothing the policy hides reaches disk, and the writer only stores.
A log written by the previous version holds `LoggedEvent`s instead, one JSON line
each, as received and not yet judged; the writer judges those as it stores them
(`is_logged` tells the two apart).
"""

from __future__ import annotations

from typing import Any

import msgspec

from eventplan.plan.validator import Violation


class LoggedEvent(msgspec.Struct, gc=False):
    """One event as capture received it: normalized, not yet judged."""

    uuid: str
    event: str
    distinct_id: str
    timestamp: int  # epoch microseconds, server time (skew corrected)
    created_at: int  # epoch microseconds when the server received it
    project: str
    ip_hash: str | None
    properties: dict[str, Any]
    set: dict[str, Any] | None
    set_once: dict[str, Any] | None
    user_agent: str | None = None  # the request's, to tell bots by; never stored


class StoredEvent(msgspec.Struct, array_like=True, gc=False):
    """One event after enrichment, validation and the privacy policy. (Its fields
    keep their order: a log written by an older version holds these as arrays.)"""

    uuid: str
    event: str
    distinct_id: str
    timestamp: int
    created_at: int
    project: str
    ip_hash: str | None
    properties: dict[str, Any]
    set: dict[str, Any] | None
    set_once: dict[str, Any] | None
    verdict: str
    violations: list[Violation] | None
    plan_version: str = ""  # the version of the plan that judged it ("": not recorded)


_lines = msgspec.json.Encoder()
_logged = msgspec.json.Decoder(LoggedEvent)
_stored = msgspec.msgpack.Decoder(list[StoredEvent])
_msgpack = msgspec.msgpack.Encoder()


def encode_logged(events: list[LoggedEvent]) -> bytes:
    """A log record: one JSON line per event."""
    return _lines.encode_lines(events)


def is_logged(payload: bytes) -> bool:
    """Whether a log record holds logged events (else an older version's stored ones)."""
    return payload[:1] == b"{"


def decode_logged(payload: bytes) -> list[LoggedEvent]:
    return _logged.decode_lines(payload)


def encode_stored(events: list[StoredEvent]) -> bytes:
    """A log record of judged events; OverflowError for an integer past 64 bits."""
    return _msgpack.encode(events)


def decode_stored(payload: bytes) -> list[StoredEvent]:
    return _stored.decode(payload)


def record_size(payload: bytes) -> int:
    """How many events a log record holds, without decoding logged ones."""
    return payload.count(b"\n") if is_logged(payload) else len(decode_stored(payload))


def first_received(
    events: list[StoredEvent], skip: set[str] | frozenset[str] = frozenset()
) -> list[StoredEvent]:
    """One event per uuid, the first received, none of those in `skip` (already
    stored). A batch with nothing to drop comes back as the same list."""
    uuids = {e.uuid for e in events}
    if len(uuids) == len(events) and skip.isdisjoint(uuids):
        return events
    seen = set(skip)
    kept = []
    for event in sorted(events, key=lambda e: e.created_at):
        if event.uuid not in seen:
            seen.add(event.uuid)
            kept.append(event)
    return kept


def first_received_of(
    events: list[StoredEvent], person_ids: list[str], skip: set[str] | frozenset[str] = frozenset()
) -> tuple[list[StoredEvent], list[str]]:
    """`first_received`, with each kept event's person id (given in `events`' order)."""
    kept = first_received(events, skip)
    if kept is events:
        return events, person_ids
    person_of = {id(e): p for e, p in zip(events, person_ids, strict=True)}
    return kept, [person_of[id(e)] for e in kept]
