"""Raw SQL narrowed to one project: every table it reads holds that project's rows
only, and nothing else of the store (or of the machine) can be read."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventplan.capture.importer import import_events
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.query.scoped import scoped_sql
from eventplan.store import Store, open_store
from eventplan.store.base import QueryError
from tests.conftest import BACKENDS, store_url

COUNTS = {"alpha": 6, "beta": 3}


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, openchat_plan: Plan) -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as folder:
        opened = open_store(store_url(request.param, Path(folder)), [openchat_plan])
        for name, count in COUNTS.items():
            events = [
                {
                    "event": "chat.created",
                    "distinct_id": f"{name}-{i}",
                    "uuid": str(uuid.uuid4()),
                    "timestamp": "2026-12-01T10:00:00Z",
                    "properties": {"app": "openchat-server", "chat_id": f"c{i}"},
                }
                for i in range(count)
            ]
            project = Project(name, openchat_plan, opened, salt=b"salt")
            import_events(opened, project, iter(events), lambda n: None)
        yield opened
        opened.close()


@pytest.mark.parametrize("project", sorted(COUNTS))
def test_each_table_holds_only_the_projects_rows(store: Store, project: str) -> None:
    count = "SELECT count(*) FROM events WHERE event = 'chat.created'"
    assert store.sql(scoped_sql(count, store.dialect, project))[1] == [(COUNTS[project],)]
    people = "SELECT count(*) FROM (SELECT distinct_id FROM person_distinct_ids) d"
    assert store.sql(scoped_sql(people, store.dialect, project))[1] == [(COUNTS[project],)]
    # Whatever the text says about projects, the rows are already the project's.
    other = "SELECT count(*) FROM events_data e WHERE e.project <> 'nobody' OR true"
    assert store.sql(scoped_sql(other, store.dialect, project))[1] == [(COUNTS[project],)]
    nested = (
        "WITH mine AS (SELECT distinct_id FROM events) "
        "SELECT count(*) FROM mine WHERE distinct_id IN (SELECT distinct_id FROM events)"
    )
    assert store.sql(scoped_sql(nested, store.dialect, project))[1] == [(COUNTS[project],)]


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM meta",
        "SELECT * FROM outbox",
        "SELECT * FROM column_catalog",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM system.tables",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM duckdb_tables()",
        "SELECT * FROM file('/etc/passwd')",
        "SELECT count(*) FROM events UNION ALL SELECT count(*) FROM meta",
    ],
)
def test_anything_but_the_projects_tables_is_refused(store: Store, query: str) -> None:
    with pytest.raises(QueryError, match="reads only its own tables"):
        scoped_sql(query, store.dialect, "alpha")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM events_data", "only SELECT queries are allowed here, not DELETE"),
        ("SELECT 1; SELECT 2", "send exactly one statement, not 2"),
        ("SELECT (", "the query does not parse"),
    ],
)
def test_only_one_select(store: Store, query: str, message: str) -> None:
    with pytest.raises(QueryError) as refused:
        scoped_sql(query, store.dialect, "alpha")
    assert message in str(refused.value)
