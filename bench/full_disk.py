"""A full disk: how soon capture and the store recover once space returns, how soon
SIGTERM stops the server in each state, and whether any acknowledged event is lost
or doubled. On real tmpfs mounts (run as root).

    .venv/bin/python bench/full_disk.py

The baseline is the issue's target: 10 s for each recovery and each stop; the ratio
is the time measured over it (below 1 meets it).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.capture.test_full_disk import Load  # noqa: E402
from tests.conftest import OPENCHAT, SmallDisk  # noqa: E402
from tests.servers import TOKEN, RunningServer, free_port  # noqa: E402

TARGET_SECONDS = 10.0


@contextmanager
def tmpfs(folder: Path, mib: int) -> Iterator[SmallDisk]:
    folder.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)], check=True)
    try:
        yield SmallDisk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def server(work: Path, db: Path, *args: str) -> RunningServer:
    return RunningServer(
        db=work / "server.duckdb",
        store=str(db),
        port=free_port(),
        args=["--plan", str(OPENCHAT), "--token", TOKEN, "--alert-interval", "0", *args],
    ).start()


def seconds_until(done: Callable[[], bool], limit: float = 120) -> float:
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > limit:
            return float("inf")
        time.sleep(0.05)
    return time.monotonic() - started


def sigterm(running: RunningServer) -> float:
    started = time.monotonic()
    running.stop()
    return time.monotonic() - started


def lost_and_doubled(load: Load, db: Path) -> tuple[int, int]:
    stored = load.stored_counts(str(db))
    return len(load.acknowledged - set(stored)), sum(1 for n in stored.values() if n > 1)


def main() -> None:
    results: list[tuple[str, float, int, int]] = []
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)

        # The log's disk: full, space back (no restart), then full and SIGTERM.
        with tmpfs(work / "log", 16) as disk:
            db = work / "a.duckdb"
            running = server(work, db, "--wal", str(disk.path), "--log-reserve", "0")
            load = Load(running, "log")
            load.post(1000)
            disk.fill()
            load.post(1000)
            disk.release()
            recovered = seconds_until(lambda: load.post(10).status_code == 200)
            disk.fill()
            load.post(1000)
            stopped = sigterm(running)
            disk.release()
            results += [("log disk full: capture recovers", recovered, 0, 0)]
            results += [("log disk full: SIGTERM", stopped, *lost_and_doubled(load, db))]

        # The store's disk: full under load, space back (no restart), full and SIGTERM.
        with tmpfs(work / "store", 96) as disk:
            db = disk.path / "b.duckdb"
            running = server(work, db, "--wal", str(work / "b.log"))
            load = Load(running, "store")
            load.post(1000)
            disk.fill()
            load.fail_the_store()
            pending = running.health()["pending_events"]
            disk.release()
            recovered = seconds_until(lambda: "store_failing" not in running.health()["reasons"])
            caught_up = seconds_until(lambda: running.health()["pending_events"] == 0)
            disk.fill()
            load.fail_the_store()
            stopped = sigterm(running)
            disk.release()
            running.start()
            running.stop()
            lost, doubled = lost_and_doubled(load, db)
            results += [("store disk full: store takes writes again", recovered, lost, doubled)]
            results += [(f"  then stores the {pending:,} waiting", caught_up, lost, doubled)]
            results += [("store disk full: SIGTERM", stopped, lost, doubled)]

        # A healthy server with a backlog: SIGTERM leaves what waits in the log.
        db = work / "c.duckdb"
        running = server(work, db, "--wal", str(work / "c.log"))
        load = Load(running, "backlog")
        while running.health()["pending_events"] < 100_000:
            load.post(2000)
        stopped = sigterm(running)
        running.start()
        running.stop()
        results += [("healthy, 100k+ pending: SIGTERM", stopped, *lost_and_doubled(load, db))]

    table = Table(title="A full disk (target: 10 s each; ratio = measured / target)")
    for column in ("scenario", "seconds", "lost", "doubled", "ratio"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    for name, seconds, lost, doubled in results:
        table.add_row(
            name, f"{seconds:.2f}", str(lost), str(doubled), f"{seconds / TARGET_SECONDS:.2f}"
        )
    Console().print(table)


if __name__ == "__main__":
    main()
