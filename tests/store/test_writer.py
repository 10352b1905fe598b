"""The background writer: log records in, inserts of exactly the store's size out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from eventplan.capture.judge import Pipeline
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.store.base import StoreUnavailable
from eventplan.store.duckdb import EventStore
from eventplan.store.records import (
    LoggedEvent,
    StoredEvent,
    columns_of,
    encode_columns,
    encode_logged,
    events_in,
)
from eventplan.store.wal import WriteAheadLog
from eventplan.store.writer import UNSTORED, BackgroundWriter, Piece, chunks, groups_of
from tests.conftest import SmallDisk
from tests.store.test_store import NOW, stored


def received(events: list[StoredEvent]) -> list[LoggedEvent]:
    return [
        LoggedEvent(
            e.uuid, e.event, e.distinct_id, e.timestamp, e.created_at, e.project,
            e.ip_hash, e.properties, e.set, e.set_once,
        )
        for e in events
    ]  # fmt: skip


def logged(events: list[StoredEvent]) -> bytes:
    """Events as an older version logged them (received, not yet judged)."""
    return encode_logged(received(events))


def laid_out(events: list[StoredEvent], plan: Plan) -> bytes:
    """Events as capture logs them: judged, and laid out in the store's columns."""
    pipeline = Pipeline(plan, b"test")
    return encode_columns(columns_of(pipeline.stored(received(events)), pipeline.property_types))


def judge(store: EventStore, plan: Plan) -> Callable[[list[LoggedEvent]], list[StoredEvent]]:
    return Project("openchat", plan, store, salt=b"test").judge


def records(
    wal: WriteAheadLog, count: int, size: int, plan: Plan | None = None
) -> list[tuple[int, int]]:
    """`count` log records of `size` events each, written to the log as capture does
    (laid out by `plan`), or as an older version did."""
    written = []
    for record in range(count):
        events = [
            stored(
                ("chat.created", "$pageview")[i % 2],
                f"r{record}-{i}",
                NOW + timedelta(seconds=record * size + i),
            )
            for i in range(size)
        ]
        record = laid_out(events, plan) if plan is not None else logged(events)
        written.append((wal.write_group([record]), size))
    return written


def settled_counts(store: EventStore) -> list[tuple[bool, int]]:
    _, rows = store.sql("SELECT settled, count(*) FROM events_data GROUP BY ALL ORDER BY ALL")
    return rows


def test_chunks_end_exactly_at_the_size_and_split_the_record_that_crosses_it() -> None:
    pieces = [Piece(seq, 100) for seq in (1, 2, 3)]
    sizes = [[(p.seq, p.size, p.ends_record) for p in chunk] for chunk in chunks(pieces, 120)]
    assert sizes == [
        [(1, 100, True), (2, 20, False)],
        [(2, 80, True), (3, 40, False)],
        [(3, 60, True)],
    ]


def test_the_writer_inserts_whole_sorted_row_groups_and_records_the_last_whole_record(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    store = EventStore(tmp_path / "w.duckdb", [openchat_plan], insert_size=250)
    wal = WriteAheadLog(tmp_path / "log")
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan), interval=0.2, max_wait=30)
    for seq, size in records(wal, 6, 100, openchat_plan):
        writer.submit(seq, size)
    writer.start()  # all 600 wait already: two inserts of 250, then the last 100 at once
    assert writer.flush(timeout=30)
    writer.stop()
    assert writer.stats.inserted == 600
    assert writer.stats.batches == 3
    assert store.wal_seq() == 6
    # The last 100 went in on the interval, appended as they came, to be sorted later.
    assert settled_counts(store) == [(False, 100), (True, 500)]
    _, rows = store.sql("SELECT event, timestamp FROM events_data ORDER BY rowid LIMIT 250")
    assert rows == sorted(rows)  # the first insert went in by event, then time
    store.close()
    wal.close()


def test_a_crash_between_the_halves_of_a_split_record_stores_each_event_once(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    path = tmp_path / "crash.duckdb"
    wal = WriteAheadLog(tmp_path / "log")
    written = records(wal, 3, 100, openchat_plan)
    store = EventStore(path, [openchat_plan], insert_size=250)
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan))
    first, _ = chunks([Piece(seq, size) for seq, size in written], 250)
    writer._insert(first)  # records 1 and 2 whole, the head of record 3; then the crash
    assert store.wal_seq() == 2  # the split record is not past the recorded position
    store.close()

    store = EventStore(path, [openchat_plan], insert_size=250)
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan))
    assert writer.replay() == 50  # record 3 again: its head is found stored, its tail goes in
    assert writer.stats.duplicates == 50
    assert store.wal_seq() == 3
    _, [[events, distinct]] = store.sql("SELECT count(*), count(DISTINCT uuid) FROM events_data")
    assert events == distinct == 300
    store.close()
    wal.close()


def test_each_half_of_a_split_record_is_judged_once(tmp_path: Path, openchat_plan: Plan) -> None:
    """Three records of 100 as an older version logged them (not judged), in inserts
    of 250: the third is split, and each of its halves is judged alone, so 300 events
    are judged (and counted) for 300 stored."""
    store = EventStore(tmp_path / "j.duckdb", [openchat_plan], insert_size=250)
    wal = WriteAheadLog(tmp_path / "log")
    judged: list[int] = []
    project_judge = judge(store, openchat_plan)

    def counted(events: list[LoggedEvent]) -> list[StoredEvent]:
        judged.append(len(events))
        return project_judge(events)

    writer = BackgroundWriter(store, wal, counted)
    for chunk in chunks([Piece(seq, size) for seq, size in records(wal, 3, 100)], 250):
        writer._insert(chunk)
    _, [[events, distinct]] = store.sql("SELECT count(*), count(DISTINCT uuid) FROM events_data")
    store.close()
    wal.close()
    assert judged == [100, 100, 50, 50]
    assert events == distinct == 300


def test_an_insert_reads_its_records_from_the_log_and_a_retry_reads_them_again(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    wal = WriteAheadLog(tmp_path / "log")
    written = records(wal, 3, 100, openchat_plan)
    store = EventStore(tmp_path / "r.duckdb", [openchat_plan])
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan))
    _, second, third = chunks([Piece(seq, size) for seq, size in written], 120)
    assert [(p.seq, p.start, p.size) for p in second] == [(2, 20, 80), (3, 0, 40)]

    def distinct_ids(pieces: list[Piece]) -> list[str]:
        return [e.distinct_id for e in events_in(list(groups_of(pieces, writer._read)))]

    # A record holds its events by name (even numbers, then odd), and a piece of it
    # is its events from `start` on in that order.
    def in_record(record: int) -> list[str]:
        return [f"r{record}-{i}" for i in (*range(0, 100, 2), *range(1, 100, 2))]

    first_try = distinct_ids(second)
    assert first_try == in_record(1)[20:] + in_record(2)[:40]
    assert all(piece.groups is None for piece in second)  # nothing kept once decoded
    assert distinct_ids(third) == in_record(2)[40:]
    # A retry goes back in the log for them.
    assert distinct_ids(second) == first_try
    store.close()
    wal.close()


def poisoned_log(wal: WriteAheadLog, plan: Plan) -> tuple[list[tuple[int, int]], str]:
    """Three records of 100 events; the second holds one the store cannot take, a
    time at int64's limit (capture no longer lets one through; an older log might)."""
    written = records(wal, 3, 100, plan)
    poison = stored("chat.created", "poison")
    poison.timestamp = -(2**63) + 1
    good = [stored("chat.created", f"beside-{i}", NOW) for i in range(99)]
    wal.write_group([laid_out([*good[:40], poison, *good[40:]], plan)])
    return [*written, (4, 100)], poison.uuid


def test_an_event_the_store_refuses_alone_is_set_aside_and_the_rest_go_in(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    store = EventStore(tmp_path / "p.duckdb", [openchat_plan], insert_size=250)
    wal = WriteAheadLog(tmp_path / "log")
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan), interval=0.2)
    written, poison = poisoned_log(wal, openchat_plan)
    for seq, size in written:
        writer.submit(seq, size)
    writer.start()
    assert writer.flush(timeout=60)
    writer.stop()
    assert writer.stats.unstored == 1 and writer.stats.inserted == 399
    assert store.wal_seq() == 4
    _, [[count, distinct]] = store.sql("SELECT count(*), count(DISTINCT uuid) FROM events_data")
    assert count == distinct == 399
    [line] = (tmp_path / "log" / UNSTORED).read_bytes().splitlines()
    kept = msgspec.json.decode(line)
    assert kept["seq"] == 4 and kept["event"]["uuid"] == poison
    assert kept["event"]["timestamp"] == -(2**63) + 1 and kept["error"]
    store.close()
    wal.close()


def test_when_the_store_takes_no_write_at_all_nothing_is_set_aside(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    path = tmp_path / "ro.duckdb"
    EventStore(path, [openchat_plan]).close()
    store = EventStore(path, [openchat_plan], read_only=True)  # every write fails
    wal = WriteAheadLog(tmp_path / "log")
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan))
    written, _ = poisoned_log(wal, openchat_plan)
    pieces = [Piece(seq, size) for seq, size in written]
    with pytest.raises(Exception, match="read-only"):
        writer._insert_halving(pieces, None)
    assert writer.stats.unstored == 0
    assert not (tmp_path / "log" / UNSTORED).exists()
    store.close()
    wal.close()


def test_set_aside_events_are_offered_again_on_start_and_leave_the_file_once_stored(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    # As after an upgrade: one event an older version refused now fits; one still does
    # not. A line cut short by a crash is kept as it is, and each event is kept once.
    store = EventStore(tmp_path / "p.duckdb", [openchat_plan])
    wal = WriteAheadLog(tmp_path / "log")
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan))
    poison = stored("chat.created", "poison")
    poison.timestamp = -(2**63) + 1
    fits = stored("chat.created", "fits-now", NOW)
    writer._set_aside(4, [poison, fits, poison, fits], RuntimeError("refused back then"))
    path = tmp_path / "log" / UNSTORED
    torn = b'{"seq": 9, "error": "x", "event": {"uuid": "7f'
    with path.open("ab") as out:
        out.write(torn)

    assert writer.retry_set_aside() == 1
    assert writer.stats.unstored == 2
    _, rows = store.sql("SELECT distinct_id FROM events_data")
    assert rows == [("fits-now",)]
    lines = path.read_bytes().splitlines()
    assert [msgspec.json.decode(lines[0])["event"]["uuid"], lines[1]] == [poison.uuid, torn]

    assert writer.retry_set_aside() == 0  # nothing more fits; the file stays as it is
    assert path.read_bytes().splitlines() == lines
    store.close()
    wal.close()


def fill_until_the_store_fails(
    writer: BackgroundWriter, wal: WriteAheadLog, disk: SmallDisk, duckdb_log: Path, plan: Plan
) -> int:
    """Records of 2,000 events until an insert fails; returns the events submitted.

    DuckDB's own log is filled near its checkpoint threshold (16 MB) before the disk
    is filled: the commit that crosses it starts a checkpoint that cannot be written,
    and DuckDB invalidates the database, as it does in production."""
    submitted = 0
    filled = False
    for _ in range(300):
        for seq, size in records(wal, 1, 2000, plan):
            writer.submit(seq, size)
            submitted += size
        writer.flush(timeout=60, while_failing=False)
        if writer.stats.failing:
            return submitted
        if not filled and duckdb_log.exists() and duckdb_log.stat().st_size > 12_000_000:
            disk.fill(leave=8_000_000)
            filled = True
    raise AssertionError("the store never failed")


def test_a_full_store_disk_waits_and_recovers_without_a_restart(
    tmp_path: Path, small_disk: Callable[[str, int], SmallDisk], openchat_plan: Plan
) -> None:
    disk = small_disk("store", 40)
    store = EventStore(disk.path / "w.duckdb", [openchat_plan], insert_size=2000)
    wal = WriteAheadLog(tmp_path / "log")
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan), interval=0.05)
    writer.start()
    submitted = fill_until_the_store_fails(
        writer, wal, disk, disk.path / "w.duckdb.wal", openchat_plan
    )
    assert store.broken  # DuckDB invalidated the database: nothing works until reopened
    with pytest.raises(StoreUnavailable, match=r"is failing: FATAL"):
        store.sql("SELECT count(*) FROM events")
    disk.release()
    assert writer.flush(timeout=120)  # the writer reopens the store by itself
    assert writer.stats.reopened >= 1 and not writer.stats.failing
    _, rows = store.sql("SELECT count(*), count(DISTINCT uuid) FROM events")
    assert rows == [(submitted, submitted)]  # none lost, none doubled
    writer.stop()
    store.close()


def test_stop_ends_the_retries_of_a_failing_store_and_the_log_keeps_the_events(
    tmp_path: Path, small_disk: Callable[[str, int], SmallDisk], openchat_plan: Plan
) -> None:
    disk = small_disk("store", 40)
    path = disk.path / "w.duckdb"
    store = EventStore(path, [openchat_plan], insert_size=2000)
    wal = WriteAheadLog(tmp_path / "log")
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan), interval=0.05)
    writer.start()
    submitted = fill_until_the_store_fails(
        writer, wal, disk, disk.path / "w.duckdb.wal", openchat_plan
    )
    writer.stop()  # returns while the store still fails (a hang here is the bug)
    store.close()
    wal.close()
    disk.release()
    reopened = EventStore(path, [openchat_plan])
    again = BackgroundWriter(
        reopened, WriteAheadLog(tmp_path / "log"), judge(reopened, openchat_plan)
    )
    again.replay()
    _, rows = reopened.sql("SELECT count(*), count(DISTINCT uuid) FROM events")
    assert rows == [(submitted, submitted)]
    reopened.close()


def test_a_log_written_by_an_older_version_is_stored_as_it_was_judged(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    """Older versions logged judged events as msgpack arrays, and before that events
    as received, not judged (JSON lines); a log left by either is stored on the next
    start, verdicts and all, beside records in columns."""
    store = EventStore(tmp_path / "old.duckdb", [openchat_plan])
    wal = WriteAheadLog(tmp_path / "log")
    old = [stored("chat.created", f"old-{i}", verdict="invalid") for i in range(5)]
    wal.write_group([msgspec.msgpack.encode(old)])
    new = [stored("chat.created", f"new-{i}") for i in range(3)]
    wal.write_group([logged(new)])
    newest = [stored("chat.created", f"newest-{i}") for i in range(2)]
    wal.write_group([laid_out(newest, openchat_plan)])
    writer = BackgroundWriter(store, wal, judge(store, openchat_plan))
    assert writer.replay() == 10
    _, rows = store.sql("SELECT distinct_id, verdict FROM events ORDER BY distinct_id")
    assert rows == [
        *((f"new-{i}", "valid") for i in range(3)),
        *((f"newest-{i}", "valid") for i in range(2)),
        *((f"old-{i}", "invalid") for i in range(5)),
    ]
    store.close()
    wal.close()
