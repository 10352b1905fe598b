"""Moving a store's events to another store (DuckDB ↔ ClickHouse) through Parquet.

An export holds events as they were stored: after enrichment and the privacy
policy, with their verdicts. So an import of an eventplan export stores them as
they are (hashing a hash again would break every `hash` property); a file from
anywhere else (PostHog's export, the simulator) goes through capture's pipeline
instead (`capture/importer.py`). The hash salt travels in the file's metadata, so
events captured after the move hash the same way as those before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from eventplan.errors import EventplanError
from eventplan.plan.validator import Violation
from eventplan.store.base import Store, epoch_us
from eventplan.store.records import StoredEvent

MARK = b"eventplan.export"
SALT = b"eventplan.hash_salt"
CHUNK = 20_000
TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("event", pa.string()),
        ("distinct_id", pa.string()),
        ("timestamp", TIME),
        ("created_at", TIME),
        ("project", pa.string()),
        ("ip_hash", pa.string()),
        ("properties", pa.string()),
        ("verdict", pa.string()),
        ("violations", pa.string()),
    ]
)
_violations = msgspec.json.Decoder(list[Violation])


def export_events(store: Store, out: Path, progress: Callable[[int], None]) -> int:
    """Write every stored event to `out` (Parquet), a day at a time; returns the count."""
    _, [(first, last, total)] = store.sql(
        "SELECT min(timestamp), max(timestamp), count(*) FROM events_data"
    )
    salt = store.meta("hash_salt")
    metadata = {MARK: b"1", **({SALT: salt.encode()} if salt else {})}
    written = 0
    with pq.ParquetWriter(out, SCHEMA.with_metadata(metadata), compression="zstd") as writer:
        if not total:
            return 0
        day = first.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= last:
            _, rows = store.sql(
                "SELECT uuid, event, distinct_id, timestamp, created_at, project, ip_hash, "
                "properties, verdict, violations FROM events "
                "WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp, uuid",
                [day, day + timedelta(days=1)],
            )
            if rows:
                writer.write_table(_export_table(rows))
                written += len(rows)
                progress(len(rows))
            day += timedelta(days=1)
    return written


def _export_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    """A day's rows (the uuid as text) as the export's Arrow table."""
    columns = list(zip(*rows, strict=True))
    arrays = [
        pa.array([str(v) for v in columns[0]] if i == 0 else list(values), field.type)
        for i, (field, values) in enumerate(zip(SCHEMA, columns, strict=True))
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def is_export(path: Path) -> bool:
    """Whether `path` is an `eventplan export` file (EventplanError: not Parquet at all)."""
    if path.suffix != ".parquet":
        return False
    try:
        metadata = pq.read_schema(path).metadata or {}
    except pa.ArrowException as exc:
        raise EventplanError(f"{path}: not a Parquet file that can be read: {exc}") from exc
    return MARK in metadata


def import_export(store: Store, path: Path, progress: Callable[[int], None]) -> int:
    """Store an eventplan export's events as they are; returns how many were new."""
    metadata = pq.read_schema(path).metadata or {}
    if SALT in metadata and store.meta("hash_salt") is None:
        store.set_meta("hash_salt", metadata[SALT].decode())
    added = 0
    seq = store.wal_seq()
    for events in _read(path):
        added += store.insert(events, seq)
        progress(len(events))
    return added


def _read(path: Path) -> Iterator[list[StoredEvent]]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
        yield [
            StoredEvent(
                uuid=row["uuid"],
                event=row["event"],
                distinct_id=row["distinct_id"],
                timestamp=epoch_us(row["timestamp"]),
                created_at=epoch_us(row["created_at"]),
                project=row["project"],
                ip_hash=row["ip_hash"],
                properties=msgspec.json.decode(row["properties"] or "{}"),
                set=None,
                set_once=None,
                verdict=row["verdict"],
                violations=_violations.decode(row["violations"]) if row["violations"] else None,
            )
            for row in batch.to_pylist()
        ]
