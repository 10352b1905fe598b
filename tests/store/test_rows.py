"""A batch laid out in its typed columns, as an obviously-correct loop lays it out.

Over the OpenChat plan and one whose names differ only in case (`Size`, `size`: two
columns, which SQL names must tell apart) or hold `/` and `~`.

Capture lays a request's events out in columns before it logs them; the store joins
the columns into one Arrow table. `reference_table` is the layout written out in
Python, one value at a time: a value
goes to its event's column for its key when it fits the column's type (text in text,
a boolean in a boolean, an integer or an integral float within int64 in an integer,
any number but a boolean in a number); everything else stays in `properties_rest`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.plan import Plan
from eventplan.store.columns import BUILTIN_TYPES, Column
from eventplan.store.duckdb import EventStore
from eventplan.store.records import StoredEvent, columns_of, events_in
from eventplan.store.rows import events_table
from tests.load.test_judge_sql import edges
from tests.plan.test_schema import json_values, openchat

NO = object()


def fits(column: Column, value: Any) -> Any:
    if column.type in ("string", "datetime"):
        return value if isinstance(value, str) else NO
    if column.type == "boolean":
        return value if isinstance(value, bool) else NO
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NO
    if column.type == "number":
        return float(value)
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else NO
    return int(value) if value.is_integer() and abs(value) < 2**63 else NO


def reference_table(
    events: list[StoredEvent], event_columns: Callable[[str, str], dict[str, Column]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any] | None]]:
    """Each event's typed values by column name, and its rest (None when empty)."""
    typed, rests = [], []
    for event in events:
        targets = event_columns(event.project, event.event)
        values: dict[str, Any] = {}
        rest: dict[str, Any] = {}
        for key, value in event.properties.items():
            column = targets.get(key)
            stored = fits(column, value) if column is not None and value is not None else NO
            if stored is NO:
                rest[key] = value
            else:
                values[column.name] = stored  # type: ignore[union-attr]
        typed.append(values)
        rests.append(rest or None)
    return typed, rests


def event_batches(plan: Plan) -> st.SearchStrategy[list[StoredEvent]]:
    """Batches of the plan's events (and one it lacks) with any JSON properties, under
    planned names, built-in ones and others."""
    keys = [
        *sorted({k for e in plan.events for k in plan.properties_of(e)}),
        *(key for key, _ in BUILTIN_TYPES),
        "other",
        "$lib",
    ]
    batches = st.lists(
        st.tuples(
            st.sampled_from([*sorted(plan.events), "not.planned"]),
            st.dictionaries(st.sampled_from(keys), json_values, max_size=6),
        ),
        min_size=1,
        max_size=20,
    )
    return batches.map(
        lambda batch: [
            event(plan, name, msgspec.json.decode(msgspec.json.encode(props)))
            for name, props in batch
            if all(not isinstance(v, int) or -(2**63) <= v < 2**64 for v in props.values())
        ]
    )


def as_stored(column: Column | None, value: Any) -> Any:
    """The value as an event whole again carries it: as its column holds it, if any."""
    stored = fits(column, value) if column is not None and value is not None else NO
    return value if stored is NO else stored


def laid_out(events: list[StoredEvent], store: EventStore) -> pa.Table:
    """The events as capture logs them (in columns), then as the store inserts them."""
    groups = columns_of(events, store.property_types)
    persons = [["p"] * group.size for group in groups]
    return events_table(groups, persons, store.columns, store.event_columns)


def event(plan: Plan, name: str, properties: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        str(uuid.uuid4()), name, "d", 1, 2, plan.name, None, properties, None, None, "valid", None
    )


@pytest.mark.parametrize("make_plan", [edges, openchat], ids=["edges", "openchat"])
def test_any_properties_are_laid_out_as_the_loop_lays_them_out(
    tmp_path: Path, make_plan: Callable[[], Plan]
) -> None:
    plan = make_plan()
    store = EventStore(tmp_path / "rows.duckdb", [plan])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(event_batches(plan))
    def agree(events: list[StoredEvent]) -> None:
        if not events:
            return
        table = laid_out(events, store)
        typed, rests = reference_table(events, store.event_columns)
        row_of = {row["uuid"]: row for row in table.to_pylist()}
        assert len(row_of) == len(events)
        for values, rest, sent in zip(typed, rests, events, strict=True):
            row = row_of[sent.uuid]
            assert row["uuid"] == sent.uuid and row["event"] == sent.event
            assert (row["timestamp"].timestamp(), row["person_id"]) == (1e-6, "p")
            got = {c.name: row[c.name] for c in store.columns if row.get(c.name) is not None}
            assert got == values, sent.properties
            found = msgspec.json.decode(row["properties_rest"]) if row["properties_rest"] else None
            assert found == rest, sent.properties
            assert list(found or ()) == list(rest or ())  # in the order sent

    agree()
    store.close()


def test_values_at_the_edges_of_their_columns_types(tmp_path: Path) -> None:
    """Integers past 64 bits and booleans stay in the rest however a column is typed;
    an integral float is an integer; an integer is a number."""
    plan = openchat()
    store = EventStore(tmp_path / "edges.duckdb", [plan])
    sent = {
        "$ai_input_tokens": 2**63,  # one past int64: the rest
        "$ai_output_tokens": -(2**63),  # int64's least: its column
        "openrouter_status": True,  # a boolean is not an integer
        "openrouter_latency_ms": 3.0,  # an integral float is one
        "$ai_http_status": 200.5,  # a fraction is not
        "$ai_latency": 7,  # an integer is a number
    }
    events = [event(plan, "$ai_generation", sent)]
    row = laid_out(events, store).to_pylist()[0]
    store.close()
    columns = store.event_columns(plan.name, "$ai_generation")
    typed = {key: row[column.name] for key, column in columns.items() if key in sent}
    assert typed == {
        "$ai_input_tokens": None,
        "$ai_output_tokens": -(2**63),
        "openrouter_status": None,
        "openrouter_latency_ms": 3,
        "$ai_http_status": None,
        "$ai_latency": 7.0,
    }
    assert msgspec.json.decode(row["properties_rest"]) == {
        "$ai_input_tokens": 2**63,
        "openrouter_status": True,
        "$ai_http_status": 200.5,
    }


@pytest.mark.parametrize("make_plan", [edges, openchat], ids=["edges", "openchat"])
def test_events_laid_out_in_columns_come_back_whole(
    tmp_path: Path, make_plan: Callable[[], Plan]
) -> None:
    """What needs an event whole again (quarantine, the outbox, the live feed) gets
    every property back, typed values as their columns hold them."""
    plan = make_plan()
    store = EventStore(tmp_path / "whole.duckdb", [plan])

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(event_batches(plan))
    def whole(events: list[StoredEvent]) -> None:
        back = {e.uuid: e for e in events_in(columns_of(events, store.property_types))}
        assert len(back) == len(events)
        for sent in events:
            columns = store.event_columns(sent.project, sent.event)
            expected = {
                key: as_stored(columns.get(key), value) for key, value in sent.properties.items()
            }
            assert back[sent.uuid].properties == expected
            assert msgspec.structs.replace(back[sent.uuid], properties={}) == (
                msgspec.structs.replace(sent, properties={})
            )

    whole()
    store.close()
