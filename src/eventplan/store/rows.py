"""A batch of stored events as Arrow tables, the form every backend inserts.

The events come laid out in columns (`records.EventColumns`): planned properties
in their typed column when the value fits the type, the rest (and a value that does
not fit) in `properties_rest` JSON, so nothing an event carried is lost on the way
to a column.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa

from eventplan.store.columns import Column
from eventplan.store.records import EventColumns, StoredEvent, json_text

_json = msgspec.json.Encoder()
TIME = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "datetime": pa.string(),
}


def events_table(
    groups: list[EventColumns],
    person_ids: list[list[str]],
    columns: list[Column],
    event_columns: Callable[[str, str], dict[str, Column]],
) -> pa.Table:
    """The fixed columns, then `columns`, the typed ones (NULL where a group has none):
    the groups' lists joined, with no step per property."""

    def joined(values_of: Callable[[EventColumns], tuple[Any, ...]]) -> list[Any]:
        return [value for group in groups for value in values_of(group)]

    def repeated(value_of: Callable[[EventColumns], Any]) -> list[Any]:
        return [value for group in groups for value in [value_of(group)] * group.size]

    arrays: dict[str, pa.Array] = {
        "uuid": pa.array(joined(lambda g: g.uuid), pa.string()),
        "event": pa.array(repeated(lambda g: g.event), pa.string()),
        "distinct_id": pa.array(joined(lambda g: g.distinct_id), pa.string()),
        "person_id": pa.array([p for people in person_ids for p in people], pa.string()),
        "timestamp": pa.array(joined(lambda g: g.timestamp), TIME),
        "created_at": pa.array(joined(lambda g: g.created_at), TIME),
        "project": pa.array(repeated(lambda g: g.project), pa.string()),
        "ip_hash": pa.array(joined(lambda g: g.ip_hash), pa.string()),
        "verdict": pa.array(joined(lambda g: g.verdict), pa.string()),
        "violations": pa.array(joined(lambda g: g.violations), pa.string()),
        "plan_version": pa.array(repeated(lambda g: g.plan_version), pa.string()),
        "properties_rest": pa.array(joined(lambda g: g.rest), pa.string()),
    }
    typed: dict[str, list[Any]] = {column.name: [] for column in columns}
    for group in groups:
        own = event_columns(group.project, group.event)
        present = {own[t.key].name: t.values for t in group.typed}
        for name, values in typed.items():
            values.extend(present.get(name) or (None,) * group.size)
    for column in columns:
        arrays[column.name] = pa.array(typed[column.name], ARROW_TYPES[column.type])
    return pa.table(arrays)


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
            "person_set": pa.array([json_text(e.set) for e in events], pa.string()),
            "person_set_once": pa.array([json_text(e.set_once) for e in events], pa.string()),
            "verdict": pa.array([e.verdict for e in events], pa.string()),
            "violations": pa.array([json_text(e.violations) for e in events], pa.string()),
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
