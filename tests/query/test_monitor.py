"""Alerts on a schedule: history, and a webhook told once on firing and once on resolving."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventplan.plan import Plan
from eventplan.query.alerts import check_alerts
from tests.conftest import BACKENDS
from tests.query.conftest import loaded_store
from tests.servers import API_KEY, TOKEN, free_port, openchat_server


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def batch(person: str, count: int, state: str) -> dict[str, Any]:
    return {
        "api_key": TOKEN,
        "batch": [
            {
                "event": "sync.connection_state",
                "distinct_id": person,
                "uuid": str(uuid.uuid4()),
                "properties": {"app": "openchat-web", "state": state},
            }
            for _ in range(count)
        ],
    }


def wait_until(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def test_the_webhook_hears_fired_then_resolved_once_each(
    tmp_path: Path, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    server = openchat_server(tmp_path, "--alert-interval", "1", "--webhook", url)
    try:
        # 30 events with a misspelt state: the invalid-share data-quality alert fires.
        httpx.post(f"{server.url}/batch/", json=batch("m", 30, "reconnecting"), timeout=30)
        wait_until(
            lambda: any(m["state"] == "fired" and m["alert"] == "invalid_share" for m in received)
        )
        time.sleep(2.5)  # more checks pass: still firing, nothing new is sent
        assert [m["state"] for m in received if m["alert"] == "invalid_share"] == ["fired"]
        fired = next(m for m in received if m["alert"] == "invalid_share")
        assert fired["subject"] == "sync.connection_state" and fired["owner"] == "platform"
        assert "invalid_share" in fired["text"] and "FIRED" in fired["text"]
        # Valid traffic dilutes the share below 10%: resolved, once.
        httpx.post(f"{server.url}/batch/", json=batch("m", 400, "connected"), timeout=30)
        wait_until(lambda: any(m["state"] == "resolved" for m in received))
        history = httpx.get(
            f"{server.url}/api/alerts", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
        ).json()["history"]
        states = [
            (h["alert"], h["state"], h["notified"])
            for h in history
            if h["alert"] == "invalid_share"
        ]
        assert sorted(states) == [
            ("invalid_share", "fired", True),
            ("invalid_share", "resolved", True),
        ]
    finally:
        server.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_volume_drop_per_app_version(backend: str, openchat_plan: Plan) -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    events = []
    for day in range(8):
        count = 10 if day == 0 else 150  # version 1.5.0 almost stops in the last day
        for i in range(count):
            events.append(
                {
                    "event": "sync.connection_state",
                    "distinct_id": f"u{i % 7}",
                    "uuid": str(uuid.uuid4()),
                    "timestamp": (now - timedelta(days=day, hours=1, seconds=i)).isoformat(),
                    "properties": {
                        "app": "openchat-web",
                        "state": "connected",
                        "app_version": "1.5.0",
                    },
                }
            )
    with loaded_store(openchat_plan, events, backend) as store:
        results = {
            r.name: r for r in check_alerts(store, openchat_plan, openchat_plan.name, now=now)
        }
    (drop,) = results["volume_drop"].firing
    assert drop.breakdown_value == "1.5.0" and drop.value == 10
