"""A batch of stored events as Arrow tables, the form every backend inserts.

Planned properties go to their typed column when the value fits the type; the
rest (and a value that does not fit) stays in `properties_rest` JSON, so nothing
an event carried is lost on the way to a column.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa

from eventplan.plan.model import PropertyType
from eventplan.store.columns import ARROW_TYPES, Column
from eventplan.store.records import StoredEvent

_json = msgspec.json.Encoder()
_NO = object()
TIME = pa.timestamp("us", tz="UTC")


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


def _text(value: Any) -> str | None:
    return _json.encode(value).decode() if value else None


def events_table(
    events: list[StoredEvent],
    person_ids: list[str],
    columns: list[Column],
    event_columns: Callable[[str, str], dict[str, Column]],
) -> pa.Table:
    """The fixed columns, then one typed column per planned (property, type)."""
    index_of = {column.name: i for i, column in enumerate(columns)}
    typed: list[list[Any]] = [[None] * len(events) for _ in columns]
    # Per event name: each planned key's column values, the type stored as it is (see
    # AS_IS), and the fit for any other value, looked up once.
    Target = tuple[list[Any], type | None, Callable[[Any], Any]]
    targets_of: dict[tuple[str, str], dict[str, Target]] = {}
    rest_json: list[str | None] = []
    for row, event in enumerate(events):
        which = (event.project, event.event)
        targets = targets_of.get(which)
        if targets is None:
            targets = targets_of[which] = {
                key: (typed[index_of[column.name]], AS_IS.get(column.type), FITS[column.type])
                for key, column in event_columns(*which).items()
            }
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
        rest_json.append(_text(rest))
    arrays: dict[str, pa.Array] = {
        "uuid": pa.array([e.uuid for e in events], pa.string()),
        "event": pa.array([e.event for e in events], pa.string()),
        "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
        "person_id": pa.array(person_ids, pa.string()),
        "timestamp": pa.array([e.timestamp for e in events], TIME),
        "created_at": pa.array([e.created_at for e in events], TIME),
        "project": pa.array([e.project for e in events], pa.string()),
        "ip_hash": pa.array([e.ip_hash for e in events], pa.string()),
        "verdict": pa.array([e.verdict for e in events], pa.string()),
        "violations": pa.array([_text(e.violations) for e in events], pa.string()),
        "plan_version": pa.array([e.plan_version for e in events], pa.string()),
        "properties_rest": pa.array(rest_json, pa.string()),
    }
    for column, values in zip(columns, typed, strict=True):
        arrays[column.name] = pa.array(values, ARROW_TYPES[column.type])
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
