"""`eventplan import`: a file's events judged as capture would, stored in large inserts."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventplan.capture import importer
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.simulate.samples import sample_events
from eventplan.store.duckdb import EventStore


def test_an_import_goes_in_as_whole_sorted_inserts_not_small_appends(
    tmp_path: Path, openchat_plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 1,000 (capture's request limit, scaled down) go to the store six at a
    time, so each insert is large enough to be written sorted (`settled`) at once rather
    than appended and rewritten later; and the progress counts every event once."""
    monkeypatch.setattr(importer, "CHUNK", 1_000)
    store = EventStore(tmp_path / "i.duckdb", [openchat_plan], insert_size=6_000)
    project = Project(openchat_plan.name, openchat_plan, store, salt=b"test")
    events = sample_events(openchat_plan, 15_000, seed=3)
    seen: list[int] = []
    added = importer.import_events(store, project, iter(events), seen.append)
    _, settled = store.sql("SELECT settled, count(*) FROM events_data GROUP BY ALL")
    _, [[stored, distinct]] = store.sql("SELECT count(*), count(DISTINCT uuid) FROM events_data")
    again = importer.import_events(store, project, iter(events), lambda n: None)
    store.close()
    assert added == stored == distinct == 15_000
    assert settled == [(True, 15_000)]
    assert seen == [1_000] * 15
    assert again == 0  # a retried import stores nothing twice
