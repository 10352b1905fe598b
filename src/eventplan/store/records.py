"""An event as the write-ahead log holds it, and as the store loads it.

Capture judges what it received before it logs it: a log record holds the request's
events normalized (ids, time), carrying the request's envelope (project, hashed IP,
received time), enriched, judged, and with the privacy policy applied. So nothing
the policy hides reaches disk. The record is laid out as the store takes it
(`EventColumns`: column by column, one group per event name, each planned property
in its typed column), so the writer only gathers the columns and inserts them: it
never builds an object per event or per property.

A log written by an older version holds `StoredEvent`s (msgpack, judged) or
`LoggedEvent`s (one JSON line each, as received and not yet judged); the writer
judges those and lays them out as it stores them (`record_kind` tells the three
apart).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Literal

import msgspec

from eventplan.plan.model import PropertyType
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


class TypedValues(msgspec.Struct, array_like=True, gc=False):
    """One planned property's values in its typed column, None where an event lacks
    one that fits."""

    key: str
    type: PropertyType
    values: list[Any]


class EventColumns(msgspec.Struct, array_like=True, gc=False):
    """Events of one name and project, column by column, as the store lays them out:
    each planned property that fits its type in `typed`, everything else of an
    event's properties in `rest` (JSON text)."""

    project: str
    event: str
    plan_version: str
    uuid: list[str]
    distinct_id: list[str]
    timestamp: list[int]
    created_at: list[int]
    ip_hash: list[str | None]
    verdict: list[str]
    violations: list[str | None]  # JSON text
    rest: list[str | None]  # JSON text; None: no property outside a typed column
    typed: list[TypedValues]
    set: list[dict[str, Any] | None]
    set_once: list[dict[str, Any] | None]

    @property
    def size(self) -> int:
        return len(self.uuid)

    def take(self, rows: list[int]) -> EventColumns:
        """These rows only, in this order."""
        return self._each(lambda column: [column[row] for row in rows])

    def slice(self, start: int, stop: int) -> EventColumns:
        return self._each(lambda column: column[start:stop])

    def _each(self, pick: Callable[[list[Any]], list[Any]]) -> EventColumns:
        """The group with `pick` applied to each of its per-event lists."""
        return EventColumns(
            self.project,
            self.event,
            self.plan_version,
            pick(self.uuid),
            pick(self.distinct_id),
            pick(self.timestamp),
            pick(self.created_at),
            pick(self.ip_hash),
            pick(self.verdict),
            pick(self.violations),
            pick(self.rest),
            [TypedValues(t.key, t.type, pick(t.values)) for t in self.typed],
            pick(self.set),
            pick(self.set_once),
        )

    def properties(self, row: int) -> dict[str, Any]:
        """An event's properties whole again: the rest, then its typed values (as
        their columns hold them: an integral float as an integer, an integer as a
        number)."""
        text = self.rest[row]
        properties: dict[str, Any] = _json.decode(text) if text else {}
        for typed in self.typed:
            value = typed.values[row]
            if value is not None:
                properties[typed.key] = value
        return properties

    def events(self) -> list[StoredEvent]:
        """The events one at a time (for what needs them whole: quarantine, the
        gateway's outbox, the live feed, an event set aside)."""
        return [
            StoredEvent(
                self.uuid[row],
                self.event,
                self.distinct_id[row],
                self.timestamp[row],
                self.created_at[row],
                self.project,
                self.ip_hash[row],
                self.properties(row),
                self.set[row],
                self.set_once[row],
                self.verdict[row],
                _violations.decode(text) if (text := self.violations[row]) else None,
                self.plan_version,
            )
            for row in range(self.size)
        ]


_NO: Final = object()


def _fit_text(value: Any) -> Any:
    return value if isinstance(value, str) else _NO


def _fit_boolean(value: Any) -> Any:
    return value if isinstance(value, bool) else _NO


def _fit_integer(value: Any) -> Any:
    if isinstance(value, bool):
        return _NO
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return _NO


def _fit_number(value: Any) -> Any:
    if isinstance(value, bool):
        return _NO
    return float(value) if isinstance(value, int | float) else _NO


# The value as its typed column stores it, or `_NO` when it does not fit.
FITS: dict[PropertyType, Callable[[Any], Any]] = {
    "string": _fit_text,
    "datetime": _fit_text,
    "boolean": _fit_boolean,
    "integer": _fit_integer,
    "number": _fit_number,
}

# The Python type whose values a column stores as they are, without a call to FITS
# (exact: a bool is not an int here). An integer column always asks FITS: its values
# must fit in 64 bits.
AS_IS: dict[PropertyType, type] = {"string": str, "datetime": str, "boolean": bool, "number": float}

# An event's typed properties: (project, event name) → property key → its type.
PropertyTypes = Callable[[str, str], Mapping[str, PropertyType]]


def columns_of(events: list[StoredEvent], types_of: PropertyTypes) -> list[EventColumns]:
    """The events laid out in columns, one group per (project, event name), in the
    order each name first comes."""
    by_name: dict[tuple[str, str], list[StoredEvent]] = {}
    for event in events:
        by_name.setdefault((event.project, event.event), []).append(event)
    return [
        _group(project, name, group, types_of(project, name))
        for (project, name), group in by_name.items()
    ]


def _group(
    project: str, name: str, events: list[StoredEvent], types: Mapping[str, PropertyType]
) -> EventColumns:
    count = len(events)
    typed = [TypedValues(key, type_, [None] * count) for key, type_ in types.items()]
    # Per key: its values, the type stored as it is (AS_IS), and the fit for any other.
    targets = {t.key: (t.values, AS_IS.get(t.type), FITS[t.type]) for t in typed}
    rests: list[str | None] = []
    for row, event in enumerate(events):
        rest: dict[str, Any] = {}
        for key, value in event.properties.items():
            target = targets.get(key)
            if target is not None and value is not None:
                if type(value) is target[1]:
                    target[0][row] = value
                    continue
                stored = target[2](value)
                if stored is not _NO:
                    target[0][row] = stored
                    continue
            rest[key] = value
        rests.append(_text(rest))
    return EventColumns(
        project,
        name,
        events[0].plan_version,
        [e.uuid for e in events],
        [e.distinct_id for e in events],
        [e.timestamp for e in events],
        [e.created_at for e in events],
        [e.ip_hash for e in events],
        [e.verdict for e in events],
        [_text(e.violations) for e in events],
        rests,
        [t for t in typed if any(value is not None for value in t.values)],
        [e.set for e in events],
        [e.set_once for e in events],
    )


def _text(value: Any) -> str | None:
    return _json_encode(value).decode() if value else None


def events_in(groups: list[EventColumns]) -> list[StoredEvent]:
    return [event for group in groups for event in group.events()]


def slice_groups(groups: list[EventColumns], start: int, size: int) -> list[EventColumns]:
    """`size` events from the `start`-th on, counting through the groups in order."""
    sliced = []
    stop = start + size
    offset = 0
    for group in groups:
        end = offset + group.size
        if end > start and offset < stop:
            low, high = max(start, offset) - offset, min(stop, end) - offset
            sliced.append(group if (low, high) == (0, group.size) else group.slice(low, high))
        offset = end
    return sliced


_json = msgspec.json.Decoder()
_json_encode = msgspec.json.Encoder().encode
_violations = msgspec.json.Decoder(list[Violation])
_lines = msgspec.json.Encoder()
_logged = msgspec.json.Decoder(LoggedEvent)
_stored = msgspec.msgpack.Decoder(list[StoredEvent])
_columns = msgspec.msgpack.Decoder(list[EventColumns])
_msgpack = msgspec.msgpack.Encoder()
COLUMNS: Final = b"C"  # the first byte of a record of EventColumns
RecordKind = Literal["columns", "stored", "logged"]


def encode_columns(groups: list[EventColumns]) -> bytes:
    """A log record of judged events laid out in columns; OverflowError for an
    integer past 64 bits."""
    return COLUMNS + _msgpack.encode(groups)


def decode_columns(payload: bytes) -> list[EventColumns]:
    return _columns.decode(memoryview(payload)[1:])


def record_kind(payload: bytes) -> RecordKind:
    """What a log record holds: columns (this version), or an older version's judged
    events (msgpack) or logged ones (JSON lines)."""
    first = payload[:1]
    if first == COLUMNS:
        return "columns"
    return "logged" if first == b"{" else "stored"


def encode_logged(events: list[LoggedEvent]) -> bytes:
    """A log record as an older version wrote it: one JSON line per event."""
    return _lines.encode_lines(events)


def decode_logged(payload: bytes) -> list[LoggedEvent]:
    return _logged.decode_lines(payload)


def encode_stored(events: list[StoredEvent]) -> bytes:
    """A log record as an older version wrote it: judged events, msgpack."""
    return _msgpack.encode(events)


def decode_stored(payload: bytes) -> list[StoredEvent]:
    return _stored.decode(payload)


def record_size(payload: bytes) -> int:
    """How many events a log record holds, without decoding logged ones."""
    kind = record_kind(payload)
    if kind == "columns":
        return sum(group.size for group in decode_columns(payload))
    return payload.count(b"\n") if kind == "logged" else len(decode_stored(payload))


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


def first_received_columns(
    groups: list[EventColumns],
    person_ids: list[list[str]],
    skip: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[EventColumns], list[list[str]]]:
    """`first_received` of events in columns, with each kept event's person id (one
    list per group). Groups with nothing to drop come back as the same lists."""
    uuids = [uuid for group in groups for uuid in group.uuid]
    if len(set(uuids)) == len(uuids) and skip.isdisjoint(uuids):
        return groups, person_ids
    arrivals = sorted(
        (group.created_at[row], index, row)
        for index, group in enumerate(groups)
        for row in range(group.size)
    )
    seen = set(skip)
    kept: list[list[int]] = [[] for _ in groups]
    for _, index, row in arrivals:
        uuid = groups[index].uuid[row]
        if uuid not in seen:
            seen.add(uuid)
            kept[index].append(row)
    fresh, persons = [], []
    for group, rows, people in zip(groups, kept, person_ids, strict=True):
        if rows:
            rows.sort()
            fresh.append(group.take(rows))
            persons.append([people[row] for row in rows])
    return fresh, persons
