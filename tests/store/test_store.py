"""The store interface behaves the same on DuckDB and on ClickHouse (chDB).

Everything above the store (capture's writer, quarantine replay, the forwarder,
alerts, the UI) relies only on what these tests show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from eventplan.errors import EventplanError
from eventplan.plan import Plan
from eventplan.plan.forwarding import ForwardRules
from eventplan.plan.validator import Violation
from eventplan.query.engine import run_query
from eventplan.query.model import DateRange, Series, TrendsQuery
from eventplan.store import QueryError, Store, open_store
from eventplan.store.base import StoreBusy
from eventplan.store.records import StoredEvent
from eventplan.store.transfer import export_events, import_export, is_export
from tests.conftest import BACKENDS, store_url

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def stored(
    event: str = "chat.created",
    distinct_id: str = "p1",
    at: datetime = NOW,
    verdict: str = "valid",
    **properties: object,
) -> StoredEvent:
    micros = int(at.timestamp() * 1_000_000)
    return StoredEvent(
        uuid=str(uuid.uuid4()),
        event=event,
        distinct_id=distinct_id,
        timestamp=micros,
        created_at=micros,
        project="openchat",
        ip_hash="0123456789abcdef",
        properties={
            "app": "openchat-web",
            "chat_id": "c1",
            "source": "sidebar_button",
            "storage_backend": "postgres",
            **properties,
        },
        set=None,
        set_once=None,
        verdict=verdict,
        violations=None
        if verdict == "valid"
        else [Violation("not_in_enum", "source", ["new_button"], "nope", "source is not in enum")],
    )


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path, openchat_plan: Plan) -> Iterator[Store]:
    opened = open_store(store_url(request.param, tmp_path), [openchat_plan])
    yield opened
    opened.close()


def count(store: Store, where: str = "1 = 1") -> int:
    return int(store.sql(f"SELECT count(*) FROM events WHERE {where}")[1][0][0])


def test_a_retried_batch_adds_nothing_the_second_time(store: Store) -> None:
    batch = [stored(distinct_id=f"p{i}") for i in range(30)]
    assert store.insert(batch, 1) == 30
    assert store.insert(batch, 2) == 0
    assert store.insert(batch + batch[:3], 3) == 0  # duplicates inside one batch, too
    assert count(store) == 30
    assert store.wal_seq() == 3


def test_a_uuid_sent_twice_in_one_batch_is_kept_as_first_received(store: Store) -> None:
    first = stored(distinct_id="early")
    resent = msgspec.structs.replace(
        first, distinct_id="late", created_at=first.created_at + 1_000_000
    )
    assert store.insert([resent, stored(), first], 1) == 2
    _, rows = store.sql(f"SELECT distinct_id FROM events WHERE uuid = '{first.uuid}'")
    assert rows == [("early",)]


def test_each_event_keeps_the_plan_version_that_judged_it(store: Store) -> None:
    """A batch may hold events of one name judged by two versions (an export's)."""
    older, newer = stored(), stored()
    older.plan_version, newer.plan_version = "1.0.0", "1.1.0"
    assert store.insert([older, newer], 1) == 2
    _, rows = store.sql("SELECT uuid::VARCHAR, plan_version FROM events_data ORDER BY 2")
    assert rows == [(older.uuid, "1.0.0"), (newer.uuid, "1.1.0")]


def test_typed_and_unplanned_properties_read_back_as_sent(store: Store) -> None:
    event = stored(characters=42, extra_note="kept", source=7)  # 7 does not fit a string column
    store.insert([event], 1)
    _, [[properties]] = store.sql("SELECT properties FROM events")
    assert msgspec.json.decode(properties) == event.properties


def test_meta_values_are_made_once(store: Store) -> None:
    assert store.meta("hash_salt") is None
    first = store.meta_or_create("hash_salt", lambda: "made")
    assert store.meta_or_create("hash_salt", lambda: "again") == first == "made"
    store.set_meta("hash_salt", "changed")
    assert store.meta("hash_salt") == "changed"


def test_identify_merges_a_guest_into_one_person(store: Store) -> None:
    guest = stored(distinct_id="anon-1")
    identify = stored("$identify", "user-1", NOW + timedelta(minutes=1))
    identify.properties["$anon_distinct_id"] = "anon-1"
    later = stored(distinct_id="user-1", at=NOW + timedelta(minutes=2))
    store.insert([guest], 1)
    store.insert([identify, later], 2)
    _, rows = store.sql("SELECT count(DISTINCT person_id) FROM events")
    assert rows == [(1,)]


def alias(distinct_id: str, other: str, at: datetime) -> StoredEvent:
    event = stored("$create_alias", distinct_id, at)
    event.properties["alias"] = other
    return event


def test_identity_from_many_slices_is_written_once_as_if_one_at_a_time(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    def people_of(events: list[StoredEvent]) -> list[StoredEvent]:
        return [msgspec.structs.replace(e) for e in events]

    events = [stored(distinct_id=who, at=NOW + timedelta(seconds=i)) for i, who in enumerate("abc")]
    events[0].set = {"plan": "free", "seats": 1}
    events += [alias("b", "a", NOW + timedelta(minutes=1))]  # a's person into b's
    identify = stored("$identify", "c", NOW + timedelta(minutes=2))
    identify.properties["$anon_distinct_id"] = "b"  # b's (and a's) into c's
    identify.set = {"plan": "pro"}
    events += [identify, stored(distinct_id="a", at=NOW + timedelta(minutes=3))]
    one_by_one = open_store(str(tmp_path / "one.duckdb"), [openchat_plan])
    for seq, event in enumerate(people_of(events), 1):
        one_by_one.insert([event], seq)
    sliced = open_store(str(tmp_path / "sliced.duckdb"), [openchat_plan])
    sliced.slice_size = 1  # every event its own slice, all in one insert
    sliced.insert(people_of(events), 1)
    for query in (
        "SELECT distinct_id, person_id FROM person_distinct_ids ORDER BY ALL",
        "SELECT person_id, properties FROM persons ORDER BY ALL",
        "SELECT old_person_id, person_id FROM person_overrides ORDER BY ALL",
        "SELECT distinct_id, person_id FROM events ORDER BY ALL",
    ):
        assert sliced.sql(query)[1] == one_by_one.sql(query)[1], query
    _, [[persons]] = sliced.sql("SELECT count(DISTINCT person_id) FROM events")
    assert persons == 1
    _, [[people]] = sliced.sql("SELECT count(*) FROM persons")
    assert people == 1  # the two persons merged into the third are gone
    one_by_one.close()
    sliced.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_merges_chain_across_restarts_and_older_stores_derive_their_overrides(
    backend: str, tmp_path: Path, openchat_plan: Plan
) -> None:
    url = store_url(backend, tmp_path)
    store = open_store(url, [openchat_plan])
    store.insert([stored(distinct_id=who) for who in ("a", "b", "c")], 1)
    store.insert([alias("b", "a", NOW + timedelta(minutes=1))], 2)  # a's person into b's
    store.close()
    store = open_store(url, [openchat_plan])  # the merges so far are read back
    store.insert([alias("c", "b", NOW + timedelta(minutes=2))], 3)  # b's (and a's) into c's
    persons = "SELECT count(DISTINCT person_id) FROM events WHERE event = 'chat.created'"
    assert store.sql(persons)[1] == [(1,)]
    # A store written before overrides existed has only its distinct ids: opening it
    # derives the overrides from them.
    if backend == "duckdb":
        store._run("DROP TABLE person_overrides")  # type: ignore[attr-defined]
    else:
        store.engine.command("DROP VIEW person_overrides")  # type: ignore[attr-defined]
        store.engine.command("DROP TABLE person_overrides_rows")  # type: ignore[attr-defined]
    store.close()
    store = open_store(url, [openchat_plan])
    assert store.sql(persons)[1] == [(1,)]
    _, [[properties], *_] = store.sql("SELECT properties FROM events WHERE event = 'chat.created'")
    assert msgspec.json.decode(properties)["source"] == "sidebar_button"  # the view kept them
    store.insert([stored(distinct_id="a", at=NOW + timedelta(minutes=3))], 4)
    assert store.sql(persons)[1] == [(1,)]
    store.close()


def test_quarantine_holds_back_bad_events_until_a_replay(store: Store, openchat_plan: Plan) -> None:
    from eventplan.store.quarantine import replay_quarantine

    good, bad = stored(), stored(verdict="invalid", distinct_id="held")
    assert store.insert([good, bad], 1, quarantine=frozenset({"openchat"})) == 2
    assert count(store) == 1
    [held] = store.quarantined("openchat")
    assert (held.uuid, held.properties, held.violations) == (
        bad.uuid,
        bad.properties,
        bad.violations,
    )
    _, listed = store.quarantine_list(10)
    assert [row[0] for row in listed] == [bad.uuid]
    moved, still = replay_quarantine(store, openchat_plan)  # the event itself is valid
    assert (moved, still) == (1, 0)
    assert store.quarantined("openchat") == []
    assert count(store, "distinct_id = 'held'") == 1


def test_the_outbox_delivers_retries_fails_and_requeues(store: Store, openchat_plan: Plan) -> None:
    events = [stored(distinct_id=f"f{i}") for i in range(4)]
    store.insert(events, 1, forward={"openchat": ForwardRules(openchat_plan)})
    due = store.outbox_due("openchat", 10)
    assert sorted(u for u, _, _ in due) == sorted(e.uuid for e in events)
    assert all('"$eventplan_verdict":"valid"' in payload for _, payload, _ in due)
    store.outbox_delivered([events[0].uuid])
    store.outbox_retry_later([events[1].uuid], 3600, "HTTP 503")
    store.outbox_failed([events[2].uuid], "HTTP 401: bad token")
    assert [u for u, _, _ in store.outbox_due("openchat", 10)] == [events[3].uuid]
    status = store.outbox_status()
    assert (status["pending"], status["failed"]) == (2, 1)
    assert {e["error"] for e in status["errors"]} == {"HTTP 503", "HTTP 401: bad token"}
    assert store.outbox_requeue_failed() == 1
    due = {u: attempts for u, _, attempts in store.outbox_due("openchat", 10)}
    assert due == {events[2].uuid: 1, events[3].uuid: 0}


def test_alert_history_records_changes_and_notifications(store: Store) -> None:
    change = {
        "project": "openchat",
        "alert": "chat_errors",
        "kind": "metric",
        "subject": "",
        "state": "firing",
        "value": 12.0,
        "threshold": "> 10",
        "owner": "backend",
        "at": NOW,
    }
    store.record_alert_changes([change, {**change, "state": "ok", "at": NOW + timedelta(hours=1)}])
    store.mark_alert_notified("openchat", "chat_errors", "", "firing", NOW)
    history = store.alert_history("openchat", 10)
    assert [(h["state"], h["notified"]) for h in history] == [("ok", False), ("firing", True)]
    assert history[1]["value"] == 12.0


def test_recent_events_come_newest_first_with_verdicts(store: Store) -> None:
    store.insert([stored(distinct_id="a")], 1)
    store.insert([stored(distinct_id="b", at=NOW + timedelta(seconds=5), verdict="invalid")], 2)
    recent = store.recent_events("openchat", 10)
    assert [r["distinct_id"] for r in recent] == ["b", "a"]
    assert recent[0]["verdict"] == "invalid"
    assert [(v["code"], v["property"]) for v in recent[0]["violations"]] == [
        ("not_in_enum", "source")
    ]


def test_sql_is_read_only_and_one_statement(store: Store) -> None:
    from eventplan.store import QueryError

    with pytest.raises(QueryError, match="only SELECT"):
        store.sql("DROP TABLE events_data")
    with pytest.raises(QueryError, match="one statement"):
        store.sql("SELECT 1; SELECT 2")
    assert store.sql("SELECT 'a;b' AS x")[1] == [("a;b",)]


@pytest.mark.parametrize(("source", "target"), [("duckdb", "clickhouse"), ("clickhouse", "duckdb")])
def test_export_then_import_moves_a_store_between_backends(
    source: str, target: str, tmp_path: Path, openchat_plan: Plan
) -> None:
    events = [
        stored(distinct_id=f"p{i % 7}", at=NOW - timedelta(days=i % 3, hours=i), characters=i)
        for i in range(60)
    ]
    events.append(stored(verdict="invalid", distinct_id="bad"))
    query = TrendsQuery(
        series=(
            Series("chat.created", math="dau"),
            Series("chat.created", math="sum", math_property="characters"),
        ),
        date_range=DateRange("-7d"),
    )
    first = open_store(store_url(source, tmp_path / "a"), [openchat_plan])
    first.insert(events, 1)
    first.set_meta("hash_salt", "salt-from-a")
    want = run_query(first, openchat_plan, query, NOW + timedelta(hours=1))
    out = tmp_path / "events.parquet"
    assert export_events(first, out, lambda n: None) == len(events)
    first.close()
    assert is_export(out)
    second = open_store(store_url(target, tmp_path / "b"), [openchat_plan])
    try:
        assert import_export(second, out, lambda n: None) == len(events)
        assert import_export(second, out, lambda n: None) == 0  # idempotent
        got = run_query(second, openchat_plan, query, NOW + timedelta(hours=1))
        assert second.meta("hash_salt") == "salt-from-a"
        assert count(second, "verdict = 'invalid'") == 1
    finally:
        second.close()
    assert [r["data"] for r in got["results"]] == [r["data"] for r in want["results"]]
    assert sum(want["results"][1]["data"]) == sum(range(60))


def test_a_duckdb_store_keeps_to_the_memory_limit_it_is_given(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "limited.duckdb"), memory_limit="64MB")
    [[shown]] = store.sql("SELECT current_setting('memory_limit')")[1]
    store.close()
    assert shown == "61.0 MiB"  # 64 MB in DuckDB's binary units
    with pytest.raises(EventplanError, match="Memory must have a number"):
        open_store(str(tmp_path / "other.duckdb"), memory_limit="lots")


def test_a_query_past_the_memory_limit_is_a_busy_store_not_a_bad_query(tmp_path: Path) -> None:
    """An exact median over ten million values cannot spill: with 16 MB it fails, and
    the caller hears 503 with what to do, not a 400 blaming the query."""
    store = open_store(str(tmp_path / "small.duckdb"), memory_limit="16MB")
    big = "SELECT quantile_cont(range, 0.5) FROM range(10000000)"
    try:
        reads = (
            lambda: store.sql(big),
            lambda: store.arrow(big),
            lambda: list(store.arrow_batches(big)),
        )
        for read in reads:
            with pytest.raises(StoreBusy, match=r"16MB.*--memory-limit") as caught:
                read()
            assert caught.value.status == 503
        [[answer]] = store.sql("SELECT 1 + 1")[1]  # and the store goes on
    finally:
        store.close()
    assert answer == 2


def group_identify(key: str, properties: dict[str, object], minutes: int) -> StoredEvent:
    event = stored("$groupidentify", f"$workspace_{key}", NOW + timedelta(minutes=minutes))
    event.properties.update(
        {"$group_type": "workspace", "$group_key": key, "$group_set": properties}
    )
    return event


def test_group_properties_merge_in_order_within_and_across_batches(store: Store) -> None:
    store.insert(
        [
            group_identify("ws-1", {"plan": "free", "seats": 1}, 0),
            group_identify("ws-1", {"plan": "pro"}, 1),
            group_identify("ws-2", {"plan": "free"}, 2),
            group_identify("ws-1", {"seats": 5}, 3),
        ],
        1,
    )
    store.insert([group_identify("ws-2", {"seats": 2}, 4)], 2)
    _, rows = store.sql("SELECT group_key, properties FROM groups ORDER BY group_key")
    assert [(key, msgspec.json.decode(props)) for key, props in rows] == [
        ("ws-1", {"plan": "pro", "seats": 5}),
        ("ws-2", {"plan": "free", "seats": 2}),
    ]


def test_duckdb_rewrites_the_unsettled_tail_sorted_by_event_then_time(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    from eventplan.store.duckdb import EventStore

    path = tmp_path / "settled.duckdb"
    store = EventStore(path, [openchat_plan], sorted_rows=50)
    names = ["chat.created", "dashboard.entered", "$pageview"]
    first = [stored(names[i % 3], f"p{i}", NOW + timedelta(seconds=-i)) for i in range(40)]
    store.insert(first, 1)
    settled = "SELECT settled, count(*) FROM events_data GROUP BY settled ORDER BY settled"
    assert store.sql(settled)[1] == [(False, 40)]  # appended as they came
    second = [stored(names[i % 3], f"q{i}", NOW + timedelta(seconds=i)) for i in range(20)]
    store.insert(second, 2)
    assert store.sql(settled)[1] == [(True, 60)]  # past 50: the tail, rewritten in one go
    _, rows = store.sql("SELECT event, timestamp FROM events_data ORDER BY rowid")
    assert rows == sorted(rows)  # by event, then time: the order insights scan in
    assert store.insert(first + second, 3) == 0  # a retry still finds them
    store.insert([stored(distinct_id="r")], 4)
    store.close()
    store = EventStore(path, [openchat_plan], sorted_rows=50)  # counts what is unsettled
    store.insert([stored(distinct_id=f"s{i}") for i in range(49)], 5)
    assert store.sql(settled)[1] == [(True, 110)]
    assert count(store) == 110
    store.close()


def test_duckdb_sorts_a_large_insert_on_the_way_in_then_the_rows_appended_before_it(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    from eventplan.store.duckdb import EventStore

    store = EventStore(tmp_path / "large.duckdb", [openchat_plan], insert_size=40)
    names = ["chat.created", "dashboard.entered", "$pageview"]
    small = [stored(names[i % 3], f"a{i}", NOW + timedelta(seconds=-i)) for i in range(10)]
    store.insert(small, 1)
    settled = "SELECT settled, count(*) FROM events_data GROUP BY settled ORDER BY settled"
    assert store.sql(settled)[1] == [(False, 10)]  # under half the insert size: appended
    large = [stored(names[i % 3], f"b{i}", NOW + timedelta(seconds=i)) for i in range(20)]
    assert store.insert(large + small[:3], 2) == 20  # the repeated three are found stored
    assert store.sql(settled)[1] == [(True, 30)]
    _, rows = store.sql("SELECT distinct_id, event, timestamp FROM events_data ORDER BY rowid")
    # The large insert went in sorted; the rows appended before it were rewritten
    # sorted after it, and the large insert was not rewritten again.
    assert [who[0] for who, *_ in rows] == ["b"] * 20 + ["a"] * 10
    for run in (rows[:20], rows[20:]):
        assert [(e, t) for _, e, t in run] == sorted((e, t) for _, e, t in run)
    store.close()


def test_a_duckdb_store_from_before_settling_opens_with_its_events(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    path = str(tmp_path / "older.duckdb")
    store = open_store(path, [openchat_plan])
    store.insert([stored(distinct_id=who) for who in ("a", "b")], 1)
    store.insert([alias("b", "a", NOW + timedelta(minutes=1))], 2)
    # Rewrite it the way stores were laid out before: no `settled`, person ids as
    # UUIDs everywhere.
    for statement in (
        "DROP VIEW events",
        "ALTER TABLE events_data DROP COLUMN settled",
        "ALTER TABLE events_data ALTER person_id TYPE UUID",
        "CREATE TABLE old_overrides AS SELECT project, old_person_id::UUID AS old_person_id, "
        "person_id::UUID AS person_id FROM person_overrides",
        "DROP TABLE person_overrides",
        "CREATE TABLE person_overrides (project VARCHAR, old_person_id UUID, "
        "person_id UUID NOT NULL, PRIMARY KEY (project, old_person_id))",
        "INSERT INTO person_overrides SELECT * FROM old_overrides",
        "DROP TABLE old_overrides",
    ):
        store._run(statement)  # type: ignore[attr-defined]
    store.close()
    store = open_store(path, [openchat_plan])
    persons = "SELECT count(*), count(DISTINCT person_id) FROM events WHERE event = 'chat.created'"
    assert store.sql(persons)[1] == [(2, 1)]
    store.insert([stored(distinct_id="a", at=NOW + timedelta(minutes=2))], 3)
    store.insert([alias("c", "b", NOW + timedelta(minutes=3))], 4)
    store.insert([stored(distinct_id="c", at=NOW + timedelta(minutes=4))], 5)
    assert store.sql(persons)[1] == [(4, 1)]
    _, rows = store.sql("SELECT settled, count(*) FROM events_data GROUP BY ALL ORDER BY ALL")
    assert rows == [(False, 3), (True, 3)]  # what was there stays put
    _, [[kind]] = store.sql(
        "SELECT data_type FROM duckdb_columns() "
        "WHERE table_name = 'events_data' AND column_name = 'person_id'"
    )
    assert kind == "UUID"  # kept as it was; only new stores store text
    store.close()


def test_duckdb_keeps_inserting_when_sorting_the_tail_runs_out_of_memory(
    tmp_path: Path, openchat_plan: Plan, caplog: pytest.LogCaptureFixture
) -> None:
    from eventplan.store.duckdb import EventStore

    # A limit that takes 1,000-event inserts but not sorting 20,000 rows of one event
    # name (all of these are the same event) in one go.
    store = EventStore(
        tmp_path / "tight.duckdb", [openchat_plan], memory_limit="20MB", sorted_rows=20_000
    )
    for batch in range(22):
        events = [
            stored(distinct_id=f"p{batch}-{i}", title_length=i, model_id="openai/gpt-4o" * 8)
            for i in range(1_000)
        ]
        assert store.insert(events, batch + 1) == 1_000
    assert "could not sort the newest 20000 events into place" in caplog.text
    assert "next try at 40000" in caplog.text
    _, rows = store.sql("SELECT settled, count(*) FROM events_data GROUP BY ALL")
    assert rows == [(False, 22_000)]  # all there, as inserted
    store.close()


def test_sql_reads_at_most_max_rows_even_after_a_trailing_comment(store: Store) -> None:
    rows_of = "range(10)" if store.dialect == "duckdb" else "numbers(10)"
    query = f"SELECT * FROM {rows_of} -- all ten"
    assert len(store.sql(query)[1]) == 10
    assert len(store.sql(query, max_rows=3)[1]) == 3
    assert len(store.sql(query + "\n;", max_rows=30)[1]) == 10


def test_a_query_past_its_timeout_is_stopped_and_the_store_answers_the_next(store: Store) -> None:
    endless = (
        "SELECT count(*) FROM range(1000000000000)"
        if store.dialect == "duckdb"
        else "SELECT count() FROM numbers(1000000000000)"
    )
    with pytest.raises(QueryError, match=r"ran longer than 0\.5 s and was stopped"):
        store.sql(endless, timeout=0.5)
    # A quick query under the same timeout is untouched, and so is the next one.
    assert store.sql("SELECT 41 + 1", timeout=0.5)[1] == [(42,)]
    assert store.sql("SELECT 7")[1] == [(7,)]
