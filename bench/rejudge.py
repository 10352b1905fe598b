"""`eventplan rejudge` against each engine's own load of the same rows, in one run.

    .venv/bin/python bench/rejudge.py [--events 1000000] [--backends duckdb,chdb]

Stores `--events` simulated OpenChat events (10% broken) in a store of each backend,
then times the judging of all of them again by the plan compiled into one statement
for that engine (`Store.rejudge`: the judging SELECT, the verdicts changed, the
update). The baseline is the same engine loading the same rows from Arrow into a new
table (DuckDB: `CREATE TABLE … AS SELECT * FROM` the events read into Arrow first;
ClickHouse: one insert of that Arrow table into a copy of `events_data`): the
issue's ratio.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from eventplan.capture.events import normalize, now_us
from eventplan.capture.ingest import Envelope, logged
from eventplan.load.rejudge import rejudge
from eventplan.plan import Plan, load_plan
from eventplan.project import Project
from eventplan.simulate.samples import sample_events
from eventplan.store import open_store
from eventplan.store.base import Store
from eventplan.store.clickhouse import ClickHouseStore
from eventplan.store.duckdb import EventStore

PLAN = Path(__file__).resolve().parent.parent / "plans" / "openchat.yaml"
CHUNK = 20_000


def fill(store: Store, project: Project, count: int) -> None:
    for start in range(0, count, CHUNK):
        raw = sample_events(project.plan, min(CHUNK, count - start), seed=start)
        received = now_us()
        events = logged(
            normalize(raw, {}, {}, received), project.name, Envelope(None, None, received)
        )
        store.insert(project.judge(events), 0)


def arrow_load_seconds(store: Store) -> float:
    """#26's baseline: the engine loading the stored events from Arrow into a new table."""
    arrow = store.arrow("SELECT * FROM events_data")
    if isinstance(store, EventStore):
        started = time.perf_counter()
        store._conn.register("loaded", arrow)
        store._conn.execute("CREATE TABLE copy AS SELECT * FROM loaded").fetchall()
        took = time.perf_counter() - started
        store._conn.execute("DROP TABLE copy").fetchall()
        store._conn.unregister("loaded")
        return took
    assert isinstance(store, ClickHouseStore)
    store.engine.command("CREATE TABLE copy AS events_data")
    started = time.perf_counter()
    store.engine.insert("copy", arrow)
    took = time.perf_counter() - started
    store.engine.command("DROP TABLE copy")
    return took


def open_backend(backend: str, folder: Path, plan: Plan) -> Store:
    url = str(folder / "bench.duckdb") if backend == "duckdb" else f"chdb:{folder / 'ch'}"
    return open_store(url, [plan])


def ratio_table(title: str, events: int, paths: list[tuple[str, float]]) -> Table:
    """Each path's events/s and seconds, and its rate against the first (the baseline)."""
    table = Table(title=title)
    for column in ("path", "events/s", "seconds", "ratio"):
        table.add_column(column, justify="left" if column == "path" else "right")
    base = events / paths[0][1]
    for name, seconds in paths:
        rate = events / seconds
        table.add_row(name, f"{rate:,.0f}", f"{seconds:.2f}", f"{rate / base:.2f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--backends", default="duckdb,chdb")
    args = parser.parse_args()
    plan = load_plan(PLAN)
    console = Console()
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as folder:
            store = open_backend(backend, Path(folder), plan)
            project = Project(plan.name, plan, store, salt=b"bench")
            fill(store, project, args.events)
            load_seconds = arrow_load_seconds(store)
            started = time.perf_counter()
            changes = rejudge(store, plan, plan.name)
            rejudge_seconds = time.perf_counter() - started
            store.close()
        engine = "DuckDB" if backend == "duckdb" else "ClickHouse (chDB)"
        console.print(
            ratio_table(
                f"{engine}: judging {args.events:,} stored events again",
                args.events,
                [
                    (f"{engine}: the same rows from Arrow (baseline)", load_seconds),
                    ("eventplan rejudge (one statement, then the update)", rejudge_seconds),
                ],
            )
        )
        console.print(f"verdicts changed: {changes or 'none'} (the same plan: none expected)")
    console.print(f"machine: {platform.machine()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
