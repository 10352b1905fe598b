"""The store's process hands freed memory back: Arrow allocates where `malloc_trim` reaches."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from eventplan.store import open_store


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
