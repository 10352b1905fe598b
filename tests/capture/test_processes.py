"""Capture processes read request bodies beside the server: the same answers as the
server's own reading, and nothing acknowledged is lost when one dies."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eventplan.capture.errors import Unavailable
from eventplan.capture.ingest import CaptureRequest, Envelope
from eventplan.capture.processes import CaptureProcesses
from eventplan.plan import Plan
from eventplan.store.records import decode_columns, events_in
from tests.capture.test_bad_input import CASES
from tests.servers import TOKEN, RunningServer, openchat_server


def capture_processes(server: RunningServer) -> list[int]:
    assert server.process is not None
    pid = server.process.pid
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def body(distinct_id: str, count: int) -> tuple[bytes, list[str]]:
    uuids = [str(uuid.uuid4()) for _ in range(count)]
    events = [
        {
            "event": "sync.connection_state",
            "distinct_id": distinct_id,
            "uuid": u,
            "properties": {"app": "openchat-web", "state": "connected"},
        }
        for u in uuids
    ]
    return json.dumps({"api_key": TOKEN, "batch": events}).encode(), uuids


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, RunningServer]]:
    """The same plan served with no capture process and with one."""
    running = {
        count: openchat_server(
            tmp_path_factory.mktemp(f"processes-{count}"), "--capture-processes", str(count)
        )
        for count in (0, 1)
    }
    yield running
    for server in running.values():
        server.stop()


def test_a_server_reads_capture_in_its_processes_as_configured(
    servers: dict[int, RunningServer],
) -> None:
    assert capture_processes(servers[0]) == []
    [child] = capture_processes(servers[1])
    # The tokens reach it over its socket, not on its command line, which `ps` shows.
    assert TOKEN.encode() not in Path(f"/proc/{child}/cmdline").read_bytes()


@pytest.mark.parametrize(
    ("name", "content", "headers"), [(c[0], c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_a_refusal_is_the_same_read_in_a_capture_process_or_in_the_server(
    servers: dict[int, RunningServer], name: str, content: bytes, headers: dict[str, str]
) -> None:
    answers = [
        httpx.post(f"{servers[count].url}/batch/", content=content, headers=headers, timeout=30)
        for count in (0, 1)
    ]
    assert answers[0].status_code == answers[1].status_code
    assert 400 <= answers[0].status_code < 500, name
    assert answers[0].json() == answers[1].json()


def test_a_killed_capture_process_is_replaced_and_nothing_acknowledged_is_lost(
    servers: dict[int, RunningServer],
) -> None:
    server = servers[1]
    acknowledged: list[str] = []
    statuses: list[int] = []
    [first] = capture_processes(server)
    for round_ in range(40):
        if round_ == 5:
            os.kill(first, signal.SIGKILL)
        content, uuids = body("killed-process", 50)
        answer = httpx.post(f"{server.url}/batch/", content=content, timeout=30)
        statuses.append(answer.status_code)
        if answer.status_code == 200:
            acknowledged += uuids
        else:  # the requests the dead process had: 503, which the clients retry
            assert answer.status_code == 503 and "retry" in answer.json()["detail"]
            time.sleep(0.1)
    assert statuses[-1] == 200  # a new process reads the requests after it
    [second] = capture_processes(server)
    assert second != first
    server.wait_for_count("distinct_id = 'killed-process'", len(acknowledged))
    stored = {
        row[0] for row in server.sql("SELECT uuid FROM events WHERE distinct_id = 'killed-process'")
    }
    assert stored == set(acknowledged)


def test_a_capture_process_logs_each_event_judged_with_the_privacy_policy_applied(
    openchat_plan: Plan,
) -> None:
    """What a capture process hands back for the log is the events judged: the
    verdict given, and a value the plan masks already masked, so it never reaches disk."""
    secret = "sk-or-v1-process-0123456789"
    content = json.dumps(
        {
            "api_key": TOKEN,
            "batch": [
                {
                    "event": "openrouter.key_saved",
                    "distinct_id": "p-1",
                    "properties": {"app": "openchat-web", "source": "modal", "masked_tail": secret},
                },
                {"event": "chat.created", "distinct_id": "p-1", "properties": {}},
            ],
        }
    ).encode()

    async def read() -> bytes:
        processes = CaptureProcesses(({TOKEN: "openchat"}, {"openchat": (openchat_plan, b"s")}), 1)
        await processes.start()
        try:
            request = CaptureRequest("application/json", "", {}, None, None)
            envelope = Envelope("a1b2", None, 1_790_000_000_000_000)
            ingested = await processes.ingest(content, request, envelope, limit=1 << 20)
        finally:
            await processes.stop()
        assert (ingested.project, ingested.count) == ("openchat", 2)
        assert ingested.verdicts == {"valid": 1, "invalid": 1}
        return ingested.record

    record = asyncio.run(read())
    assert secret.encode() not in record
    saved, created = sorted(events_in(decode_columns(record)), key=lambda e: e.event, reverse=True)
    assert saved.properties["masked_tail"] == "*" * (len(secret) - 4) + secret[-4:]
    assert (saved.verdict, created.verdict) == ("valid", "invalid")
    assert saved.ip_hash == "a1b2" and saved.plan_version == openchat_plan.version


def test_a_capture_process_that_cannot_start_leaves_reading_to_the_server() -> None:
    """A process that dies before answering anything (a broken install, say) is not
    started again and again: its requests are answered 503, and capture is marked
    broken, so the server reads requests itself from then on."""
    content, _ = body("broken-process", 1)
    not_a_plan = "not a plan"  # the process cannot build a pipeline from it, and exits

    async def ask_twice() -> bool:
        processes = CaptureProcesses(({TOKEN: "openchat"}, {"openchat": (not_a_plan, b"s")}), 1)
        await processes.start()
        request = CaptureRequest("application/json", "", {}, None, None)
        envelope = Envelope(None, None, 1_790_000_000_000_000)
        try:
            for _ in range(2):
                with pytest.raises(Unavailable, match="retry"):
                    await processes.ingest(content, request, envelope, limit=1 << 20)
            return processes.broken
        finally:
            await processes.stop()

    assert asyncio.run(ask_twice())
