"""Events from a file into the store, through the same pipeline as capture.

JSON lines, PostHog's JSON export, or Parquet in PostHog's event shape (the
simulator's `--out FILE.parquet`, `properties` as JSON text). Each event is
normalized, enriched, validated and passed through the privacy policy exactly as
if it had been captured; retried imports are idempotent (dedupe by uuid).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from eventplan.capture.errors import CaptureError
from eventplan.capture.events import normalize, now_us
from eventplan.capture.files import read_events
from eventplan.errors import EventplanError
from eventplan.project import Project
from eventplan.store.base import Store

CHUNK = 20_000  # the per-request event limit of capture, which import goes through


def iter_file(path: Path) -> Iterator[Any]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK):
            for row in batch.to_pylist():
                properties = row.get("properties")
                if isinstance(properties, str):
                    row["properties"] = msgspec.json.decode(properties)
                yield row
        return
    for record in read_events(path):
        if record.error is not None:
            raise EventplanError(f"{path}:{record.line}: {record.error}")
        yield record.event


def import_events(
    store: Store, project: Project, events: Iterator[Any], progress: Callable[[int], None]
) -> int:
    """Store every event; returns how many were new."""
    added = 0
    chunk: list[Any] = []
    seq = store.wal_seq()
    for event in events:
        chunk.append(event)
        if len(chunk) == CHUNK:
            added += _store_chunk(store, project, chunk, seq)
            progress(len(chunk))
            chunk = []
    if chunk:
        added += _store_chunk(store, project, chunk, seq)
        progress(len(chunk))
    return added


def _store_chunk(store: Store, project: Project, chunk: list[Any], seq: int) -> int:
    received = now_us()
    try:
        normalized = normalize(chunk, {}, {}, received)
    except CaptureError as exc:
        raise EventplanError(f"cannot import: {exc.message}") from exc
    return store.insert(project.judge(project.logged(normalized, None, received)), seq)
