"""Capture's two stages, each alone, against its bare counterpart, in one run.

    .venv/bin/python bench/stages.py [--events 300000] [--backends duckdb,chdb]

`bench/ingest.py` measures the whole server under load, where the two stages share
two cores with each other, the HTTP server and the load generator, and its rate
moves by ±20% from run to run on this VM. This bench times each stage alone, in one
thread, over the same simulated OpenChat traffic (gzip `/batch/` bodies of 100
events, 10% broken), so a change to either shows in its own CPU per event:

1. **capture**: what a capture process does with each request (`Ingestor.ingest`:
   gunzip, decode, normalize, judge, privacy, the events laid out in the store's
   columns, the log's record), against gunzip and `orjson.loads` of the same bodies;
2. **the writer**: the records written to a log, then `BackgroundWriter.replay` into
   a new store (decode, identities, Arrow, insert, commit), against the engine's
   own load of the same rows from Arrow (as `bench/rejudge.py`).
"""

from __future__ import annotations

import argparse
import gzip
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from eventplan.capture.ingest import CaptureRequest, Envelope, Ingestor
from eventplan.capture.judge import Pipeline
from eventplan.plan import load_plan
from eventplan.store.wal import WriteAheadLog
from eventplan.store.writer import BackgroundWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import TOKEN, fresh_body, make_batches
from rejudge import PLAN, arrow_load_seconds, open_backend

REQUEST = CaptureRequest("application/json", "gzip", {}, "127.0.0.1", None)


def bodies(count: int) -> list[bytes]:
    """At least `count` simulated events, as bodies of 100 (the simulation's users
    run out after about 30,000 events, so each seed adds another 30,000)."""
    made: list[bytes] = []
    seed = 0
    while len(made) * 100 < count:
        made += [fresh_body(batch) for batch in make_batches(2500, seed, "simulated")]
        seed += 1
    return made[: -(-count // 100)]


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process (the engines' threads too), result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--backends", default="duckdb,chdb")
    args = parser.parse_args()
    plan = load_plan(PLAN)
    posted = bodies(args.events)
    ingestor = Ingestor({TOKEN: plan.name}, {plan.name: Pipeline(plan, b"bench")})

    envelope = Envelope(None, None, time.time_ns() // 1000)
    decoded = timed(lambda: [orjson.loads(gzip.decompress(body)) for body in posted])

    def capture(body: bytes) -> tuple[bytes, int]:
        """A capture process's answer: the record and its count (the rest is let go)."""
        ingested = ingestor.ingest(body, REQUEST, envelope, limit=1 << 26)
        return ingested.record, ingested.count

    captured = timed(lambda: [capture(body) for body in posted])
    records = captured[2]
    events = sum(count for _, count in records)
    table = Table(title=f"Capture's stages alone: {events:,} simulated events")
    for column in ("stage", "events/s", "µs of CPU per event", "ratio"):
        table.add_column(column, justify="left" if column == "stage" else "right")

    def row(name: str, wall: float, cpu: float | None, baseline: float) -> None:
        per_event = f"{cpu / events * 1e6:.1f}" if cpu is not None else ""
        table.add_row(name, f"{events / wall:,.0f}", per_event, f"{baseline / wall:.2f}")

    row("gunzip + orjson.loads (baseline)", decoded[0], decoded[1], decoded[0])
    row("capture: Ingestor.ingest, to the log's record", captured[0], captured[1], decoded[0])
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as folder:
            wal = WriteAheadLog(Path(folder) / "log")
            for record, _ in records:
                wal.write_group([record])
            wal.close()
            store = open_backend(backend, Path(folder), plan)
            writer = BackgroundWriter(store, WriteAheadLog(Path(folder) / "log"), lambda e: [])
            written = timed(writer.replay)
            assert written[2] == events, (written[2], events)
            load_seconds = arrow_load_seconds(store)
            store.close()
        engine = "DuckDB" if backend == "duckdb" else "ClickHouse (chDB)"
        row(f"{engine}: the same rows from Arrow (baseline)", load_seconds, None, load_seconds)
        row(f"{engine}: the writer, log records to the store", *written[:2], load_seconds)
    console = Console()
    console.print(table)
    console.print("Ratios are of events/s (wall time); CPU counts the engines' own threads.")
    console.print(f"machine: {platform.machine()}, Python {platform.python_version()}")


if __name__ == "__main__":
    main()
