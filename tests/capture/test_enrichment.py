"""Enrichment and privacy happen before anything is stored; raw IPs never are."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from eventplan.capture.enrich import TrustedProxies, ip_hash, referrer_domain
from eventplan.capture.events import event_time
from tests.servers import TOKEN, RunningServer

CLIENT_IP = "203.0.113.77"  # documentation range; sent only as a header, never connected to


def send(server: RunningServer, *events: dict[str, object], **headers: str) -> None:
    response = httpx.post(
        f"{server.url}/batch/",
        content=json.dumps({"api_key": TOKEN, "batch": list(events)}),
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text


def properties_of(server: RunningServer, person: str) -> dict[str, object]:
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[props]] = server.sql(f"SELECT properties FROM events WHERE distinct_id = '{person}'")
    return dict(json.loads(props))


def test_ip_hash_comes_from_a_trusted_proxy_and_the_ip_is_never_stored(
    server: RunningServer,
) -> None:
    person = f"ip-{uuid.uuid4()}"
    send(
        server,
        {
            "event": "dashboard.entered",
            "distinct_id": person,
            "properties": {
                "app": "openchat-web",
                "chat_total": 1,
                "has_api_key": True,
                "$ip": CLIENT_IP,
            },
        },
        **{"x-forwarded-for": CLIENT_IP},
    )
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[hashed, props]] = server.sql(
        f"SELECT ip_hash, properties FROM events WHERE distinct_id = '{person}'"
    )
    assert hashed == ip_hash(CLIENT_IP) and len(hashed) == 16
    assert "$ip" not in json.loads(props)
    server.stop()  # everything flushed to disk: now search every byte for the address
    try:
        files = [p for p in server.db.parent.rglob("*") if p.is_file() and p.suffix != ".log"]
        files += list(server.db.parent.rglob("wal-*.log"))
        for path in files:
            assert CLIENT_IP.encode() not in Path(path).read_bytes(), path
    finally:
        server.start()


def test_untrusted_peers_cannot_choose_their_ip() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_ip("198.51.100.1", CLIENT_IP) == "198.51.100.1"
    assert proxies.client_ip("10.1.2.3", f"{CLIENT_IP}, 10.1.2.3") == CLIENT_IP
    assert proxies.client_ip("10.1.2.3", "not-an-ip") == "10.1.2.3"
    # a client cannot hide behind a forged left-most entry
    assert proxies.client_ip("10.1.2.3", f"1.2.3.4, {CLIENT_IP}") == CLIENT_IP


def test_the_plan_privacy_policy_is_applied_before_storage(server: RunningServer) -> None:
    person = f"privacy-{uuid.uuid4()}"
    secret = "sk-or-v1-0123456789abcdef"
    send(
        server,
        {
            "event": "openrouter.key_saved",
            "distinct_id": person,
            "properties": {"app": "openchat-web", "source": "modal", "masked_tail": secret},
        },
        {
            "event": "openrouter.models_fetch_failed",
            "distinct_id": person,
            "properties": {"app": "openchat-web", "status": 502, "error_message": "e" * 500},
        },
    )
    server.wait_for_count(f"distinct_id = '{person}'", 2)
    rows = dict(server.sql(f"SELECT event, properties FROM events WHERE distinct_id = '{person}'"))
    saved = json.loads(rows["openrouter.key_saved"])
    assert saved["masked_tail"] == "*" * (len(secret) - 4) + "cdef"
    failed = json.loads(rows["openrouter.models_fetch_failed"])
    assert failed["error_message"] == "e" * 200
    # The log held the key as the client sent it, until the store held it masked.
    wait_for(lambda: all(secret.encode() not in p.read_bytes() for p in log_files(server)))
    server.stop()  # everything flushed to disk: now search every byte for the key
    try:
        files = [p for p in server.db.parent.rglob("*") if p.is_file()]
        assert not [path for path in files if secret.encode() in path.read_bytes()]
    finally:
        server.start()


def log_files(server: RunningServer) -> list[Path]:
    return list(server.db.parent.rglob("wal-*.log"))


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_referrer_utm_and_entry_are_derived_for_events_that_plan_them(
    server: RunningServer,
) -> None:
    person = f"enrich-{uuid.uuid4()}"
    send(
        server,
        {
            "event": "marketing.visit_landing",
            "distinct_id": person,
            "properties": {
                "app": "openchat-web",
                "session_is_guest": True,
                "$referrer": "https://news.ycombinator.com/item?id=1",
                "$current_url": "https://openchat.example/pricing?utm_source=hn&utm_campaign=launch",
            },
        },
    )
    props = properties_of(server, person)
    assert props["referrer_url"] == "https://news.ycombinator.com/item?id=1"
    assert props["referrer_domain"] == "news.ycombinator.com"
    assert props["utm_source"] == "hn"
    assert props["entry_path"] == "/pricing"
    assert "utm_campaign" not in props  # the plan does not define it on this event
    [[verdict]] = server.sql(f"SELECT verdict FROM events WHERE distinct_id = '{person}'")
    assert verdict == "valid"


def test_referrer_domain_is_direct_without_a_referrer() -> None:
    assert referrer_domain(None) == "direct"
    assert referrer_domain("$direct") == "direct"
    assert referrer_domain("https://www.google.com/search?q=x") == "www.google.com"


def test_clock_skew_is_corrected_from_sent_at(server: RunningServer) -> None:
    person = f"skew-{uuid.uuid4()}"
    now = datetime.now(UTC)
    client_clock = now + timedelta(hours=2)  # the device's clock runs two hours fast
    send_body = {
        "api_key": TOKEN,
        "sent_at": client_clock.isoformat(),
        "batch": [
            {
                "event": "sync.connection_state",
                "distinct_id": person,
                "timestamp": (client_clock - timedelta(seconds=30)).isoformat(),
                "properties": {"app": "openchat-web", "state": "failed"},
            }
        ],
    }
    assert httpx.post(f"{server.url}/batch/", json=send_body, timeout=30).status_code == 200
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[stored, created]] = server.sql(
        "SELECT epoch_ms(timestamp), epoch_ms(created_at) FROM events "
        f"WHERE distinct_id = '{person}'"
    )
    # 30 s before the server received it, give or take the 5-minute skew rounding.
    assert abs((created - stored) - 30_000) <= 150_000


def test_event_time_rules() -> None:
    received = int(time.time() * 1_000_000)
    minute = 60_000_000
    assert event_time({"offset": 1500}, {}, None, received) == received - 1_500_000
    assert event_time({"timestamp": "garbage"}, {}, None, received) == received
    far_future = datetime.now(UTC) + timedelta(days=3)
    assert event_time({"timestamp": far_future.isoformat()}, {}, None, received) == received
    # skew of one hour is removed; $ignore_sent_at keeps the client's time
    client_now = received + 60 * minute
    stamp = datetime.fromtimestamp((client_now - minute) / 1e6, UTC).isoformat()
    assert abs(event_time({"timestamp": stamp}, {}, client_now, received) - (received - minute)) < 2
    ignored = event_time({"timestamp": stamp}, {"$ignore_sent_at": True}, client_now, received)
    assert abs(ignored - (client_now - minute)) < 2
