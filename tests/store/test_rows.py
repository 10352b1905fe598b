"""Rows: how capture lays an event out in the log, and how the store reads it back.

A planned property's value goes to its typed column only when it fits the type;
anything else stays in `properties_rest`, so reading a row back gives the event
as it was stored, whatever its values.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.plan import Plan
from eventplan.plan.validator import Violation
from eventplan.store.duckdb import EventStore
from eventplan.store.records import StoredEvent
from eventplan.store.rows import RowLayout, first_received_rows
from tests.plan.test_schema import features, json_values

EVENT = "chat_message_stream"  # plans text, integer, number and boolean properties


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, openchat_plan: Plan) -> RowLayout:
    store = EventStore(tmp_path_factory.mktemp("rows") / "rows.duckdb", [openchat_plan])
    store.close()
    return store.layout


def event_with(properties: dict[str, Any], **fields: Any) -> StoredEvent:
    values: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "event": EVENT,
        "distinct_id": "u1",
        "timestamp": 1_780_000_000_000_000,
        "created_at": 1_780_000_000_000_001,
        "project": "openchat",
        "ip_hash": "0123456789abcdef",
        "properties": properties,
        "set": None,
        "set_once": None,
        "verdict": "valid",
        "violations": None,
        **fields,
    }
    return StoredEvent(**values)


def test_a_planned_value_that_fits_goes_to_its_column_and_the_rest_stays_json(
    layout: RowLayout, openchat_plan: Plan
) -> None:
    planned = openchat_plan.properties_of(EVENT)
    integer = next(name for name, prop in planned.items() if prop.type == "integer")
    text = next(name for name, prop in planned.items() if prop.type == "string")
    row = layout.row(event_with({integer: 12.0, text: 7, "extra": [1, 2]}))
    column = next(c.name for c in layout.columns if c.key == integer and c.type == "integer")
    assert row[column] == 12 and isinstance(row[column], int)  # 12.0 is the integer 12
    # A number where text is planned does not fit: it stays, as sent, with the unplanned.
    assert msgspec.json.decode(row["properties_rest"]) == {text: 7, "extra": [1, 2]}


def test_rows_read_back_with_typed_columns_times_and_person_updates(layout: RowLayout) -> None:
    event = event_with(
        {"status": "streaming"},
        set={"email": "a@b.c"},
        set_once={"first_seen": "web"},
        verdict="invalid",
        violations=[Violation("not_in_enum", "status", ["done"], "streaming", "not allowed")],
    )
    table = layout.read(layout.encode([event]))
    assert table.num_rows == 1
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert layout.events(table) == [event]


@pytest.mark.parametrize("plan_name", ["openchat", "features"])
def test_any_event_reads_back_as_it_was_laid_out(
    tmp_path: Path, openchat_plan: Plan, plan_name: str
) -> None:
    """Whatever the values, planned or not, fitting their column or not: the same
    event comes back (12.0 in an integer column reads back as 12, equal in Python).
    The features plan has every property type; OpenChat's has no `number`."""
    plan = openchat_plan if plan_name == "openchat" else features()
    store = EventStore(tmp_path / "any.duckdb", [plan])
    store.close()
    layout = store.layout
    assert {c.type for c in layout.columns} >= {"string", "integer", "boolean"}

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def round_trip(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(plan.events)))
        keys = [*sorted(plan.properties_of(name)), "$browser", "unplanned"]
        properties = data.draw(st.dictionaries(st.sampled_from(keys), json_values, max_size=12))
        event = event_with(properties, event=name, project=plan.name)
        [back] = layout.events(layout.read(layout.encode([event])))
        assert back == event

    round_trip()


def test_first_received_keeps_one_row_per_uuid_and_skips_stored_ones(layout: RowLayout) -> None:
    first = event_with({}, created_at=10)
    resent = event_with({}, uuid=first.uuid, created_at=20, distinct_id="later")
    stored_before = event_with({}, created_at=5)
    table = layout.read(layout.encode([resent, stored_before, first]))
    kept = first_received_rows(table, {stored_before.uuid})
    assert kept["uuid"].to_pylist() == [first.uuid]
    assert kept["distinct_id"].to_pylist() == ["u1"]
    whole = table.slice(1, 2)
    assert first_received_rows(whole) is whole  # nothing to drop: the same table


def test_a_store_takes_records_written_for_it(tmp_path: Path, openchat_plan: Plan) -> None:
    store = EventStore(tmp_path / "records.duckdb", [openchat_plan])
    events = [event_with({"status": "done", "duration_ms": i, "x": [i]}) for i in range(5)]
    assert store.insert_records([store.layout.encode(events)], wal_seq=1) == 5
    assert store.wal_seq() == 1
    _, rows = store.sql("SELECT uuid::VARCHAR, properties FROM events")
    assert sorted((uuid_, msgspec.json.decode(props)) for uuid_, props in rows) == sorted(
        (e.uuid, e.properties) for e in events
    )
    store.close()
