"""Stored events as rows: the write-ahead log's records and the Arrow tables every
backend inserts.

Capture lays each event out as the store's row before it acknowledges it
(`RowLayout.encode`): planned properties go to their typed column when the value
fits the type; the rest (and a value that does not fit) stays in `properties_rest`
JSON, so nothing an event carried is lost on the way to a column. The record is
JSON lines of those rows, which Arrow's JSON reader turns into a typed table in
C++ with the interpreter lock released (`RowLayout.read`). Decoding records into
Python objects and building the table from them took about 30 µs per event on the
writer's thread, the same lock capture's requests need; laying the row out in
capture costs about 4 µs more than encoding the event whole did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from eventplan.plan.model import PropertyType
from eventplan.plan.validator import Violation
from eventplan.store.columns import ARROW_TYPES, Column
from eventplan.store.identity import IDENTITY_EVENTS, EventOfPerson
from eventplan.store.records import StoredEvent, epoch_us

_json = msgspec.json.Encoder()
_violations = msgspec.json.Decoder(list[Violation])
_NO = object()
TIME = pa.timestamp("us", tz="UTC")

# The row's own columns, in the log record and the table read from it. The person's
# `$set` / `$set_once` travel with the row for identity, and are not stored on it.
FIXED: Final = pa.schema(
    [
        ("uuid", pa.string()),
        ("event", pa.string()),
        ("distinct_id", pa.string()),
        ("timestamp", pa.int64()),  # epoch microseconds; read as TIME
        ("created_at", pa.int64()),
        ("project", pa.string()),
        ("ip_hash", pa.string()),
        ("verdict", pa.string()),
        ("violations", pa.string()),  # JSON text
        ("properties_rest", pa.string()),  # JSON text
        ("person_set", pa.string()),  # JSON text
        ("person_set_once", pa.string()),  # JSON text
    ]
)
PERSON_COLUMNS: Final = ("person_set", "person_set_once")


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
    if isinstance(value, float):
        # JSON has no NaN or infinity: such a value stays in `properties_rest`, as null.
        return value if value - value == 0 else _NO
    return float(value) if isinstance(value, int) and abs(value) < 2**1023 else _NO


# The value as its typed column stores it, or `_NO` when it does not fit.
FITS: dict[PropertyType, Callable[[Any], Any]] = {
    "string": _fit_text,
    "datetime": _fit_text,
    "boolean": _fit_boolean,
    "integer": _fit_integer,
    "number": _fit_number,
}


def _text(value: Any) -> str | None:
    return _json.encode(value).decode() if value else None


class RowLayout:
    """A store's row: the fixed columns, then one typed column per planned (property,
    type), filled only for the events that plan the property."""

    def __init__(
        self, columns: list[Column], event_columns: dict[tuple[str, str], dict[str, Column]]
    ) -> None:
        self.columns = columns
        self.schema = pa.schema([*FIXED, *((c.name, ARROW_TYPES[c.type]) for c in columns)])
        self._event_columns = event_columns
        # Per (project, event): each planned key's column and fit, looked up once.
        self._targets: dict[tuple[str, str], dict[str, tuple[str, Callable[[Any], Any]]]] = {}
        self._parse = pa_json.ParseOptions(
            explicit_schema=self.schema, unexpected_field_behavior="error"
        )
        self._read = pa_json.ReadOptions(block_size=4 << 20)

    def own_columns(self, project: str, event: str) -> list[Column]:
        """The typed columns an event fills, in the store's column order."""
        own = self._event_columns.get((project, event), {})
        return [c for c in self.columns if own.get(c.key) is c]

    def row(self, event: StoredEvent) -> dict[str, Any]:
        which = (event.project, event.event)
        targets = self._targets.get(which)
        if targets is None:
            targets = self._targets[which] = {
                key: (column.name, FITS[column.type])
                for key, column in self._event_columns.get(which, {}).items()
            }
        row: dict[str, Any] = {
            "uuid": event.uuid,
            "event": event.event,
            "distinct_id": event.distinct_id,
            "timestamp": event.timestamp,
            "created_at": event.created_at,
            "project": event.project,
            "ip_hash": event.ip_hash,
            "verdict": event.verdict,
        }
        rest: dict[str, Any] = {}
        for key, value in event.properties.items():
            target = targets.get(key)
            if target is not None and value is not None:
                stored = target[1](value)
                if stored is not _NO:
                    row[target[0]] = stored
                    continue
            rest[key] = value
        if rest:
            row["properties_rest"] = _json.encode(rest).decode()
        if event.violations:
            row["violations"] = _json.encode(event.violations).decode()
        if event.set:
            row["person_set"] = _json.encode(event.set).decode()
        if event.set_once:
            row["person_set_once"] = _json.encode(event.set_once).decode()
        return row

    def encode(self, events: Iterable[StoredEvent]) -> bytes:
        """The events as a log record: JSON lines, one row each."""
        return _json.encode_lines([self.row(event) for event in events])

    def read(self, record: bytes) -> pa.Table:
        """Records (JSON lines, joined) as a table in the layout's schema, times as TIME."""
        if not record:
            return self.schema.empty_table().cast(self.table_schema)
        table = pa_json.read_json(
            pa.BufferReader(record), read_options=self._read, parse_options=self._parse
        )
        return table.cast(self.table_schema)

    @property
    def table_schema(self) -> pa.Schema:
        schema = self.schema
        for name in ("timestamp", "created_at"):
            schema = schema.set(schema.get_field_index(name), pa.field(name, TIME))
        return schema

    def person_events(self, table: pa.Table) -> list[EventOfPerson]:
        """The rows as identity reads them, properties decoded only where it reads them."""
        names = table["event"].to_pylist()
        special = [i for i, name in enumerate(names) if name in IDENTITY_EVENTS]
        properties: dict[int, dict[str, Any]] = {}
        if special:
            whole = self.events(table.take(pa.array(special, pa.int64())))
            properties = {i: event.properties for i, event in zip(special, whole, strict=True)}
        return [
            EventOfPerson(project, name, distinct_id, timestamp, properties.get(i, {}), set_, once)
            for i, (project, name, distinct_id, timestamp, set_, once) in enumerate(
                zip(
                    table["project"].to_pylist(),
                    names,
                    table["distinct_id"].to_pylist(),
                    table["timestamp"].cast(pa.int64()).to_pylist(),
                    map(_object, table["person_set"].to_pylist()),
                    map(_object, table["person_set_once"].to_pylist()),
                    strict=True,
                )
            )
        ]

    def events(self, table: pa.Table) -> list[StoredEvent]:
        """Rows back as whole events, typed columns folded into `properties` (for the
        quarantine, the forwarding outbox and identity events: few, or opt-in)."""
        typed = {c.name: c for c in self.columns}
        events = []
        for row in table.to_pylist():
            properties: dict[str, Any] = {}
            own = self._event_columns.get((row["project"], row["event"]), {})
            for key, column in own.items():
                if row.get(column.name) is not None and typed.get(column.name) is column:
                    properties[key] = row[column.name]
            if row["properties_rest"]:
                properties.update(msgspec.json.decode(row["properties_rest"]))
            events.append(
                StoredEvent(
                    uuid=row["uuid"],
                    event=row["event"],
                    distinct_id=row["distinct_id"],
                    timestamp=epoch_us(row["timestamp"]),
                    created_at=epoch_us(row["created_at"]),
                    project=row["project"],
                    ip_hash=row["ip_hash"],
                    properties=properties,
                    set=_object(row["person_set"]),
                    set_once=_object(row["person_set_once"]),
                    verdict=row["verdict"],
                    violations=_violations.decode(row["violations"]) if row["violations"] else None,
                )
            )
        return events


def _object(text: str | None) -> dict[str, Any] | None:
    return msgspec.json.decode(text) if text else None


def stored_columns(table: pa.Table) -> pa.Table:
    """The table without what travels with a row but is not stored on it."""
    return table.drop_columns([c for c in PERSON_COLUMNS if c in table.column_names])


def first_received_rows(table: pa.Table, skip: set[str] | frozenset[str] = frozenset()) -> pa.Table:
    """One row per uuid, the first received, none of those in `skip` (already stored).
    A table with nothing to drop comes back as it is."""
    uuids = table["uuid"].to_pylist()
    unique = set(uuids)
    if len(unique) == len(uuids) and skip.isdisjoint(unique):
        return table
    received = table["created_at"].cast(pa.int64()).to_pylist()
    seen = set(skip)
    kept = []
    for index in sorted(range(len(uuids)), key=received.__getitem__):
        if uuids[index] not in seen:
            seen.add(uuids[index])
            kept.append(index)
    return table.take(pa.array(kept, pa.int64()))


def slice_by_event(
    table: pa.Table, layout: RowLayout
) -> Iterable[tuple[tuple[str, str], pa.Table]]:
    """The table split by (event, project), each part with only the columns it fills."""
    fixed = [name for name in FIXED.names if name not in PERSON_COLUMNS]
    pairs = pa.table({"event": table["event"], "project": table["project"]})
    for group in pairs.group_by(["event", "project"]).aggregate([]).to_pylist():
        name, project = group["event"], group["project"]
        mask = pc.and_(pc.equal(table["event"], name), pc.equal(table["project"], project))
        part = table.filter(mask)
        keep = [*fixed, "person_id", *(c.name for c in layout.own_columns(project, name))]
        yield (name, project), part.select([c for c in keep if c in part.column_names])


def quarantine_table(events: list[StoredEvent]) -> pa.Table:
    """Held-back events whole (properties as JSON), so a replay can re-validate them."""
    return pa.table(
        {
            "uuid": pa.array([e.uuid for e in events], pa.string()),
            "event": pa.array([e.event for e in events], pa.string()),
            "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
            "timestamp": pa.array([e.timestamp for e in events], TIME),
            "created_at": pa.array([e.created_at for e in events], TIME),
            "project": pa.array([e.project for e in events], pa.string()),
            "ip_hash": pa.array([e.ip_hash for e in events], pa.string()),
            "properties": pa.array([_json.encode(e.properties).decode() for e in events]),
            "person_set": pa.array([_text(e.set) for e in events], pa.string()),
            "person_set_once": pa.array([_text(e.set_once) for e in events], pa.string()),
            "verdict": pa.array([e.verdict for e in events], pa.string()),
            "violations": pa.array([_text(e.violations) for e in events], pa.string()),
        }
    )


def forward_payload(event: StoredEvent) -> dict[str, Any]:
    """The event in PostHog's capture shape, after privacy, with its verdict attached."""
    properties = dict(event.properties)
    properties["$eventplan_verdict"] = event.verdict
    properties["$eventplan_violations"] = [
        f"{v.code}:{v.property}" if v.property else v.code for v in event.violations or []
    ]
    payload: dict[str, Any] = {
        "uuid": event.uuid,
        "event": event.event,
        "distinct_id": event.distinct_id,
        "timestamp": datetime.fromtimestamp(event.timestamp / 1e6, UTC).isoformat(),
        "properties": properties,
    }
    if event.set:
        payload["$set"] = event.set
    if event.set_once:
        payload["$set_once"] = event.set_once
    return payload


def outbox_table(events: list[StoredEvent]) -> pa.Table:
    return pa.table(
        {
            "uuid": pa.array([e.uuid for e in events], pa.string()),
            "project": pa.array([e.project for e in events], pa.string()),
            "payload": pa.array(
                [_json.encode(forward_payload(e)).decode() for e in events], pa.string()
            ),
        }
    )


def identity_table(mapping: dict[tuple[str, str], str], key: str) -> pa.Table:
    """Identity changes, (project, `key`) → person, as rows of project, `key`, person_id."""
    return pa.table(
        {
            "project": pa.array([project for project, _ in mapping], pa.string()),
            key: pa.array([value for _, value in mapping], pa.string()),
            "person_id": pa.array(list(mapping.values()), pa.string()),
        }
    )
