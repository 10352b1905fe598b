"""A full disk loses no acknowledged event: on a real tmpfs, under load from the real
posthog-python client (which retries a 503), with the log's disk or the store's
filled, freed, and the server killed or stopped in between. Every uuid ever
acknowledged is stored exactly once, and capture recovers without a restart."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from posthog import Posthog

from eventplan.store import open_store
from tests.conftest import OPENCHAT, SmallDisk
from tests.servers import API_KEY, TOKEN, RunningServer, free_port

PROPERTIES = {"app": "openchat-server", "limit": 20, "window_ms": 60000}


class Load:
    """Events to one server: batches posted directly, each acknowledgement noted, and
    events through posthog-python, which retries them until they are taken."""

    def __init__(self, server: RunningServer, run: str) -> None:
        self.server = server
        self.run = run
        self.acknowledged: set[str] = set()
        self.statuses: list[int] = []
        self.refusals: list[httpx.Response] = []
        self.sdk_sent: list[str] = []
        self.sdk = Posthog(TOKEN, host=server.url, sync_mode=False, max_retries=40)

    def post(self, count: int = 200, padding: int = 200) -> httpx.Response:
        batch = [
            {
                "event": "chat.rate_limited",
                "distinct_id": f"{self.run}-direct",
                "uuid": str(uuid.uuid4()),
                "properties": {**PROPERTIES, "chat_id": f"c-{i}", "note": "x" * padding},
            }
            for i in range(count)
        ]
        response = httpx.post(
            f"{self.server.url}/batch/", json={"api_key": TOKEN, "batch": batch}, timeout=30
        )
        self.statuses.append(response.status_code)
        if response.status_code == 200:
            self.acknowledged.update(event["uuid"] for event in batch)
        else:
            self.refusals.append(response)
        return response

    def through_sdk(self, count: int) -> None:
        for i in range(count):
            event_id = str(uuid.uuid4())
            self.sdk.capture(
                "chat.rate_limited",
                distinct_id=f"{self.run}-sdk",
                properties={**PROPERTIES, "chat_id": f"s-{i}"},
                uuid=event_id,
            )
            self.sdk_sent.append(event_id)

    def fail_the_store(self) -> None:
        """Post until the store (its disk full) fails: DuckDB writes into free blocks of
        its file first. The log still takes every batch, so each is acknowledged."""
        for _ in range(1000):
            if "store_failing" in self.server.health()["reasons"]:
                return
            assert self.post(1000).status_code == 200
        raise AssertionError("the store never failed")

    def post_until_taken(self, timeout: float = 60) -> None:
        """Post until one batch is acknowledged (bounded; not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while self.post(20).status_code != 200:
            assert time.monotonic() < deadline, "capture did not recover"
            time.sleep(0.5)

    def check_stored_exactly_once(self) -> None:
        """Once the client has delivered, stop the server and read its store whole."""
        self.sdk.flush()  # returns once the client has delivered (after its retries)
        self.sdk.shutdown()
        expected = self.acknowledged | set(self.sdk_sent)
        self.server.wait_for_count(f"distinct_id LIKE '{self.run}-%'", len(expected), 120)
        self.server.stop()
        stored = self.stored_counts(self.server.store)
        assert expected <= set(stored), f"{len(expected - set(stored))} acknowledged, not stored"
        assert [event_id for event_id, count in stored.items() if count != 1] == []

    def stored_counts(self, db: str) -> dict[str, int]:
        """How many times each of this load's uuids is in the store `db` (read whole,
        from the file: the server is stopped)."""
        store = open_store(db, read_only=True)
        try:
            _, rows = store.sql(
                "SELECT uuid::VARCHAR, count(*) FROM events WHERE distinct_id LIKE ? GROUP BY ALL",
                [f"{self.run}-%"],
            )
        finally:
            store.close()
        return {str(event_id): int(count) for event_id, count in rows}

    def check_refusals_were_503(self) -> None:
        assert set(self.statuses) <= {200, 503}
        for response in self.refusals:
            assert response.headers["retry-after"].isdigit()
            assert response.json()["code"] == "unavailable"
        other = [key for key in self.server.health()["counters"] if key.startswith("http_")]
        assert other in ([], ["http_503"])  # the client's requests too


@pytest.fixture
def serve_on(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """`serve_on(db, *args)`: a server over the store `db`; killed if a test fails."""
    started: list[RunningServer] = []

    def start(db: Path, *args: str) -> RunningServer:
        server = RunningServer(
            db=tmp_path / "server.duckdb",  # names the server's output file, off the small disk
            store=str(db),
            port=free_port(),
            args=["--plan", str(OPENCHAT), "--token", TOKEN, "--alert-interval", "0", *args],
        )
        started.append(server)
        return server.start()

    yield start
    for server in started:
        if server.process is not None:
            server.kill()


def wait_for_health(server: RunningServer, accept: Callable[[dict[str, Any]], bool]) -> None:
    deadline = time.monotonic() + 120
    while not accept(health := server.health()):
        assert time.monotonic() < deadline, f"health never changed: {health}"
        time.sleep(0.2)


def test_a_full_log_disk_is_refused_with_503_and_loses_no_acknowledged_event(
    tmp_path: Path,
    small_disk: Callable[[str, int], SmallDisk],
    serve_on: Callable[..., RunningServer],
) -> None:
    log_disk = small_disk("log", 8)
    # No reserve: every write runs into the full disk itself, part-written, then ENOSPC.
    server = serve_on(tmp_path / "events.duckdb", "--wal", str(log_disk.path), "--log-reserve", "0")
    load = Load(server, f"log-full-{uuid.uuid4()}")
    load.through_sdk(200)
    assert load.post().status_code == 200

    log_disk.fill()
    for _ in range(5):
        assert load.post().status_code == 503
    load.through_sdk(200)  # refused too, and retried by the client
    health = server.health()
    assert health["status"] == "degraded" and "log_not_writable" in health["reasons"]
    assert health["log"]["free_bytes"] < 64 * 1024
    assert "No space left" in health["log"]["error"]
    assert "could not write the events to disk" in load.refusals[0].json()["detail"]

    log_disk.release()  # capture takes events again, with no restart
    load.post_until_taken()
    wait_for_health(server, lambda health: "log_not_writable" not in health["reasons"])
    load.check_refusals_were_503()

    log_disk.fill()  # full again, and the process killed while it is
    assert load.post().status_code == 503
    load.through_sdk(100)
    server.kill()
    log_disk.release()
    server.start()
    load.post_until_taken()
    load.check_stored_exactly_once()


RESERVE = 2 * 1024 * 1024


@pytest.fixture
def reserved(
    tmp_path: Path,
    small_disk: Callable[[str, int], SmallDisk],
    serve_on: Callable[..., RunningServer],
) -> tuple[RunningServer, SmallDisk]:
    """A server whose log is on an 8 MiB disk with a 2 MiB reserve."""
    log_disk = small_disk("log", 8)
    server = serve_on(
        tmp_path / "events.duckdb", "--wal", str(log_disk.path), "--log-reserve", str(RESERVE)
    )
    return server, log_disk


def test_below_the_reserve_capture_refuses_cleanly_and_health_says_disk_low(
    reserved: tuple[RunningServer, SmallDisk],
) -> None:
    server, log_disk = reserved
    reserve = RESERVE
    load = Load(server, f"reserve-{uuid.uuid4()}")
    assert load.post().status_code == 200
    log_disk.fill(leave=reserve // 2)
    refused = load.post()
    assert refused.status_code == 503 and "disk is nearly full" in refused.json()["detail"]
    health = server.health()
    assert "disk_low" in health["reasons"] and health["log"]["free_bytes"] < reserve
    assert health["log"]["free_bytes"] > 0  # refused before the disk was at zero
    log_disk.release()
    load.post_until_taken()
    assert server.health()["reasons"] == []
    load.check_refusals_were_503()
    load.check_stored_exactly_once()


def test_a_full_store_disk_recovers_without_a_restart_and_sigterm_or_sigkill_lose_nothing(
    tmp_path: Path,
    small_disk: Callable[[str, int], SmallDisk],
    serve_on: Callable[..., RunningServer],
) -> None:
    store_disk = small_disk("store", 256)
    db = store_disk.path / "events.duckdb"
    server = serve_on(db, "--wal", str(tmp_path / "log"))
    load = Load(server, f"store-full-{uuid.uuid4()}")
    load.through_sdk(300)
    assert load.post(1000).status_code == 200
    store_disk.fill()
    load.fail_the_store()
    load.through_sdk(300)
    read = httpx.post(
        f"{server.url}/api/sql",
        json={"query": "SELECT count(*) FROM events"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    # A store that cannot write may still read; one DuckDB invalidated cannot, and says so.
    assert read.status_code in (200, 503), read.text
    if read.status_code == 503:
        assert read.json()["code"] == "store_unavailable"
        assert read.headers["retry-after"] == "5"

    store_disk.release()  # the writer stores everything by itself
    wait_for_health(server, lambda h: h["pending_events"] == 0 and not h["reasons"])

    store_disk.fill()  # failing again, and SIGTERM must still stop it
    load.fail_the_store()
    server.stop()  # waits at most 60 s for the process: a hang is the bug
    store_disk.release()
    server.start()
    load.post_until_taken()

    store_disk.fill()  # and once more, killed while failing: the log has it all
    load.fail_the_store()
    server.kill()
    server.start()  # on a disk still full: it starts, acknowledges, and says so
    assert "store_failing" in server.health()["reasons"]
    assert load.post(100).status_code == 200
    store_disk.release()
    wait_for_health(server, lambda h: h["pending_events"] == 0 and not h["reasons"])
    load.post_until_taken()
    load.check_refusals_were_503()
    load.check_stored_exactly_once()


def test_capture_v1_answers_retry_for_every_event_the_full_log_cannot_take(
    reserved: tuple[RunningServer, SmallDisk],
) -> None:
    server, log_disk = reserved
    person = f"v1-full-{uuid.uuid4()}"
    batch = [
        {
            "event": "chat.rate_limited",
            "uuid": str(uuid.uuid4()),
            "distinct_id": person,
            "timestamp": "2026-12-01T10:00:00Z",
            "options": {},
            "properties": PROPERTIES,
        }
        for _ in range(5)
    ]

    def post() -> httpx.Response:
        return httpx.post(
            f"{server.url}/i/v1/analytics/events",
            json={"created_at": "2026-12-01T10:00:00Z", "batch": batch},
            headers={"Authorization": f"Bearer {TOKEN}", "PostHog-Sdk-Info": "test/1"},
            timeout=30,
        )

    log_disk.fill(leave=RESERVE // 2)
    refused = post()
    assert refused.status_code == 200 and "Retry-After" in refused.headers
    results = refused.json()["results"]
    assert {results[e["uuid"]]["result"] for e in batch} == {"retry"}  # never a silent ok
    assert "disk is nearly full" in results[batch[0]["uuid"]]["details"]
    log_disk.release()
    taken = post()
    assert {r["result"] for r in taken.json()["results"].values()} <= {"ok", "warning"}
    server.wait_for_count(f"distinct_id = '{person}'", 5)
    [[stored]] = server.sql(f"SELECT count(*) FROM events WHERE distinct_id = '{person}'")
    assert stored == 5
