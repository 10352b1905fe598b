"""Events from a file into the store, through the same pipeline as capture.

JSON lines, PostHog's JSON export, or Parquet in PostHog's event shape (the
simulator's `--out FILE.parquet`, `properties` as JSON text). Each event is
normalized, enriched, validated and passed through the privacy policy exactly as
if it had been captured; retried imports are idempotent (dedupe by uuid).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

import msgspec

from eventplan.capture.errors import CaptureError
from eventplan.capture.events import normalize, now_us
from eventplan.capture.files import read_events
from eventplan.capture.ingest import Envelope, logged
from eventplan.errors import EventplanError
from eventplan.project import Project
from eventplan.store.base import Store
from eventplan.store.records import StoredEvent

CHUNK = 20_000  # the per-request event limit of capture, which import goes through
CHUNKS_PER_INSERT = 6  # 120,000 events: over half a DuckDB row group, so written sorted


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
    """Store every event; returns how many were new. Events are judged a chunk at a
    time and go to the store `CHUNKS_PER_INSERT` chunks per insert, read lazily: over
    half a DuckDB row group, which the store writes sorted at once (one chunk alone
    would be appended, then rewritten sorted later). A bad event stops the import; the
    inserts before it are kept, and importing the file again adds only what is new."""
    added = 0
    seq = store.wal_seq()
    chunks = _judged_chunks(project, events, progress)
    for first in chunks:
        more = islice(chunks, CHUNKS_PER_INSERT - 1)
        added += store.insert(chain(first, chain.from_iterable(more)), seq)
    return added


def _judged_chunks(
    project: Project, events: Iterator[Any], progress: Callable[[int], None]
) -> Iterator[list[StoredEvent]]:
    """The events a chunk at a time, normalized and judged as capture would."""
    while chunk := list(islice(events, CHUNK)):
        received = now_us()
        try:
            normalized = normalize(chunk, {}, {}, received)
        except CaptureError as exc:
            raise EventplanError(f"cannot import: {exc.message}") from exc
        yield project.judge(logged(normalized, project.name, Envelope(None, None, received)))
        progress(len(chunk))
