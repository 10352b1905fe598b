"""The stored shape of an event: what the write-ahead log holds and the store loads."""

from __future__ import annotations

from typing import Any

import msgspec

from eventplan.plan.validator import Violation


class StoredEvent(msgspec.Struct, array_like=True, gc=False):
    """One event after enrichment, validation and the privacy policy."""

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
    verdict: str
    violations: list[Violation] | None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[StoredEvent])


def encode_events(events: list[StoredEvent]) -> bytes:
    return _encoder.encode(events)


def decode_events(payload: bytes) -> list[StoredEvent]:
    return _decoder.decode(payload)


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
