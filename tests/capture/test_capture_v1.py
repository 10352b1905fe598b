"""PostHog's Capture v1 and AI lane, as posthog-python 7.91 speaks them.

`Posthog(…, capture_mode="v1")` posts to `/i/v1/analytics/events` with a Bearer
token and gets one result per event; `capture_ai` posts `$ai_*` events to
`/i/v0/ai/batch/`. Every event lands once, judged as the other doors judge it, and
the v1 answer carries the plan's verdict beside PostHog's result.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import zstandard
from posthog import Posthog

from tests.servers import TOKEN, RunningServer

V1 = "/i/v1/analytics/events"
STREAM = {
    "app": "openchat-server",
    "chat_id": "c-v1",
    "model_id": "openai/gpt-4o-mini",
    "status": "completed",
    "duration_ms": 950,
    "environment": "production",
}
GENERATION = {
    "app": "openchat-server",
    "$ai_model": "openai/gpt-4o-mini",
    "$ai_provider": "openrouter",
    "$ai_input_tokens": 812,
    "$ai_output_tokens": 240,
    "$ai_latency": 1.84,
    "$ai_http_status": 200,
    "$ai_trace_id": "trace-1",
}


def v1_event(person: str, event: str = "chat_message_stream", **fields: Any) -> dict[str, Any]:
    return {
        "event": event,
        "uuid": str(uuid.uuid4()),
        "distinct_id": person,
        "timestamp": datetime.now(UTC).isoformat(),
        "options": {},
        "properties": dict(STREAM),
        **fields,
    }


def post_v1(
    server: RunningServer,
    events: list[Any],
    token: str = TOKEN,
    content: bytes | None = None,
    **headers: str,
) -> httpx.Response:
    body = {"created_at": datetime.now(UTC).isoformat(), "batch": events}
    return httpx.post(
        server.url + V1,
        content=content if content is not None else json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "PostHog-Sdk-Info": "posthog-python/7.91.1",
            "PostHog-Attempt": "1",
            "PostHog-Request-Id": str(uuid.uuid4()),
            "PostHog-Request-Timestamp": datetime.now(UTC).isoformat(),
            **headers,
        },
        timeout=30,
    )


@pytest.mark.parametrize("compression", ["none", "gzip", "deflate", "zstd"])
def test_posthog_python_in_v1_mode_lands_every_event_judged(
    server: RunningServer, compression: str
) -> None:
    person = f"v1-py-{uuid.uuid4()}"
    before = server.health()["counters"].get("requests_v1", 0)
    errors: list[Exception] = []
    posthog = Posthog(
        TOKEN,
        host=server.url,
        capture_mode="v1",
        capture_compression=compression,
        on_error=lambda error, batch: errors.append(error),
    )
    posthog.capture("chat_message_stream", distinct_id=person, properties=STREAM)
    posthog.capture(
        "chat_message_stream",
        distinct_id=person,
        properties={**STREAM, "status": "finished", "$session_id": "s-1", "$window_id": "w-1"},
    )
    posthog.flush()
    posthog.shutdown()
    server.wait_for_count(f"distinct_id = '{person}'", 2)
    rows = server.sql(
        "SELECT verdict, properties FROM events "
        f"WHERE distinct_id = '{person}' ORDER BY verdict DESC"
    )
    assert [r[0] for r in rows] == ["valid", "invalid"]
    valid, invalid = (json.loads(r[1]) for r in rows)
    # $lib is not in a v1 event: the server fills it from PostHog-Sdk-Info.
    assert (valid["$lib"], valid["$lib_version"]) == ("posthog-python", "7.91.1")
    # session and window ids travel at the top level in v1, and come back as properties
    assert (invalid["$session_id"], invalid["$window_id"]) == ("s-1", "w-1")
    assert errors == []  # a `warning` (the invalid event) is a success to the SDK
    assert server.health()["counters"]["requests_v1"] > before  # through the v1 door


def test_each_event_is_answered_by_uuid_with_its_verdict(server: RunningServer) -> None:
    person = f"v1-answer-{uuid.uuid4()}"
    valid = v1_event(person)
    invalid = v1_event(person, properties={**STREAM, "status": "finished"})
    unplanned = v1_event(person, event="chat.stream_resumed")
    nameless = v1_event(person, event="")
    before = server.health()["counters"]
    response = post_v1(server, [valid, invalid, unplanned, nameless])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[valid["uuid"]]["result"] == "ok"
    assert results[valid["uuid"]]["eventplan"] == {"verdict": "valid", "violations": []}
    assert results[invalid["uuid"]]["result"] == "warning"
    assert results[invalid["uuid"]]["eventplan"]["verdict"] == "invalid"
    [violation] = results[invalid["uuid"]]["eventplan"]["violations"]
    assert (violation["code"], violation["property"]) == ("not_in_enum", "status")
    assert "finished" in results[invalid["uuid"]]["details"]
    assert results[unplanned["uuid"]]["eventplan"]["verdict"] == "unplanned"
    # An event that cannot be read is dropped alone, with the reason.
    assert results[nameless["uuid"]] == {"result": "drop", "details": "event 3 has no `event` name"}
    server.wait_for_count(f"distinct_id = '{person}'", 3)
    stored = server.sql(f"SELECT uuid::VARCHAR, verdict FROM events WHERE distinct_id = '{person}'")
    # The verdict in the answer is the verdict stored.
    assert {u: v for u, v in stored} == {
        u: results[u]["eventplan"]["verdict"]
        for u in (valid["uuid"], invalid["uuid"], unplanned["uuid"])
    }
    # Each verdict counted once in /_health, judged at the door or by the writer.
    after = server.health()["counters"]
    for verdict in ("valid", "invalid", "unplanned"):
        assert after[f"events_{verdict}"] - before[f"events_{verdict}"] == 1, verdict


def test_the_request_timestamp_corrects_a_skewed_clock(server: RunningServer) -> None:
    person = f"v1-skew-{uuid.uuid4()}"
    # The device's clock is an hour fast: its event time and its send time alike.
    fast = datetime.now(UTC).timestamp() + 3600
    moment = datetime.fromtimestamp(fast, UTC).isoformat()
    event = v1_event(person, timestamp=moment)
    assert post_v1(server, [event], **{"PostHog-Request-Timestamp": moment}).status_code == 200
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[skew]] = server.sql(
        f"SELECT epoch(timestamp) - epoch(now()) FROM events WHERE distinct_id = '{person}'"
    )
    assert abs(skew) < 600  # corrected to about now, not an hour ahead


@pytest.mark.parametrize(
    ("encode", "encoding"),
    [
        (gzip.compress, "gzip"),
        (zlib.compress, "deflate"),
        (zstandard.ZstdCompressor().compress, "zstd"),
    ],
)
def test_compressed_bodies_are_read_by_their_bytes(
    server: RunningServer, encode: Any, encoding: str
) -> None:
    person = f"v1-{encoding}-{uuid.uuid4()}"
    event = v1_event(person)
    body = encode(json.dumps({"created_at": event["timestamp"], "batch": [event]}).encode())
    response = post_v1(server, [], content=body, **{"Content-Encoding": encoding})
    assert response.json()["results"][event["uuid"]]["result"] == "ok"


@pytest.mark.parametrize(
    ("headers", "body", "status", "says"),
    [
        ({"Authorization": ""}, None, 401, "Authorization: Bearer"),
        ({"Authorization": "Basic abc"}, None, 401, "Authorization: Bearer"),
        ({"Authorization": "Bearer phc_nobody"}, None, 401, "unknown project token"),
        ({}, b'{"batch": 3}', 400, "`batch` array"),
        ({}, b"[]", 400, "`batch` array"),
        ({}, b'{"batch": [{"event": "x", "distinct_id": "a"}]}', 400, "no `uuid`"),
        ({}, b"\x28\xb5\x2f\xfd garbage", 400, "not valid zstd"),
        ({}, b"x\x9c garbage", 400, "not valid deflate"),
        ({}, b"{not json", 400, "not valid JSON"),
        ({}, b"", 400, "no body"),
        ({}, gzip.compress(b'{"batch": []}')[:12], 400, "truncated"),
        ({}, b"[" * 100_000 + b"]" * 100_000, 400, "nests too"),
        ({}, b'{"batch": [5]}', 400, "no `uuid`"),
        ({}, json.dumps({"batch": [{"uuid": "u"}] * 20_001}).encode(), 413, "the limit is 20000"),
    ],
)
def test_a_request_that_cannot_be_read_is_a_clear_4xx_and_never_a_5xx(
    server: RunningServer, headers: dict[str, str], body: bytes | None, status: int, says: str
) -> None:
    response = post_v1(server, [v1_event("nobody")], content=body, **headers)
    assert response.status_code == status
    assert says in response.json()["detail"]


def test_posthog_python_capture_ai_takes_the_ai_lane(server: RunningServer) -> None:
    person = f"ai-py-{uuid.uuid4()}"
    before = server.health()["counters"].get("requests_ai_lane", 0)
    posthog = Posthog(TOKEN, host=server.url, capture_mode="v1")
    posthog.capture_ai("$ai_generation", distinct_id=person, properties=GENERATION)
    posthog.capture_ai(
        "$ai_generation", distinct_id=person, properties={**GENERATION, "$ai_input_tokens": "many"}
    )
    posthog.flush()
    posthog.shutdown()
    server.wait_for_count(f"distinct_id = '{person}'", 2)
    rows = server.sql(
        "SELECT verdict, violations FROM events "
        f"WHERE distinct_id = '{person}' AND event = '$ai_generation' ORDER BY verdict DESC"
    )
    assert [r[0] for r in rows] == ["valid", "invalid"]
    [violation] = json.loads(rows[1][1])
    assert violation["property"] == "$ai_input_tokens"
    assert server.health()["counters"]["requests_ai_lane"] > before  # through the AI lane


def test_the_ai_lane_takes_a_large_event_and_names_one_too_large(server: RunningServer) -> None:
    person = f"ai-large-{uuid.uuid4()}"

    def generation(size: int) -> dict[str, Any]:
        return {
            "event": "$ai_generation",
            "distinct_id": person,
            "uuid": str(uuid.uuid4()),
            "properties": {**GENERATION, "$ai_input": "x" * size},
        }

    big = generation(6 * 1024 * 1024)  # past an ordinary event's 1 MB, within 8 MiB
    taken = httpx.post(
        server.url + "/i/v0/ai/batch/", json={"api_key": TOKEN, "batch": [big]}, timeout=60
    )
    assert taken.status_code == 200, taken.text
    too_big = generation(9 * 1024 * 1024)
    refused = httpx.post(
        server.url + "/i/v0/ai/batch/",
        json={"api_key": TOKEN, "batch": [generation(10), too_big]},
        timeout=60,
    )
    assert refused.status_code == 413
    assert too_big["uuid"] in refused.json()["detail"]
    assert "$ai_generation" in refused.json()["detail"]
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[count]] = server.sql(f"SELECT count(*) FROM events WHERE distinct_id = '{person}'")
    assert count == 1  # the refused request took nothing


def test_the_answer_is_keyed_by_the_uuid_as_the_client_wrote_it(server: RunningServer) -> None:
    person = f"v1-upper-{uuid.uuid4()}"
    event = v1_event(person)
    event["uuid"] = event["uuid"].upper()
    results = post_v1(server, [event]).json()["results"]
    assert list(results) == [event["uuid"]] and results[event["uuid"]]["result"] == "ok"
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[stored]] = server.sql(f"SELECT uuid::VARCHAR FROM events WHERE distinct_id = '{person}'")
    assert stored == event["uuid"].lower()  # stored in canonical form
