"""Load hand-made or generated events into a fresh real store, through capture's pipeline."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventplan.capture.importer import import_events
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.store import Store, open_store
from tests.conftest import store_url


@contextmanager
def loaded_store(plan: Plan, events: list[dict[str, Any]], backend: str) -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(store_url(backend, Path(folder)), [plan])
        project = Project(plan.name, plan, store, salt=b"salt")
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
