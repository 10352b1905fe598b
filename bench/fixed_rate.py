"""Capture under a fixed rate: latency, and how far behind storing runs, against a bare endpoint.

    .venv/bin/python bench/fixed_rate.py [--rate 10000] [--duration 60]

The load is open-loop, so a slow answer does not slow the load down: one process sends
gzip `/batch/` bodies of 100 simulated OpenChat events (fresh uuids, sent now) at
fixed times (`--rate` events/s, a body every 100 / rate s), each on its own task,
and times every answer. The same load runs against the bare endpoint of
`bench/ingest.py` (decode, append, 200) and then against `eventplan serve` (DuckDB).
While the load runs against eventplan, `/_health` is read every 0.2 s. `loader_lag.seconds`,
the age of the oldest acknowledged event not yet stored, is the bound on how late an
acknowledged event becomes queryable. `loader_lag.events` tells whether a backlog
grows. After the load ends, the bench times how long until nothing waits.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from ingest import BARE_APP, PLAN, TOKEN, make_batches, wait_healthy


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] if ordered else 0.0


async def fixed_rate(
    url: str, batches: list[list[dict[str, Any]]], rate: float, duration: float
) -> tuple[list[float], int]:
    """Send a body every 100 / `rate` seconds for `duration`; (latencies in s, 200s)."""
    interval = 100 / rate
    latencies: list[float] = []
    ok = 0

    async def post(client: httpx.AsyncClient, content: bytes) -> None:
        nonlocal ok
        started = time.perf_counter()
        response = await client.post(url, content=content, headers={"content-type": "text/plain"})
        latencies.append(time.perf_counter() - started)
        ok += response.status_code == 200

    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        tasks = []
        start = time.perf_counter()
        for index in range(int(duration / interval)):
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            batch = batches[index % len(batches)]
            now = datetime.now(UTC).isoformat()
            for event in batch:
                event["uuid"], event["timestamp"] = str(uuid.uuid4()), now
            content = gzip.compress(orjson.dumps({"api_key": TOKEN, "batch": batch}), 1)
            tasks.append(asyncio.create_task(post(client, content)))
        await asyncio.gather(*tasks)
    return latencies, ok


async def watch_health(url: str, stop: asyncio.Event) -> list[tuple[float, float, int]]:
    """(time, loader lag in seconds, events waiting) every 0.2 s until `stop`."""
    samples = []
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            lag = (await client.get(url)).json()["loader_lag"]
            samples.append((time.monotonic(), float(lag["seconds"]), int(lag["events"])))
            await asyncio.sleep(0.2)
    return samples


async def load_and_watch(
    base: str, batches: list[list[dict[str, Any]]], args: argparse.Namespace
) -> tuple[list[float], int, list[tuple[float, float, int]], float]:
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_health(f"{base}/_health", stop))
    latencies, ok = await fixed_rate(f"{base}/batch/", batches, args.rate, args.duration)
    ended = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as client:
        while (await client.get(f"{base}/_health")).json()["loader_lag"]["events"] > 0:
            await asyncio.sleep(0.05)
    drained = time.monotonic() - ended
    stop.set()
    return latencies, ok, await watcher, drained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=10_000, help="Events per second.")
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()
    batches = make_batches(2000, 7, "simulated")
    work = Path(tempfile.mkdtemp(prefix="eventplan-fixed-"))
    try:
        port = 18531
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(work / "bare.log"), str(port)])
        wait_healthy(f"http://127.0.0.1:{port}/batch/")
        bare_latencies, bare_ok = asyncio.run(
            fixed_rate(f"http://127.0.0.1:{port}/batch/", batches, args.rate, args.duration)
        )
        bare.send_signal(signal.SIGTERM)
        bare.wait()
        port += 1
        serve = [sys.executable, "-m", "eventplan", "serve", "--plan", str(PLAN), "--db",
                 str(work / "fixed.duckdb"), "--port", str(port), "--token", TOKEN]  # fmt: skip
        server = subprocess.Popen(serve)
        wait_healthy(f"http://127.0.0.1:{port}/batch/")
        latencies, ok, samples, drained = asyncio.run(
            load_and_watch(f"http://127.0.0.1:{port}", batches, args)
        )
        server.send_signal(signal.SIGTERM)
        server.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lags = [lag for _, lag, _ in samples]
    thirds = max(1, len(samples) // 3)
    early = sum(w for _, _, w in samples[:thirds]) / thirds
    late = sum(w for _, _, w in samples[-thirds:]) / thirds
    table = Table(title=f"fixed rate: {args.rate:,.0f} events/s for {args.duration:.0f} s")
    for column in ("endpoint", "200s", "p50 ms", "p99 ms", "p99 ratio"):
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    bare_p99 = percentile(bare_latencies, 0.99) * 1000
    for name, values, answered in (
        ("bare (decode, append, 200)", bare_latencies, bare_ok),
        ("eventplan serve, DuckDB file", latencies, ok),
    ):
        p99 = percentile(values, 0.99) * 1000
        table.add_row(name, f"{answered * 100:,}", f"{percentile(values, 0.5) * 1000:.1f}",
                      f"{p99:.1f}", f"{p99 / max(bare_p99, 1e-9):.1f}")  # fmt: skip
    console = Console()
    console.print(table)
    console.print(
        f"stored behind acknowledgement: loader lag p99 {percentile(lags, 0.99):.2f} s, "
        f"max {max(lags, default=0):.2f} s; events waiting, first third of the run "
        f"{early:,.0f} on average, last third {late:,.0f}; all stored {drained:.1f} s "
        "after the load ended"
    )
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
