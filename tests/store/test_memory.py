"""The store's process hands freed memory back: Arrow allocates where `malloc_trim`
reaches, and DuckDB lets go of staged tables as soon as their statement has run."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from eventplan.store import open_store
from eventplan.store.duckdb import EventStore


def test_opening_a_store_makes_arrow_allocate_from_the_c_heap(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "events.duckdb"))
    try:
        assert pa.default_memory_pool().backend_name == "system"
        before = pa.total_allocated_bytes()
        table = pa.table({"x": pa.array(range(100_000))})
        assert pa.total_allocated_bytes() >= before + 800_000  # counted by the system pool
        del table
        assert pa.total_allocated_bytes() == before
    finally:
        store.close()


def test_a_staged_table_is_let_go_of_before_the_transaction_commits(tmp_path: Path) -> None:
    # DuckDB holds a `register`ed table until COMMIT: an insert's whole Arrow staging
    # (about 64 MB a row group) stayed alive beside DuckDB's copy of its rows.
    store = open_store(str(tmp_path / "events.duckdb"))
    assert isinstance(store, EventStore)
    try:
        store._run("BEGIN TRANSACTION")
        before = pa.total_allocated_bytes()
        table = pa.table({"x": pa.array(range(500_000))})
        assert store._run_on("staged", table, "SELECT sum(x) FROM staged") == [
            (sum(range(500_000)),)
        ]
        del table
        assert pa.total_allocated_bytes() == before  # in the transaction, not after it
        store._run("ROLLBACK")
    finally:
        store.close()
