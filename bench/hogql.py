"""HogQL's cost: a HogQL query through eventplan against the hand-written SQL it stands for.

    .venv/bin/python bench/hogql.py [--events 1000000] [--persons 20000]

Stores the same plan-shaped events as `bench/query.py` in a DuckDB file and in the
ClickHouse backend (chDB). Each query then runs three ways, taking turns, best of 9:
as HogQL (parse, translate, run, shape the answer as PostHog does); as the SQL it
translates to, written out and run directly (the baseline: what HogQL adds is its
own cost); and as SQL written by hand over the typed columns alone, a stricter
baseline that skips the JSON rest (and so misses a value that did not fit its
column). The answers must agree.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from eventplan.plan import load_plan
from eventplan.query.hogql import hogql_query, translate
from eventplan.query.sql import DIALECTS
from eventplan.store import Store, open_store

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("query_bench", HERE / "query.py")
assert _spec is not None and _spec.loader is not None
query_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(query_bench)

DUCKDB, CLICKHOUSE = DIALECTS["duckdb"], DIALECTS["clickhouse"]
# (name, HogQL, hand-written DuckDB SQL, hand-written ClickHouse SQL)
CASES = [
    (
        "events by name",
        "SELECT event, count() AS c FROM events GROUP BY event ORDER BY c DESC, event",
        "SELECT event, count(*) AS c FROM events_data WHERE project = 'openchat' "
        "GROUP BY event ORDER BY c DESC, event",
        "SELECT event, count() AS c FROM events_data WHERE project = 'openchat' "
        "GROUP BY event ORDER BY c DESC, event",
    ),
    (
        "median duration by model",
        "SELECT properties.model_id AS model, median(properties.duration_ms) AS p50 "
        "FROM events WHERE event = 'chat_message_stream' GROUP BY model ORDER BY model",
        "SELECT p_model_id AS model, quantile_cont(p_duration_ms, 0.5) AS p50 FROM events_data "
        "WHERE project = 'openchat' AND event = 'chat_message_stream' "
        "GROUP BY model ORDER BY model",
        "SELECT p_model_id AS model, median(p_duration_ms) AS p50 FROM events_data "
        "WHERE project = 'openchat' AND event = 'chat_message_stream' "
        "GROUP BY model ORDER BY model",
    ),
    (
        "daily active people",
        "SELECT toStartOfDay(timestamp) AS day, count(DISTINCT person_id) AS people "
        "FROM events WHERE event = 'chat.created' GROUP BY day ORDER BY day",
        # A person's merges count them once, so the hand-written SQL joins them too.
        f"SELECT date_trunc('day', e.timestamp) AS day, count(DISTINCT {DUCKDB.person}) "
        f"AS people FROM {DUCKDB.events_with_person} "
        "WHERE e.project = 'openchat' AND e.event = 'chat.created' GROUP BY day ORDER BY day",
        f"SELECT toDateTime64(toStartOfDay(e.timestamp), 6, 'UTC') AS day, "
        f"count(DISTINCT {CLICKHOUSE.person}) AS people FROM {CLICKHOUSE.events_with_person} "
        "WHERE e.project = 'openchat' AND e.event = 'chat.created' GROUP BY day ORDER BY day",
    ),
    (
        "slow streams share",
        "SELECT countIf(properties.duration_ms > 5000) / count() AS slow FROM events "
        "WHERE event = 'chat_message_stream'",
        "SELECT count(*) FILTER (WHERE p_duration_ms > 5000) / count(*) AS slow "
        "FROM events_data WHERE project = 'openchat' AND event = 'chat_message_stream'",
        "SELECT countIf(p_duration_ms > 5000) / count() AS slow "
        "FROM events_data WHERE project = 'openchat' AND event = 'chat_message_stream'",
    ),
]


def interleaved(runs: list[Callable[[], Any]], rounds: int = 9) -> list[tuple[float, Any]]:
    """Each run's best time and last answer, the runs taking turns in every round, so
    that the VM's slow moments fall on all of them alike."""
    fastest = [float("inf")] * len(runs)
    answers: list[Any] = [None] * len(runs)
    for _ in range(rounds):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            answers[i] = run()
            fastest[i] = min(fastest[i], time.perf_counter() - started)
    return list(zip(fastest, answers, strict=True))


def agree(hogql: list[list[Any]], rows: list[tuple[Any, ...]]) -> bool:
    """The same rows, times compared by their ISO text, numbers to 1e-9."""
    if len(hogql) != len(rows):
        return False
    for ours, theirs in zip(hogql, rows, strict=True):
        for a, b in zip(ours, theirs, strict=True):
            if isinstance(b, float) and isinstance(a, int | float):
                if abs(a - b) > 1e-9 * max(1.0, abs(b)):
                    return False
            elif hasattr(b, "isoformat"):
                if str(a)[:19] != b.isoformat()[:19]:
                    return False
            elif a != b and str(a) != str(b):
                return False
    return True


def measure(store: Store, label: str, index: int, table: Table) -> None:
    for name, hogql, *hand in CASES:
        started = time.perf_counter()
        hogql_query(hogql, store, "openchat")  # the first time: parsed and translated
        first_s = time.perf_counter() - started
        sql = translate(hogql, store, "openchat").sql
        (hogql_s, answer), (translated_s, _), (hand_s, (_, rows)) = interleaved(
            [
                lambda h=hogql: hogql_query(h, store, "openchat"),
                lambda s=sql: store.sql(s),
                lambda s=hand[index]: store.sql(s),
            ]
        )
        table.add_row(
            label,
            name,
            f"{translated_s * 1000:.1f}",
            f"{hand_s * 1000:.1f}",
            f"{first_s * 1000:.1f}",
            f"{hogql_s * 1000:.1f}",
            f"{hogql_s / translated_s:.2f}",
            f"{hogql_s / hand_s:.2f}",
            "yes" if agree(answer["results"], rows) else "NO",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--persons", type=int, default=20_000)
    args = parser.parse_args()
    plan = load_plan(query_bench.PLAN)
    console = Console(width=200)
    work = Path(tempfile.mkdtemp(prefix="eventplan-hogql-bench-"))
    stores = [
        ("DuckDB", open_store(str(work / "events.duckdb"), [plan])),
        ("ClickHouse", open_store(f"chdb:{work / 'chdb'}", [plan])),
    ]
    for number, chunk in enumerate(query_bench.generate(plan, args.events, args.persons), 1):
        for _, store in stores:
            store.insert(chunk, number)
    table = Table(
        title=f"HogQL vs hand-written SQL, {args.events:,} events "
        f"({platform.machine()}, Python {platform.python_version()}, best of 9)"
    )
    headers = ("its SQL ms", "typed-column SQL ms", "HogQL first ms", "HogQL ms")
    for column in ("backend", "query", *headers):
        table.add_column(column, justify="left" if column in ("backend", "query") else "right")
    table.add_column("HogQL / its SQL", justify="right")
    table.add_column("HogQL / typed-column SQL", justify="right")
    table.add_column("answers agree")
    for index, (label, store) in enumerate(stores):
        measure(store, label, index, table)
    console.print(table)
    for _, store in stores:
        store.close()


if __name__ == "__main__":
    main()
