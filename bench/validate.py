"""Decode + validate `/batch/` bodies: eventplan's compiled validator vs orjson + fastjsonschema.

    .venv/bin/python bench/validate.py [--events 200000] [--batch 100]

Both sides get the same raw bodies of plan-shaped events (10% broken) and must
produce a verdict per event. The baseline decodes with orjson and validates each
event with fastjsonschema compiled from our own exported JSON Schemas.

Two more rows: orjson's plain decode of the same bodies (no judging at all: the
goal for judging in the engine is to cost no more than this), and the plan
compiled into one DuckDB statement (`load.JudgeSql`) over the same events as the
log holds them, one JSON line each, read by DuckDB's own `read_json`; and the same
in ClickHouse (`load.JudgeClickHouse`, on chDB), read by its `file()`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import fastjsonschema
import orjson
from rich.console import Console
from rich.table import Table

from eventplan.load import JudgeClickHouse, JudgeSql
from eventplan.plan import load_plan
from eventplan.plan.schema import plan_schemas
from eventplan.plan.validator import Validator
from eventplan.simulate.samples import sample_events
from eventplan.store.clickhouse import Engine

PLAN = Path(__file__).resolve().parent.parent / "plans" / "openchat.yaml"


def bodies(events: list[dict[str, Any]], batch: int) -> list[bytes]:
    return [
        orjson.dumps({"api_key": "phc_bench", "batch": events[i : i + batch]})
        for i in range(0, len(events), batch)
    ]


def ours(validator: Validator) -> Callable[[bytes], int]:
    def run(body: bytes) -> int:
        return sum(1 for _, verdict in validator.check_batch(body) if not verdict.ok)

    return run


def baseline(schemas: dict[str, Any]) -> Callable[[bytes], int]:
    compiled = {name: fastjsonschema.compile(schema) for name, schema in schemas.items()}

    def run(body: bytes) -> int:
        bad = 0
        for event in orjson.loads(body)["batch"]:
            name = event.get("event")
            check = compiled.get(name)
            if check is None:
                bad += not name.startswith("$")  # PostHog's own events are valid
                continue
            try:
                check(event)
            except fastjsonschema.JsonSchemaException:
                bad += 1
        return bad

    return run


def plain_decode(body: bytes) -> int:
    return len(orjson.loads(body)["batch"]) * 0  # decoded, nothing judged


def write_lines(events: list[dict[str, Any]], path: Path) -> None:
    """The events as the log holds them, one JSON line each."""
    path.write_bytes(
        b"".join(
            orjson.dumps({"event": e["event"], "properties": e.get("properties", {})}) + b"\n"
            for e in events
        )
    )


def best_of_3(count_not_valid: Callable[[], int], events: int) -> tuple[float, int]:
    """Events/s of the quickest of three runs, and what the last one found not valid."""
    best, bad = float("inf"), 0
    for _ in range(3):
        started = time.perf_counter()
        bad = count_not_valid()
        best = min(best, time.perf_counter() - started)
    return events / best, bad


def in_engine(plan: Any, events: list[dict[str, Any]]) -> tuple[float, int]:
    """Events/s of the compiled statement over the events as JSON lines (best of 3)."""
    judge = JudgeSql(plan)
    connection = duckdb.connect()
    judge.register(connection)
    with tempfile.TemporaryDirectory() as folder:
        lines = Path(folder) / "events.jsonl"
        write_lines(events, lines)
        source = (
            f"SELECT * FROM read_json('{lines}', format = 'newline_delimited', "
            "columns = {event: 'VARCHAR', properties: 'JSON'})"
        )
        statement = (
            f"SELECT count(*) FILTER (WHERE verdict <> 'valid') FROM ({judge.select(source)})"
        )
        return best_of_3(lambda: int(connection.sql(statement).fetchall()[0][0]), len(events))


def in_clickhouse(plan: Any, events: list[dict[str, Any]]) -> tuple[float, int]:
    """Events/s of the ClickHouse compilation (chDB, in this process) over the same
    JSON lines, read by ClickHouse's `file()` (best of 3)."""
    judge = JudgeClickHouse(plan)
    with tempfile.TemporaryDirectory() as folder:
        lines = Path(folder) / "events.jsonl"
        write_lines(events, lines)
        engine = Engine.connect(f"chdb:{Path(folder) / 'clickhouse'}")
        source = (
            f"SELECT * FROM file('{lines}', 'JSONEachRow', 'event String, properties String') "
            "SETTINGS input_format_json_read_objects_as_strings = 1"
        )
        statement = f"SELECT countIf(verdict != 'valid') AS bad FROM ({judge.select(source)})"
        try:
            return best_of_3(
                lambda: int(engine.query(statement).column("bad").to_pylist()[0]), len(events)
            )
        finally:
            engine.close()


def measure(run: Callable[[bytes], int], payloads: list[bytes], events: int) -> tuple[float, int]:
    return best_of_3(lambda: sum(run(body) for body in payloads), events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    plan = load_plan(PLAN)
    events = sample_events(plan, args.events, seed=7, invalid_share=0.1)
    payloads = bodies(events, args.batch)
    ours_rate, ours_bad = measure(ours(Validator(plan)), payloads, len(events))
    base_rate, base_bad = measure(baseline(plan_schemas(plan)), payloads, len(events))
    decode_rate, _ = measure(plain_decode, payloads, len(events))
    engine_rate, engine_bad = in_engine(plan, events)
    clickhouse_rate, clickhouse_bad = in_clickhouse(plan, events)
    table = Table(
        title=f"decode + validate, {len(events):,} events in /batch/ bodies of {args.batch}"
    )
    table.add_column("path")
    table.add_column("events/s", justify="right")
    table.add_column("not valid", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        "orjson + fastjsonschema (baseline)", f"{base_rate:,.0f}", f"{base_bad:,}", "1.00"
    )
    table.add_row(
        "eventplan Validator.check_batch",
        f"{ours_rate:,.0f}",
        f"{ours_bad:,}",
        f"{ours_rate / base_rate:.2f}",
    )
    table.add_row(
        "orjson plain decode, nothing judged",
        f"{decode_rate:,.0f}",
        "",
        f"{decode_rate / base_rate:.2f}",
    )
    table.add_row(
        f"plan compiled to SQL, DuckDB ({duckdb.__version__})",
        f"{engine_rate:,.0f}",
        f"{engine_bad:,}",
        f"{engine_rate / base_rate:.2f}",
    )
    table.add_row(
        "plan compiled to SQL, ClickHouse (chDB)",
        f"{clickhouse_rate:,.0f}",
        f"{clickhouse_bad:,}",
        f"{clickhouse_rate / base_rate:.2f}",
    )
    console = Console()
    console.print(table)
    console.print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, best of 3 runs"
    )
    if not ours_bad == engine_bad == clickhouse_bad == base_bad:
        console.print(
            f"[red]verdicts differ: ours {ours_bad}, DuckDB {engine_bad} and ClickHouse "
            f"{clickhouse_bad} not valid, baseline {base_bad}[/red]"
        )
        raise SystemExit(1)


if __name__ == "__main__":
    main()
