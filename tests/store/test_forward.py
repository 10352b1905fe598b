"""Gateway mode: a second eventplan server plays PostHog (a real capture endpoint)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from click.testing import CliRunner
from posthog import Posthog

from eventplan.cli import cli
from tests.conftest import OPENCHAT
from tests.servers import API_KEY, TOKEN, RunningServer, free_port, openchat_server

UPSTREAM_TOKEN = "phc_upstream_posthog_project"


def upstream(folder: Path) -> RunningServer:
    folder.mkdir(parents=True, exist_ok=True)
    return RunningServer(
        db=folder / "eventplan.duckdb",
        port=free_port(),
        args=["--plan", str(OPENCHAT), "--token", UPSTREAM_TOKEN, "--alert-interval", "0"],
    ).start()


def gateway_to(receiver: RunningServer, tmp_path: Path, token: str) -> RunningServer:
    """An eventplan server forwarding to `receiver` with `token`."""
    return openchat_server(
        tmp_path / "gateway",
        "--forward",
        receiver.url,
        "--forward-token",
        token,
        "--alert-interval",
        "0",
    )


def send(server: RunningServer, person: str, count: int, **properties: object) -> None:
    client = Posthog(TOKEN, host=server.url, sync_mode=True)
    for index in range(count):
        client.capture(
            "sync.connection_state",
            distinct_id=person,
            properties={
                "app": "openchat-web",
                "state": "connected",
                "retry_count": index,
                **properties,
            },
        )


def wait_for(predicate, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_events_arrive_upstream_with_privacy_and_verdicts(tmp_path: Path) -> None:
    receiver = upstream(tmp_path / "posthog")
    gateway = gateway_to(receiver, tmp_path, UPSTREAM_TOKEN)
    try:
        person = f"gw-{uuid.uuid4()}"
        send(gateway, person, 3)
        client = Posthog(TOKEN, host=gateway.url, sync_mode=True)
        client.capture(
            "openrouter.key_saved",
            distinct_id=person,
            properties={
                "app": "openchat-web",
                "source": "modal",
                "masked_tail": "sk-or-v1-secret-9999",
                "$ip": "203.0.113.50",
            },
        )
        client.capture("sync.connection_state", distinct_id=person, properties={"state": "lost"})
        client.capture("chat.reaction_added", distinct_id=person, properties={})
        receiver.wait_for_count(f"distinct_id = '{person}'", 5)
        rows = receiver.sql(f"SELECT event, properties FROM events WHERE distinct_id = '{person}'")
        by_event = {}
        for event, props in rows:
            by_event.setdefault(event, []).append(json.loads(props))
        assert "chat.reaction_added" not in by_event  # unplanned stays home (plan: valid+invalid)
        saved = by_event["openrouter.key_saved"][0]
        assert saved["masked_tail"].endswith("9999") and "secret" not in saved["masked_tail"]
        assert "$ip" not in saved
        verdicts = sorted(p["$eventplan_verdict"] for p in by_event["sync.connection_state"])
        assert verdicts == ["invalid", "valid", "valid", "valid"]
        broken = next(
            p for p in by_event["sync.connection_state"] if p["$eventplan_verdict"] == "invalid"
        )
        assert "not_in_enum:state" in broken["$eventplan_violations"]
    finally:
        gateway.stop()
        receiver.stop()


def test_an_upstream_outage_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    receiver = upstream(tmp_path / "posthog")
    gateway = gateway_to(receiver, tmp_path, UPSTREAM_TOKEN)
    try:
        person = f"gw-outage-{uuid.uuid4()}"
        send(gateway, person, 20)
        receiver.wait_for_count(f"distinct_id = '{person}'", 20)
        receiver.stop()
        send(gateway, person, 30)
        wait_for(lambda: gateway.health()["forward"]["last_error"] is not None)
        health = gateway.health()
        assert health["status"] == "degraded"
        assert health["forward"]["outbox_depth"] > 0 and health["forward"]["oldest_undelivered"]
        gateway.kill()  # the gateway dies too, with events still queued
        gateway.start()
        receiver.start()
        receiver.wait_for_count(f"distinct_id = '{person}'", 50, timeout=120)
        time.sleep(2)
        [[total, distinct]] = receiver.sql(
            f"SELECT count(*), count(DISTINCT uuid) FROM events WHERE distinct_id = '{person}'"
        )
        assert total == distinct == 50
        wait_for(lambda: gateway.health()["forward"]["outbox_depth"] == 0)
    finally:
        gateway.stop()
        receiver.stop()


def test_a_refused_batch_is_kept_with_its_reason_and_can_be_retried(tmp_path: Path) -> None:
    receiver = upstream(tmp_path / "posthog")
    gateway = gateway_to(receiver, tmp_path, "phc_wrong_token")
    try:
        send(gateway, f"gw-refused-{uuid.uuid4()}", 5)
        wait_for(lambda: gateway.health()["forward"]["failed"] == 5)
        runner = CliRunner()
        status = runner.invoke(
            cli, ["forward", "status", "--db", str(gateway.db), "--api-key", API_KEY]
        )
        report = json.loads(status.output)
        assert report["failed"] == 5
        assert any(
            "401" in e["error"] and "unknown project token" in e["error"] for e in report["errors"]
        )
        retried = runner.invoke(
            cli, ["forward", "retry", "--db", str(gateway.db), "--api-key", API_KEY]
        )
        assert "requeued 5 event(s)" in retried.output
    finally:
        gateway.stop()
        receiver.stop()
    # With the server stopped the same commands read the file directly.
    offline = CliRunner().invoke(cli, ["forward", "status", "--db", str(gateway.db)])
    assert offline.exit_code == 0, offline.output
    offline_report = json.loads(offline.output)
    assert offline_report["pending"] + offline_report["failed"] == 5  # requeued, none lost


def test_an_upstream_retry_after_is_honoured_within_reason() -> None:
    from eventplan.store.forward import MAX_RETRY_AFTER, backoff

    assert backoff(0, "30") == 30.0
    assert backoff(0, "9" * 5000) == MAX_RETRY_AFTER  # not days, and not a crash
    assert backoff(3, "\u00b2") == 8.0  # a digit to str.isdigit, not to float()
    assert backoff(3, None) == 8.0
