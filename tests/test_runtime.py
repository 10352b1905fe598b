"""The runtime is a library: it runs without the web layer, and acknowledges before it judges."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from eventplan.capture.ingest import CaptureRequest
from eventplan.config import load_settings
from eventplan.runtime import Server
from tests.conftest import OPENCHAT


def test_the_runtime_imports_no_http_framework() -> None:
    check = (
        "import sys, eventplan.runtime, eventplan.project, eventplan.store.forward\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn'))\n"
        "print(web)\n"
        "sys.exit(1 if web else 0)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_acknowledgement_logs_the_events_judged_and_the_writer_stores_them(
    tmp_path: Path,
) -> None:
    """`accept` judges the events (verdict, privacy policy), writes them to the log and
    answers: what the policy hides never reaches disk. The writer stores them behind
    it, and `/_health` says how far behind it is."""
    settings = load_settings(
        {
            "plan": str(OPENCHAT),
            "db": str(tmp_path / "r.duckdb"),
            "token": ["phc_runtime"],
            "alert_interval": 0,
        }
    )
    server = Server(settings)
    secret = "sk-or-v1-runtime-0123456789"
    body = json.dumps(
        {
            "api_key": "phc_runtime",
            "batch": [
                {
                    "event": "openrouter.key_saved",
                    "distinct_id": "runtime-1",
                    "properties": {"app": "openchat-web", "source": "modal", "masked_tail": secret},
                },
                {"event": "chat.created", "distinct_id": "runtime-1", "properties": {}},
            ],
        }
    ).encode()
    request = CaptureRequest("application/json", "", {}, "127.0.0.1", None)

    async def acknowledge() -> int:
        return await server.accept(body, request)

    assert asyncio.run(acknowledge()) == 2  # the writer has not started
    [segment] = settings.wal_dir.glob("wal-*.log")
    masked = "*" * (len(secret) - 4) + secret[-4:]
    assert masked.encode() in segment.read_bytes()
    assert secret.encode() not in segment.read_bytes()
    assert server.counters["events_invalid"] == 1  # counted as it is acknowledged
    time.sleep(0.01)  # so the wait is measurable
    lag = server.health()["loader_lag"]
    assert lag["events"] == 2 and lag["seconds"] > 0
    server.start()
    try:
        assert server.writer.flush(30)
        _, rows = server.store.sql(
            "SELECT event, verdict, properties->>'masked_tail' FROM events ORDER BY event"
        )
        assert rows == [
            ("chat.created", "invalid", None),
            ("openrouter.key_saved", "valid", masked),
        ]
        assert server.health()["loader_lag"] == {"events": 0, "seconds": 0.0}
        assert server.counters["events_invalid"] == 1
    finally:
        server.stop()
