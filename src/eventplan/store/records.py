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
    values: tuple[Any, ...]


class EventColumns(msgspec.Struct, array_like=True, gc=False):
    """Events of one name and project, column by column, as the store lays them out:
    each planned property that fits its type in `typed`, everything else of an
    event's properties in `rest` (JSON text). Tuples, not lists: the collector
    untracks a tuple of strings and numbers, so a writer holding a slice's worth
    decoded does not make every collection walk them (decoding took 11-15 µs per
    event with lists, 1.3-1.9 with tuples)."""

    project: str
    event: str
    plan_version: str
    uuid: tuple[str, ...]
    distinct_id: tuple[str, ...]
    timestamp: tuple[int, ...]
    created_at: tuple[int, ...]
    ip_hash: tuple[str | None, ...]
    verdict: tuple[str, ...]
    violations: tuple[str | None, ...]  # JSON text
    rest: tuple[str | None, ...]  # JSON text; None: no property outside a typed column
    typed: tuple[TypedValues, ...]
    set: tuple[dict[str, Any] | None, ...]
    set_once: tuple[dict[str, Any] | None, ...]

    @property
    def size(self) -> int:
        return len(self.uuid)

    def take(self, rows: list[int]) -> EventColumns:
        """These rows only, in this order."""
        return self._each(lambda column: tuple(column[row] for row in rows))

    def slice(self, start: int, stop: int) -> EventColumns:
        return self._each(lambda column: column[start:stop])

    def _each(self, pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]) -> EventColumns:
        """The group with `pick` applied to each of its per-event columns."""
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
            tuple(TypedValues(t.key, t.type, pick(t.values)) for t in self.typed),
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
# (exact: a bool is not an int here). An integer column's must also fit in 64 bits.
AS_IS: dict[PropertyType, type] = {"string": str, "datetime": str, "boolean": bool, "number": float}

# An event's typed properties: (project, event name) → property key → its type.
PropertyTypes = Callable[[str, str], Mapping[str, PropertyType]]


def columns_of(events: list[StoredEvent], types_of: PropertyTypes) -> list[EventColumns]:
    """The events laid out in columns, one group per project, event name and plan
    version (an export holds events judged by several), in the order each first
    comes."""
    by_name: dict[tuple[str, str, str], list[StoredEvent]] = {}
    for event in events:
        by_name.setdefault((event.project, event.event, event.plan_version), []).append(event)
    return [
        _group(project, name, group, types_of(project, name))
        for (project, name, _), group in by_name.items()
    ]


def _group(
    project: str, name: str, events: list[StoredEvent], types: Mapping[str, PropertyType]
) -> EventColumns:
    """A column at a time: each typed key's values gathered in one pass, checked by
    the set of their Python types, and fitted one by one only when that set is not
    the column's own; what no column took stays in `rest`, in the order sent."""
    properties = [event.properties for event in events]
    count = len(events)
    typed: list[TypedValues] = []
    taken: set[str] = set()
    misfits: dict[int, set[str]] = {}  # row → typed keys whose value stays in its rest
    for key, type_ in types.items():
        values = [props.get(key) for props in properties]
        if values.count(None) == count:
            continue
        kinds = set(map(type, values)) - {NoneType}
        if not _fits_as_they_are(type_, kinds, values):
            values = _fitted(key, type_, values, misfits)
        taken.add(key)
        typed.append(TypedValues(key, type_, tuple(values)))
    # The per-event columns in one pass (transposed by zip), not a pass for each.
    uuid, distinct_id, timestamp, created_at, ip_hash, verdict, violations, set_, set_once = zip(
        *[
            (
                e.uuid, e.distinct_id, e.timestamp, e.created_at, e.ip_hash, e.verdict,
                json_text(e.violations) if e.violations else None, e.set, e.set_once,
            )
            for e in events
        ],
        strict=True,
    )  # fmt: skip
    rest = tuple(_rest(props, taken, misfits.get(row)) for row, props in enumerate(properties))
    return EventColumns(
        project,
        name,
        events[0].plan_version,
        uuid,
        distinct_id,
        timestamp,
        created_at,
        ip_hash,
        verdict,
        violations,
        rest,
        tuple(typed),
        set_,
        set_once,
    )


NoneType = type(None)
INT64: Final = range(-(2**63), 2**63)


def _fits_as_they_are(type_: PropertyType, kinds: set[type], values: list[Any]) -> bool:
    """Whether every value goes into the column as it is (None: absent)."""
    if kinds != {AS_IS.get(type_, int)}:
        return False
    if type_ != "integer":
        return True
    present = [value for value in values if value is not None]
    return min(present) in INT64 and max(present) in INT64


def _fitted(
    key: str, type_: PropertyType, values: list[Any], misfits: dict[int, set[str]]
) -> list[Any]:
    """The values as the column stores them; one that does not fit is None there and
    noted in `misfits`, to stay in its event's rest."""
    fit = FITS[type_]
    fitted = []
    for row, value in enumerate(values):
        stored = fit(value) if value is not None else None
        if stored is _NO:
            misfits.setdefault(row, set()).add(key)
            stored = None
        fitted.append(stored)
    return fitted


def _rest(properties: dict[str, Any], taken: set[str], misfits: set[str] | None) -> str | None:
    """The properties no typed column took (a null among them), as JSON text."""
    if misfits:
        taken = taken - misfits
    return json_text({k: v for k, v in properties.items() if v is None or k not in taken})


def json_text(value: Any) -> str | None:
    """A value as JSON text, None when empty (the store's JSON columns)."""
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
    """A log record of judged events laid out in columns: COLUMNS, the count of events
    (4 bytes, so a replay counts a record without decoding it), the groups (msgpack).
    OverflowError for an integer past 64 bits."""
    count = sum(group.size for group in groups)
    return COLUMNS + count.to_bytes(4, "big") + _msgpack.encode(groups)


def decode_columns(payload: bytes) -> list[EventColumns]:
    return _columns.decode(memoryview(payload)[5:])


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
        return int.from_bytes(payload[1:5], "big")
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
