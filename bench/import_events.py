"""`eventplan import` against DuckDB's own load of the same rows, in one run.

    .venv/bin/python bench/import_events.py [--events 1000000]

Writes `--events` simulated OpenChat events (10% broken) to a JSON-lines file, then
imports it into a new DuckDB file the way `eventplan import` does (read, normalize,
enrich, judge, privacy, typed columns, insert; `capture.importer.import_events`).
The baseline is DuckDB loading the stored rows from Arrow into a new table
(`CREATE TABLE … AS SELECT * FROM` the events read into Arrow first): #26's ratio.
Also shown: DuckDB's `read_json` of the same file into a table, which parses the
JSON but judges and lays out nothing.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import msgspec
from rich.console import Console

from eventplan.capture.importer import import_events, iter_file
from eventplan.plan import load_plan
from eventplan.project import Project
from eventplan.simulate.samples import sample_events
from eventplan.store.duckdb import EventStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rejudge import arrow_load_seconds, ratio_table

PLAN = Path(__file__).resolve().parent.parent / "plans" / "openchat.yaml"
CHUNK = 20_000


def write_file(path: Path, count: int) -> None:
    plan = load_plan(PLAN)
    encoder = msgspec.json.Encoder()
    with path.open("wb") as out:
        for start in range(0, count, CHUNK):
            for event in sample_events(plan, min(CHUNK, count - start), seed=start):
                out.write(encoder.encode(event) + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    plan = load_plan(PLAN)
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "events.jsonl"
        write_file(source, args.events)
        store = EventStore(Path(folder) / "bench.duckdb", [plan])
        project = Project(plan.name, plan, store, salt=b"bench")
        started = time.perf_counter()
        added = import_events(store, project, iter_file(source), lambda n: None)
        import_seconds = time.perf_counter() - started
        assert added == args.events, added
        load_seconds = arrow_load_seconds(store)
        started = time.perf_counter()
        store._conn.execute(
            "CREATE TABLE raw AS SELECT * FROM read_json(?, format = 'newline_delimited')",
            [str(source)],
        ).fetchall()
        read_json_seconds = time.perf_counter() - started
        store.close()
    console = Console()
    console.print(
        ratio_table(
            f"importing {args.events:,} events from JSON lines",
            args.events,
            [
                ("DuckDB: the stored rows from Arrow (baseline)", load_seconds),
                ("DuckDB: read_json of the file, nothing judged", read_json_seconds),
                ("eventplan import", import_seconds),
            ],
        )
    )
    console.print(f"machine: {platform.machine()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
