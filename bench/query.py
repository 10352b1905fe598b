"""Insight speed: eventplan on its DuckDB and ClickHouse backends, against hand-written chDB SQL.

    .venv/bin/python bench/query.py [--events 1000000] [--persons 20000]

Generates plan-shaped events over 30 days and stores them twice through eventplan's
store: in a DuckDB file and in the ClickHouse backend (on chDB, ClickHouse's engine
in-process). It also copies the rows to a flat chDB MergeTree ordered by
(event, timestamp), where hand-written ClickHouse SQL is the baseline. Each insight
runs three ways (best of 3) and the answers must agree: the seed's 4-step funnel
(windowFunnel in the baseline), chat health trends with a breakdown, and the
model-performance median.
"""

from __future__ import annotations

import argparse
import platform
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from eventplan.plan import load_plan
from eventplan.query.engine import run_query
from eventplan.query.model import DateRange, FunnelsQuery, PropertyFilter, Series, TrendsQuery
from eventplan.simulate.samples import sample_properties
from eventplan.store import open_store
from eventplan.store.records import StoredEvent

PLAN = Path(__file__).resolve().parent.parent / "plans" / "openchat.yaml"
NOW = datetime(2026, 11, 25, tzinfo=UTC)
FUNNEL = [
    "marketing.visit_landing",
    "marketing.cta_clicked",
    "dashboard.entered",
    "openrouter.key_saved",
]
WEIGHTS = {
    "marketing.visit_landing": 10,
    "marketing.cta_clicked": 5,
    "dashboard.entered": 4,
    "openrouter.key_saved": 2,
    "chat_message_submitted": 30,
    "chat_message_stream": 30,
    "chat.created": 8,
    "sync.connection_state": 6,
    "chat.attachment_event": 5,
}


def generate(plan: Any, count: int, persons: int) -> Iterator[list[StoredEvent]]:
    """The events in chunks of 100k, so 10 M never sit in memory at once."""
    rng = random.Random(1)
    names = list(WEIGHTS)
    weights = [WEIGHTS[n] for n in names]
    start = int((NOW - timedelta(days=30)).timestamp() * 1_000_000)
    span = 30 * 86_400 * 1_000_000
    templates = {name: [sample_properties(plan, name, rng) for _ in range(50)] for name in names}
    events: list[StoredEvent] = []
    for _ in range(count):
        if len(events) == 100_000:
            yield events
            events = []
        name = rng.choices(names, weights)[0]
        props = dict(rng.choice(templates[name]))
        if name == "marketing.cta_clicked":
            props["cta_id"] = "hero_try_openchat" if rng.random() < 0.8 else "hero_request_demo"
        moment = start + rng.randrange(span)
        events.append(
            StoredEvent(
                str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                name,
                f"user-{rng.randrange(persons)}",
                moment,
                moment,
                plan.name,
                None,
                props,
                None,
                None,
                "valid",
                None,
            )
        )
    yield events


def best(run: Callable[[], Any]) -> tuple[float, Any]:
    fastest, result = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        result = run()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--persons", type=int, default=20_000)
    args = parser.parse_args()
    plan = load_plan(PLAN)
    console = Console(width=150)
    work = Path(tempfile.mkdtemp(prefix="eventplan-query-bench-"))
    store = open_store(str(work / "events.duckdb"), [plan])
    clickhouse = open_store(f"chdb:{work / 'chdb'}", [plan])
    spent = {"DuckDB": 0.0, "ClickHouse": 0.0}
    for number, chunk in enumerate(generate(plan, args.events, args.persons), start=1):
        for name, target in (("DuckDB", store), ("ClickHouse", clickhouse)):
            started = time.perf_counter()
            target.insert(chunk, number)
            spent[name] += time.perf_counter() - started
    for name, seconds in spent.items():
        console.print(f"stored {args.events:,} events in the {name} backend in {seconds:.1f} s")
    parquet = work / "events.parquet"
    store._run(  # type: ignore[attr-defined]
        f"COPY (SELECT person_id::VARCHAR AS person_id, event, timestamp AT TIME ZONE 'UTC' AS ts, "
        f"properties->>'cta_id' AS cta_id, properties->>'model_id' AS model_id, "
        f"properties->>'status' AS status, TRY_CAST(properties->>'duration_ms' AS DOUBLE) "
        f"AS duration_ms FROM events) TO '{parquet}' (FORMAT parquet)"
    )
    engine = clickhouse.engine  # type: ignore[attr-defined]
    engine.command(
        "CREATE TABLE flat ENGINE = MergeTree ORDER BY (event, ts) "
        "SETTINGS allow_nullable_key = 1 AS "
        f"SELECT * FROM file('{parquet}', Parquet)"
    )
    window = 14 * 86400 * 1_000_000  # windowFunnel over microseconds
    date_range = DateRange(
        date_from=(NOW - timedelta(days=30)).isoformat(), date_to=NOW.isoformat()
    )
    cases = []

    funnel = FunnelsQuery(
        steps=(
            Series(FUNNEL[0]),
            Series(FUNNEL[1], filters=(PropertyFilter("cta_id", "exact", "hero_try_openchat"),)),
            Series(FUNNEL[2]),
            Series(FUNNEL[3]),
        ),
        date_range=date_range,
    )
    funnel_sql = (
        "SELECT level, count() FROM (SELECT person_id, windowFunnel(" + str(window) + ")("
        "toUInt64(toUnixTimestamp64Micro(ts)), "
        f"event = '{FUNNEL[0]}', event = '{FUNNEL[1]}' AND cta_id = 'hero_try_openchat', "
        f"event = '{FUNNEL[2]}', event = '{FUNNEL[3]}') AS level FROM flat "
        f"WHERE event IN ('{FUNNEL[0]}', '{FUNNEL[1]}', '{FUNNEL[2]}', '{FUNNEL[3]}') "
        "GROUP BY person_id) GROUP BY level ORDER BY level"
    )
    cases.append(
        (
            "seed funnel, 4 steps",
            funnel,
            funnel_sql,
            lambda ours: [s["count"] for s in ours["results"]],
            lambda rows: _funnel_levels(rows, 4),
        )
    )

    health = TrendsQuery(
        series=(Series("chat_message_stream"),),
        interval="day",
        date_range=date_range,
        breakdown="status",
    )
    health_sql = (
        "SELECT status, count() FROM flat WHERE event = 'chat_message_stream' "
        "GROUP BY toDate(ts), status ORDER BY status"
    )
    cases.append(
        (
            "chat health, daily by status",
            health,
            health_sql,
            lambda ours: sum(r["count"] for r in ours["results"]),
            lambda rows: sum(int(n) for _, n in rows),
        )
    )

    medians = TrendsQuery(
        series=(Series("chat_message_stream", math="median", math_property="duration_ms"),),
        interval="month",
        date_range=date_range,
        breakdown="model_id",
        breakdown_limit=1000,
    )
    medians_sql = (
        "SELECT model_id, quantileExact(0.5)(duration_ms) FROM flat "
        "WHERE event = 'chat_message_stream' GROUP BY toStartOfMonth(ts), model_id"
    )
    cases.append(
        (
            "model median duration",
            medians,
            medians_sql,
            lambda ours: sorted(
                (r["breakdown_value"], round(v)) for r in ours["results"] for v in r["data"] if v
            ),
            lambda rows: sorted((model, round(float(median))) for model, median in rows),
        )
    )

    table = Table(title=f"insights on {args.events:,} events, {args.persons:,} persons, 30 days")
    columns = (
        "insight",
        "chDB SQL s",
        "DuckDB backend s",
        "ClickHouse backend s",
        "DuckDB / chDB SQL",
        "ClickHouse / DuckDB",
        "answers agree",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "insight" else "right")
    for name, query, sql, ours_key, theirs_key in cases:
        their_time, their_rows = best(lambda sql=sql: engine.query(sql).to_pylist())
        their_rows = [list(row.values()) for row in their_rows]
        duck_time, duck = best(lambda query=query: run_query(store, plan, query, NOW))
        ch_time, ch = best(lambda query=query: run_query(clickhouse, plan, query, NOW))
        answers = {ours_key(duck) == theirs_key(their_rows), ours_key(ch) == ours_key(duck)}
        table.add_row(
            name,
            f"{their_time:.3f}",
            f"{duck_time:.3f}",
            f"{ch_time:.3f}",
            f"{duck_time / their_time:.2f}",
            f"{ch_time / duck_time:.2f}",
            "yes" if answers == {True} else f"NO ({ours_key(duck)} / {ours_key(ch)})",
        )
    console.print(table)
    console.print(f"machine: {platform.machine()}, Python {platform.python_version()}, best of 3")
    store.close()
    clickhouse.close()


def _funnel_levels(rows: list[list[Any]], steps: int) -> list[int]:
    at_level = {int(level): int(n) for level, n in rows}
    return [sum(n for level, n in at_level.items() if level > i) for i in range(steps)]


if __name__ == "__main__":
    main()
