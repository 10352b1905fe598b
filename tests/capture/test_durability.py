"""An acknowledged event is never lost, and a retried one is stored once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from eventplan.plan import Plan
from eventplan.store import open_store
from tests.conftest import BACKENDS
from tests.servers import TOKEN, RunningServer, openchat_server


def body(person: str, count: int) -> bytes:
    return json.dumps(
        {
            "api_key": TOKEN,
            "batch": [
                {
                    "event": "chat.rate_limited",
                    "distinct_id": person,
                    "uuid": str(uuid.uuid4()),
                    "properties": {
                        "app": "openchat-server",
                        "chat_id": f"c-{i}",
                        "limit": 20,
                        "window_ms": 60000,
                    },
                }
                for i in range(count)
            ],
        }
    ).encode()


def count_in_store(server: RunningServer, person: str) -> int:
    """Counted by opening the store itself, once the server is gone."""
    store = open_store(server.store or str(server.db), read_only=True)
    try:
        return int(
            store.sql("SELECT count(*) FROM events WHERE distinct_id = ?", [person])[1][0][0]
        )
    finally:
        store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigkill_right_after_the_acknowledgement_loses_nothing(
    backend: str, tmp_path: Path
) -> None:
    server = openchat_server(tmp_path, backend=backend)
    person = f"kill-{uuid.uuid4()}"
    response = httpx.post(f"{server.url}/batch/", content=body(person, 500), timeout=30)
    assert response.status_code == 200
    server.kill()  # no chance to flush: only the write-ahead log has the batch
    server.start()
    server.wait_for_count(f"distinct_id = '{person}'", 500)
    server.stop()
    assert count_in_store(server, person) == 500


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_retried_batch_is_stored_once_even_across_a_restart(backend: str, tmp_path: Path) -> None:
    server = openchat_server(tmp_path, backend=backend)
    person = f"retry-{uuid.uuid4()}"
    payload = body(person, 50)
    for _ in range(2):
        assert httpx.post(f"{server.url}/batch/", content=payload, timeout=30).status_code == 200
    server.wait_for_count(f"distinct_id = '{person}'", 50)
    server.kill()
    server.start()
    assert httpx.post(f"{server.url}/batch/", content=payload, timeout=30).status_code == 200
    assert server.health()["counters"]["events_accepted"] == 50
    server.stop()  # a clean stop flushes everything into the file
    assert count_in_store(server, person) == 50


def test_a_server_over_a_log_with_an_event_the_store_refuses_sets_it_aside_and_serves(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    from eventplan.store.wal import WriteAheadLog
    from tests.store.test_writer import poisoned_log

    # A log as an older version could leave it: a time at int64's limit among good ones.
    wal = WriteAheadLog(tmp_path / "eventplan.duckdb.log")
    _, poison = poisoned_log(wal, openchat_plan)
    wal.close()

    server = openchat_server(tmp_path)
    server.wait_for_count("distinct_id <> 'poison'", 399)
    health = server.health()
    assert health["unstored"] == 1 and health["status"] == "degraded"
    after = f"after-poison-{uuid.uuid4()}"
    assert httpx.post(f"{server.url}/batch/", content=body(after, 5), timeout=30).status_code == 200
    server.wait_for_count(f"distinct_id = '{after}'", 5)
    server.stop()
    [line] = (tmp_path / "eventplan.duckdb.log" / "unstored.jsonl").read_text().splitlines()
    assert json.loads(line)["event"]["uuid"] == poison
    # The next start offers it again; still refused, it is still counted and kept.
    server.start()
    health = server.health()
    assert health["unstored"] == 1 and health["status"] == "degraded"
    server.stop()
    assert (tmp_path / "eventplan.duckdb.log" / "unstored.jsonl").read_text() == line + "\n"
