"""eventplan.server against a real eventplan server, through the real posthog-python client."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest
from posthog import Posthog
from starlette.requests import Request

from eventplan.capture.enrich import ip_hash
from eventplan.server import PlanViolation, ServerAnalytics
from tests.conftest import OPENCHAT
from tests.servers import TOKEN, RunningServer


def analytics(server: RunningServer, **options: object) -> ServerAnalytics:
    client = Posthog(TOKEN, host=server.url, sync_mode=True)
    return ServerAnalytics(
        client,
        environment="production",
        deployment_region="fra1",  # type: ignore[arg-type]
        plan=OPENCHAT,
        **options,
    )


def stored(server: RunningServer, person: str, count: int = 1) -> list[dict[str, object]]:
    server.wait_for_count(f"distinct_id = '{person}'", count)
    rows = server.sql(f"SELECT properties, verdict FROM events WHERE distinct_id = '{person}'")
    return [{**json.loads(props), "_verdict": verdict} for props, verdict in rows]


def request(client_ip: str, forwarded: str | None = None, agent: str | None = None) -> Request:
    headers = [(b"origin", b"https://openchat.example")]
    if agent:
        headers.append((b"user-agent", agent.encode()))
    if forwarded:
        headers.append((b"x-forwarded-for", forwarded.encode()))
    return Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/api/chat",
            "headers": headers,
            "client": (client_ip, 50123),
            "query_string": b"",
        }
    )


def test_capture_on_exit_measures_and_marks_completed(server: RunningServer) -> None:
    person = f"helper-{uuid.uuid4()}"
    with analytics(server).capture_on_exit(
        "chat_message_stream", person, request=request("198.51.100.7")
    ) as props:
        props.update(chat_id="c1", model_id="openai/gpt-4o-mini", characters=12)
    [event] = stored(server, person)
    assert event["status"] == "completed" and isinstance(event["duration_ms"], int)
    assert event["app"] == "openchat-server" and event["environment"] == "production"
    assert event["deployment_region"] == "fra1" and event["origin"] == "openchat.example"
    assert event["ip_hash"] == ip_hash("198.51.100.7")
    assert event["_verdict"] == "valid"


def test_an_exception_is_captured_as_error_and_still_raised(server: RunningServer) -> None:
    person = f"helper-{uuid.uuid4()}"
    with (
        pytest.raises(RuntimeError),
        analytics(server).capture_on_exit(
            "chat_message_stream", person, {"chat_id": "c", "model_id": "m"}
        ),
    ):
        raise RuntimeError("upstream 502")
    assert stored(server, person)[0]["status"] == "error"


def test_a_cancelled_handler_is_aborted(server: RunningServer) -> None:
    person = f"helper-{uuid.uuid4()}"
    helper = analytics(server)

    async def handler() -> None:
        async with helper.acapture_on_exit(
            "chat_message_stream", person, {"chat_id": "c", "model_id": "m"}
        ):
            await asyncio.sleep(30)

    async def main() -> None:
        task = asyncio.create_task(handler())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert stored(server, person)[0]["status"] == "aborted"


def test_no_distinct_id_no_capture(server: RunningServer) -> None:
    helper = analytics(server)
    assert helper.capture("chat_message_stream", None, {"chat_id": "c"}) is False
    with helper.capture_on_exit("chat_message_stream", "") as props:
        props["chat_id"] = "c"
    before = server.sql("SELECT count(*) FROM events WHERE distinct_id = ''")[0][0]
    assert before == 0


def test_forwarded_for_only_through_trusted_proxies(server: RunningServer) -> None:
    trusted = analytics(server, trusted_proxies=("10.0.0.0/8",))
    untrusted = analytics(server)
    assert trusted.request_properties(request("10.1.1.1", "203.0.113.5"))["ip_hash"] == ip_hash(
        "203.0.113.5"
    )
    assert untrusted.request_properties(request("10.1.1.1", "203.0.113.5"))["ip_hash"] == ip_hash(
        "10.1.1.1"
    )


def test_a_bots_request_labels_the_server_event(server: RunningServer) -> None:
    helper = analytics(server)
    person = f"helper-bot-{uuid.uuid4()}"
    crawler = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"
    stream = {"chat_id": "c-bot", "model_id": "m", "status": "completed", "duration_ms": 5}
    helper.capture("chat_message_stream", person, stream, request("10.0.0.1", agent=crawler))
    helper.capture("chat_message_stream", person, stream, request("10.0.0.2", agent=chrome))
    events = stored(server, person, 2)
    labelled = [e for e in events if e.get("$eventplan_bot")]
    assert [e["$eventplan_bot_name"] for e in labelled] == ["bingbot"]
    assert len(events) == 2 and all(e["_verdict"] == "valid" for e in events)


def test_strict_mode_raises_in_development_and_logs_in_production(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    person = f"helper-{uuid.uuid4()}"
    with pytest.raises(PlanViolation, match="status"):
        analytics(server, strict="raise").capture(
            "chat_message_stream",
            person,
            {"chat_id": "c", "model_id": "m", "status": "ok", "duration_ms": 1},
        )
    with caplog.at_level(logging.WARNING, logger="eventplan.server"):
        analytics(server, strict="log").capture(
            "chat_message_stream",
            person,
            {"chat_id": "c", "model_id": "m", "status": "ok", "duration_ms": 1},
        )
    assert "breaks the plan" in caplog.text
    [event] = stored(server, person)  # only the logged one was sent
    assert event["_verdict"] == "invalid"


def test_strict_mode_judges_as_capture_does(server: RunningServer) -> None:
    """Capture fills `referrer_domain` in from `$referrer`; strict mode judges the event
    after the same enrichment, so it does not refuse what the server will store valid."""
    person = f"helper-{uuid.uuid4()}"
    referrer = "https://news.example/launch"
    sent = analytics(server, strict="raise").capture(
        "$pageview",
        person,
        {"referrer_url": referrer, "entry_path": "/", "$referrer": referrer},
    )
    assert sent
    [event] = stored(server, person)
    assert (event["_verdict"], event["referrer_domain"]) == ("valid", "news.example")
