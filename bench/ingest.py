"""Capture throughput: eventplan serve vs a bare endpoint, same load, same run.

    .venv/bin/python bench/ingest.py [--duration 15] [--load wrk|python] [--unique]
                                     [--doors batch,v1] [--capture-processes 0,1]

A load generator in a separate process posts gzip `/batch/` bodies of 100
plan-shaped OpenChat events (10% broken) for a fixed time: wrk (Debian's `wrk`,
in C, 16 connections) when it is installed, else `--clients` Python processes
(httpx, `--concurrency` connections each). The Python load costs about 40 µs of CPU
per event, so on a small machine it, not the bare endpoint, sets the baseline's
rate and flatters the ratio: use wrk for the figure that counts. The baseline is a bare
ASGI endpoint on the same uvicorn settings: read the body, gunzip and decode it,
append it to a file, answer 200. eventplan does that plus validation, enrichment,
the privacy policy and a durable (fsync'd) acknowledgement, and then stores.

`--capture-processes` lists the counts of eventplan's capture processes to run, one
server run each. Each is compared with the bare endpoint run in as many processes as
that server has in all (1 + the count, sharing the port with `SO_REUSEPORT`). CPU and
peak memory count every process of the tree.

With `--doors batch,v1` (wrk only) each backend is also driven through PostHog's
Capture v1 (`/i/v1/analytics/events`, Bearer token, the same events in v1's shape),
and the table gives v1's rate as a ratio of `/batch/`'s on the same backend.

By default the load repeats 400 bodies per client (the store keeps 80,000 distinct
events and deduplicates the rest). With `--unique` every event posted gets a fresh
uuid and the current time, so every one is stored: the run for memory and bytes per
stored event. wrk cannot build bodies, so with it `--unique` prepares `--bodies`
distinct bodies before the run and cycles through them.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import multiprocessing
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "plans" / "openchat.yaml"
TOKEN = "phc_bench"

BARE_APP = """
import gzip, orjson, sys
out = open(sys.argv[1], "ab")
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if body[:2] == b"\\x1f\\x8b":
        body = gzip.decompress(body)
    if body:  # the readiness probe posts nothing
        orjson.loads(body)
    out.write(body + b"\\n"); out.flush()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"status":1}'})
import socket, uvicorn
# One of `processes` sharing the port (SO_REUSEPORT), as many as eventplan runs.
sock = socket.socket()
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
# uvicorn takes a socket it is given for a Unix one and leaves Nagle on (40 ms waits);
# accepted connections inherit this.
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
sock.bind(("127.0.0.1", int(sys.argv[2])))
uvicorn.run(app, fd=sock.fileno(), loop="uvloop", http="httptools",
            log_level="warning", access_log=False)
"""


# wrk's Lua: every thread reads the bodies (one file, lengths in another), starts at a
# random one and posts them in turn; `done` prints what the bench parses.
WRK_SCRIPT = """
local bodies = {}
local count = 0
local at = 0
function init(args)
  local data = io.open(os.getenv("BENCH_BODIES"), "rb"):read("*all")
  local offset = 1
  for length in io.lines(os.getenv("BENCH_LENGTHS")) do
    local size = tonumber(length)
    count = count + 1
    bodies[count] = data:sub(offset, offset + size - 1)
    offset = offset + size
  end
  at = math.random(count)
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
if os.getenv("BENCH_AUTH") then  -- Capture v1
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
  wrk.headers["PostHog-Sdk-Info"] = "posthog-python/7.91.1"
end
function request()
  at = at % count + 1
  return wrk.format(nil, nil, nil, bodies[at])
end
-- The PostHog clients back off after a 5xx; a load that re-posts at once would turn
-- every 503 into more work for the server than real clients cause.
local backoff = 0
function response(status, headers, body)
  if status == 503 then backoff = 100 else backoff = 0 end
end
function delay()
  return backoff
end
function done(summary, latency, requests)
  io.write(string.format("BENCH %d %d %d %d %d\\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def make_batches(count: int, seed: int, traffic: str) -> list[list[dict[str, Any]]]:
    """`count` batches of 100: random plan-shaped samples, or the OpenChat simulation
    (users on journeys, values as the apps send them), 10% broken either way."""
    from itertools import islice

    from eventplan.plan import load_plan
    from eventplan.simulate.openchat import Simulation
    from eventplan.simulate.samples import sample_events

    plan = load_plan(PLAN)
    if traffic == "simulated":
        simulation = Simulation(plan, users=2000, days=3, seed=seed, broken_share=0.1)
        events = list(islice(simulation.events(), count * 100))
    else:
        events = sample_events(plan, count * 100, seed=seed, invalid_share=0.1)
    for event in events:
        event["uuid"] = str(uuid.uuid4())
    return [events[i : i + 100] for i in range(0, len(events), 100)]


DOOR_PATHS = {"batch": "/batch/", "v1": "/i/v1/analytics/events"}


def body(batch: list[dict[str, Any]], door: str = "batch") -> bytes:
    if door == "v1":
        created = datetime.now(UTC).isoformat()
        payload = {"created_at": created, "batch": [v1_event(e, created) for e in batch]}
        return gzip.compress(orjson.dumps(payload), 1)
    return gzip.compress(orjson.dumps({"api_key": TOKEN, "batch": batch}), 1)


def v1_event(event: dict[str, Any], now: str) -> dict[str, Any]:
    """An event in Capture v1's shape, as posthog-python's v1 mode sends it."""
    properties = {k: v for k, v in event["properties"].items() if k not in ("$lib", "$lib_version")}
    shaped = {
        "event": event["event"],
        "uuid": event["uuid"],
        "distinct_id": event["distinct_id"],
        "timestamp": event.get("timestamp", now),
        "options": {},
        "properties": properties,
    }
    if isinstance(properties.get("$session_id"), str):
        shaped["session_id"] = properties.pop("$session_id")
    return shaped


def fresh_body(batch: list[dict[str, Any]], door: str = "batch") -> bytes:
    """The batch as new events: fresh uuids, sent now."""
    now = datetime.now(UTC).isoformat()
    for event in batch:
        event["uuid"] = str(uuid.uuid4())
        event["timestamp"] = now
    return body(batch, door)


def load_worker(url: str, seed: int, args: argparse.Namespace, queue: Any) -> None:
    batches = make_batches(400, seed, args.traffic)
    duration, concurrency, unique = args.duration, args.concurrency, args.unique
    bodies = [body(batch) for batch in batches]
    latencies: list[float] = []
    sent = 0

    async def run() -> None:
        nonlocal sent
        deadline = time.monotonic() + duration
        async with httpx.AsyncClient(timeout=60) as client:

            async def one(offset: int) -> None:
                nonlocal sent
                index = offset
                while time.monotonic() < deadline:
                    content = (
                        fresh_body(batches[index % len(batches)])
                        if unique
                        else bodies[index % len(bodies)]
                    )
                    index += concurrency
                    started = time.perf_counter()
                    response = await client.post(
                        url, content=content, headers={"content-type": "text/plain"}
                    )
                    latencies.append(time.perf_counter() - started)
                    if response.status_code == 200:
                        sent += 100

            await asyncio.gather(*(one(i) for i in range(concurrency)))

    queue.put("ready")
    asyncio.run(run())
    queue.put((sent, latencies))


def wrk_bodies(args: argparse.Namespace, door: str) -> Iterator[bytes]:
    """The bodies wrk posts: the same 400 per client as the Python load, or with
    `--unique` `--bodies` distinct ones, the simulation's batches with fresh uuids."""
    if not args.unique:
        for seed in range(args.clients):
            yield from (body(batch, door) for batch in make_batches(400, seed, args.traffic))
        return
    batches = make_batches(400, 0, args.traffic)
    for index in range(args.bodies):
        yield fresh_body(batches[index % len(batches)], door)


def write_wrk_files(work: Path, args: argparse.Namespace, door: str) -> dict[str, str]:
    (work / "post.lua").write_text(WRK_SCRIPT)
    lengths = []
    with (work / f"bodies-{door}.bin").open("wb") as out:
        for content in wrk_bodies(args, door):
            out.write(content)
            lengths.append(str(len(content)))
    (work / f"lengths-{door}.txt").write_text("\n".join(lengths) + "\n")
    files = {
        "BENCH_BODIES": str(work / f"bodies-{door}.bin"),
        "BENCH_LENGTHS": str(work / f"lengths-{door}.txt"),
    }
    return {**files, "BENCH_AUTH": f"Bearer {TOKEN}"} if door == "v1" else files


def drive_wrk(url: str, work: Path, args: argparse.Namespace) -> tuple[float, float, float]:
    """Post with wrk; a request counts when it was answered 200 (a 503 is not)."""
    door = "v1" if url.endswith(DOOR_PATHS["v1"]) else "batch"
    environment = {**os.environ, **args.wrk_files[door]}
    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c16",
            f"-d{args.duration:.0f}s",
            "--timeout",
            "60s",
            "-s",
            str(work / "post.lua"),
            url,
        ],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in completed.stdout.splitlines() if line.startswith("BENCH "))
    requests, failed, duration_us, p50_us, p99_us = (int(field) for field in line.split()[1:])
    return (requests - failed) * 100 / (duration_us / 1e6), p50_us / 1000, p99_us / 1000


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (eventplan's capture processes)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in process_tree(int(child)))]


def cpu_seconds(pid: int) -> float:
    """User and system CPU the process and its descendants are using (threads included)."""
    total = 0
    for member in process_tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load_cpu_seconds() -> float:
    """CPU used by the load generators that have ended (wrk, or the Python processes)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb(pid: int) -> float:
    """The sum of each process's peak resident memory, its descendants' included."""
    total = 0.0
    for member in process_tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1]) / 1024
    return total


def drive(url: str, args: argparse.Namespace) -> tuple[float, float, float]:
    if args.load == "wrk":
        return drive_wrk(url, args.work, args)
    queue: Any = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=load_worker,
            args=(url, seed, args, queue),
        )
        for seed in range(args.clients)
    ]
    for worker in workers:
        worker.start()
    ready = 0
    results: list[tuple[int, list[float]]] = []
    while len(results) < args.clients:
        item = queue.get()
        if item == "ready":
            ready += 1
        else:
            results.append(item)
    for worker in workers:
        worker.join()
    sent = sum(r[0] for r in results)
    latencies = sorted(latency for r in results for latency in r[1])
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    return sent / args.duration, p50, p99


def serve_and_drive(
    kind: str, work: Path, port: int, args: argparse.Namespace, door: str, processes: int
) -> dict[str, Any]:
    """Run `eventplan serve` on one backend under the load through one door; what it
    took and stored."""
    from eventplan.store import open_store

    path = work / (f"{door}-{processes}.duckdb" if kind == "duckdb" else f"chdb-{door}-{processes}")
    db = str(path) if kind == "duckdb" else f"chdb:{path}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventplan",
            "serve",
            "--plan",
            str(PLAN),
            "--db",
            db,
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--capture-processes",
            str(processes),
        ]
    )
    wait_healthy(f"http://127.0.0.1:{port}/batch/")
    cpu_before = cpu_seconds(server.pid)
    rate, p50, p99 = drive(f"http://127.0.0.1:{port}{DOOR_PATHS[door]}", args)
    cpu = cpu_seconds(server.pid) - cpu_before
    health = httpx.get(f"http://127.0.0.1:{port}/_health", timeout=60).json()
    rss = peak_rss_mb(server.pid)
    server.send_signal(signal.SIGTERM)
    server.wait()
    store = open_store(db, read_only=True)
    stored = int(store.sql("SELECT count(*) FROM events_data")[1][0][0])
    store.close()
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    name = "DuckDB file" if kind == "duckdb" else "ClickHouse (chDB)"
    return {
        "name": name + (", Capture v1" if door == "v1" else ""),
        "processes": processes,
        "door": door,
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "rss": rss,
        "cpu_us": cpu / max(rate * args.duration, 1) * 1e6,
        "stored": stored,
        "acknowledged": int(health["counters"].get("events_accepted", 0)),
        "mb": sum(f.stat().st_size for f in files) / 1e6,
    }


def run_bare(work: Path, port: int, processes: int, args: argparse.Namespace) -> dict[str, Any]:
    """The bare endpoint in `processes` processes sharing one port, under the load."""
    bares = [
        subprocess.Popen([sys.executable, "-c", BARE_APP, str(work / f"bare-{n}.log"), str(port)])
        for n in range(processes)
    ]
    wait_healthy(f"http://127.0.0.1:{port}/batch/")
    cpu_before = sum(cpu_seconds(bare.pid) for bare in bares)
    load_before = load_cpu_seconds()
    rate, p50, p99 = drive(f"http://127.0.0.1:{port}/batch/", args)
    events = rate * args.duration
    result = {
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "cpu_us": (sum(cpu_seconds(bare.pid) for bare in bares) - cpu_before) / events * 1e6,
        "load_cpu_us": (load_cpu_seconds() - load_before) / events * 1e6,
        "rss": sum(peak_rss_mb(bare.pid) for bare in bares),
    }
    for bare in bares:
        bare.send_signal(signal.SIGTERM)
        bare.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--backends", default="duckdb,clickhouse", help="Comma-separated: duckdb, clickhouse."
    )
    parser.add_argument(
        "--unique", action="store_true", help="Every event new (fresh uuid, current time)."
    )
    parser.add_argument(
        "--load",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="wrk (Debian's package; the default when installed) or Python load processes.",
    )
    parser.add_argument(
        "--bodies",
        type=int,
        default=20_000,
        help="With wrk and --unique: distinct bodies of 100 events prepared before the run.",
    )
    parser.add_argument(
        "--traffic",
        choices=["samples", "simulated"],
        default="samples",
        help="Random plan-shaped samples, or the OpenChat simulation's users.",
    )
    parser.add_argument(
        "--doors",
        default="batch",
        help="Comma-separated: batch (/batch/), v1 (Capture v1; needs wrk).",
    )
    parser.add_argument(
        "--capture-processes",
        default="1",
        help="Comma-separated counts of eventplan's capture processes to run (a run each); "
        "the bare endpoint runs in as many processes as eventplan in all (1 + the count).",
    )
    args = parser.parse_args()
    doors = args.doors.split(",")
    if "v1" in doors and args.load != "wrk":
        parser.error("--doors v1 needs --load wrk")
    work = Path(tempfile.mkdtemp(prefix="eventplan-bench-"))
    console = Console(width=150)
    args.work = work
    try:
        if args.load == "wrk":
            args.wrk_files = {door: write_wrk_files(work, args, door) for door in doors}
        port = 18431
        counts = [int(count) for count in args.capture_processes.split(",")]
        bares = {}
        for processes in sorted({1 + count for count in counts}):
            bares[processes] = run_bare(work, port, processes, args)
            port += 1
        runs = [(k, d, n) for k in args.backends.split(",") for d in doors for n in counts]
        servers = [
            serve_and_drive(kind, work, port + number, args, door, count)
            for number, (kind, door, count) in enumerate(runs, start=1)
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = (
        "wrk, 16 connections"
        if args.load == "wrk"
        else f"{args.clients} Python load processes x {args.concurrency} connections"
    )
    table = Table(title=f"capture, gzip /batch/ of 100 events, {load}, {args.duration:.0f} s each")
    columns = ("endpoint", "events/s", "p50 ms", "p99 ms", "peak RSS MB", "CPU µs/event", "ratio")
    for column in columns:
        table.add_column(column, justify="left" if column == "endpoint" else "right")
    for processes, bare in bares.items():
        table.add_row(
            f"bare (decode, append, 200), {processes} process{'es' if processes > 1 else ''}",
            f"{bare['rate']:,.0f}",
            f"{bare['p50']:.1f}",
            f"{bare['p99']:.1f}",
            f"{bare['rss']:.0f}",
            f"{bare['cpu_us']:.1f}",
            "1.00",
        )
    for result in servers:
        bare_rate = bares[1 + result["processes"]]["rate"]
        table.add_row(
            f"eventplan serve, {result['name']}, {result['processes']} capture process(es)",
            f"{result['rate']:,.0f}",
            f"{result['p50']:.1f}",
            f"{result['p99']:.1f}",
            f"{result['rss']:.0f}",
            f"{result['cpu_us']:.1f}",
            f"{result['rate'] / bare_rate:.2f}",
        )
    console.print(table)
    by_run = {(r["name"].split(",")[0], r["door"]): r for r in servers}
    for (name, door), result in by_run.items():
        batch = by_run.get((name, "batch"))
        if door == "v1" and batch is not None:
            console.print(
                f"{name}: Capture v1 acknowledged {result['rate'] / batch['rate']:.2f}x the "
                f"events/s of /batch/ ({result['rate']:,.0f} vs {batch['rate']:,.0f})"
            )
    for result in servers:
        console.print(
            f"{result['name']}: acknowledged {result['acknowledged']:,} events, stored "
            f"{result['stored']:,} distinct ones (the rest were resent bodies, stored once); "
            f"{result['mb']:.1f} MB on disk = "
            f"{result['mb'] / max(result['stored'], 1) * 1e6:.1f} MB per million events"
        )
    for processes, bare in bares.items():
        console.print(
            f"load generator ({args.load}): {bare['load_cpu_us']:.1f} µs of CPU per event in the "
            f"bare run with {processes} process(es)"
        )
    console.print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
