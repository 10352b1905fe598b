"""The five seed dashboards at scale: every panel fetched from a running server, as the UI does.

    .venv/bin/python bench/dashboards.py [--events 10000000] [--persons 200000] [--db FILE]
        [--memory-limit 96MB]

Stores `--events` plan-shaped events over 30 days (bench/query.py's generator) in a
DuckDB file (kept with `--db FILE` and reused when it exists), starts `eventplan
serve` on it, and fetches every insight of every dashboard one after another through
`/api/dashboards/{name}/insights/{insight}` (30 days, as the page opens), warm, best
of 3. The ratio is the time against the target: every dashboard within 1 s, all five
within 2.5 s, the server's peak RSS under 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eventplan.plan import load_plan
from eventplan.store import open_store
from ingest import peak_rss_mb, wait_healthy
from query import NOW, PLAN, generate

KEY = "phx_bench_dashboards"
DASHBOARD_TARGET = 1.0
ALL_TARGET = 2.5
RSS_TARGET = 300.0


def build(db: Path, events: int, persons: int, console: Console) -> None:
    plan = load_plan(PLAN)
    store = open_store(str(db), [plan])
    started = time.perf_counter()
    for seq, chunk in enumerate(generate(plan, events, persons), start=1):
        store.insert(chunk, seq)
    store.close()
    console.print(f"stored {events:,} events in {time.perf_counter() - started:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--db", type=Path, help="Keep the store here (reused when it exists).")
    parser.add_argument("--port", type=int, default=18531)
    parser.add_argument(
        "--memory-limit", help="The server's DuckDB memory limit (default: serve's own)."
    )
    args = parser.parse_args()
    console = Console(width=120)
    db = args.db or Path(tempfile.mkdtemp(prefix="eventplan-dash-")) / "events.duckdb"
    if not db.exists():
        build(db, args.events, args.persons, console)
    plan = load_plan(PLAN)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventplan",
            "serve",
            "--plan",
            str(PLAN),
            "--db",
            str(db),
            "--port",
            str(args.port),
            "--api-key-sha256",
            hashlib.sha256(KEY.encode()).hexdigest(),
            "--alert-interval",
            "0",
            "--token",
            "phc_bench_dashboards",
            *(["--memory-limit", args.memory_limit] if args.memory_limit else []),
        ],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        wait_healthy(f"{base}/_health")  # any answer: the server is up
        # The data ends at bench/query.py's NOW: ask for its 30 days.
        params = f"date_from={(NOW - timedelta(days=30)).date()}&date_to={NOW.date()}"
        timings: dict[str, float] = {}
        slowest: dict[str, tuple[str, float]] = {}
        with httpx.Client(base_url=base, headers=headers, timeout=300) as client:
            for dashboard in plan.dashboards:
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    per_insight = {}
                    for insight in dashboard.insights:
                        began = time.perf_counter()
                        path = f"/api/dashboards/{dashboard.name}/insights/{insight.name}?{params}"
                        answer = client.get(path)
                        assert answer.status_code == 200, answer.text
                        per_insight[insight.name] = time.perf_counter() - began
                    took = time.perf_counter() - started
                    if took < best:
                        best = took
                        name = max(per_insight, key=per_insight.__getitem__)
                        slowest[dashboard.name] = (name, per_insight[name])
                timings[dashboard.name] = best
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait()
    table = Table(title=f"five dashboards, {args.events:,} events, warm, best of 3")
    for column in ("dashboard", "seconds", "target s", "ratio", "slowest panel", "its s"):
        table.add_column(
            column, justify="left" if column in ("dashboard", "slowest panel") else "right"
        )
    for name, took in timings.items():
        panel, panel_s = slowest[name]
        table.add_row(
            name,
            f"{took:.2f}",
            f"{DASHBOARD_TARGET:.1f}",
            f"{took / DASHBOARD_TARGET:.2f}",
            panel,
            f"{panel_s:.2f}",
        )
    total = sum(timings.values())
    table.add_row(
        "all five", f"{total:.2f}", f"{ALL_TARGET:.1f}", f"{total / ALL_TARGET:.2f}", "", ""
    )
    console.print(table)
    console.print(
        f"server peak RSS {rss:.0f} MB (target {RSS_TARGET:.0f}: ratio {rss / RSS_TARGET:.2f})"
    )
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    console.print(f"machine: {machine}")


if __name__ == "__main__":
    main()
