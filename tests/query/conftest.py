"""Load hand-made or generated events into a fresh real store, through capture's pipeline."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventplan.capture.importer import import_events
from eventplan.capture.ingest import Project
from eventplan.plan import Plan
from eventplan.store.duckdb import EventStore


@contextmanager
def loaded_store(plan: Plan, events: list[dict[str, Any]]) -> Iterator[EventStore]:
    with tempfile.TemporaryDirectory() as folder:
        store = EventStore(Path(folder) / "events.duckdb", [plan])
        project = Project(plan.name, plan, (), "flag", b"salt")
        import_events(
            store,
            project,
            iter([dict(e, properties=dict(e.get("properties") or {})) for e in events]),
            lambda n: None,
        )
        try:
            yield store
        finally:
            store.close()
