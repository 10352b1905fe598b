"""The stored shape of an event: what capture hands the store, after enrichment,
validation and the privacy policy. The log holds it laid out as a row (`store/rows.py`)."""

from __future__ import annotations

from datetime import UTC, datetime
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


_decoder = msgspec.msgpack.Decoder(list[StoredEvent])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """A datetime (aware, or naive UTC) as epoch microseconds, exactly."""
    delta = moment - EPOCH if moment.tzinfo else moment - EPOCH.replace(tzinfo=None)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def is_msgpack_record(payload: bytes) -> bool:
    """A log record written before records were rows (a msgpack array of events)."""
    return payload[:1] not in (b"", b"{")


def decode_msgpack_record(payload: bytes) -> list[StoredEvent]:
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
