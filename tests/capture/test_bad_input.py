"""Malformed requests get a 4xx that says what was wrong, and the server keeps serving."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.servers import TOKEN, RunningServer


def event(**overrides: object) -> dict[str, object]:
    return {
        "event": "sync.connection_state",
        "distinct_id": "bad-input",
        "properties": {"app": "openchat-web", "state": "connected"},
        **overrides,
    }


def batch(*events: object, token: str = TOKEN) -> bytes:
    return json.dumps({"api_key": token, "batch": list(events)}).encode()


GZIPPED = gzip.compress(batch(event()))

CASES = [
    ("malformed JSON", b"{not json", {}, 400, "not valid JSON"),
    ("top level is a string", b'"hello"', {}, 400, "JSON object or an array"),
    ("batch is not a list", b'{"api_key": "%s", "batch": 5}' % TOKEN.encode(), {}, 400, "`batch`"),
    ("event is not an object", batch(5), {}, 400, "event 0 is not a JSON object"),
    ("event without a name", batch(event(event="")), {}, 400, "no `event` name"),
    ("no distinct_id", batch(event(distinct_id=None)), {}, 400, "no distinct_id"),
    ("properties not an object", batch(event(properties=[1])), {}, 400, "`properties`"),
    ("bad uuid", batch(event(uuid="not-a-uuid")), {}, 400, "is not a UUID"),
    ("truncated gzip", GZIPPED[: len(GZIPPED) // 2], {}, 400, "truncated"),
    (
        "said to be gzip, and neither gzip nor JSON",
        b"{not json",
        {"content-encoding": "gzip"},
        400,
        "not gzip (as the request says) nor JSON",
    ),
    (
        "bad base64",
        b"data=a",
        {"content-type": "application/x-www-form-urlencoded"},
        400,
        "base64",
    ),
    (
        "too deep",
        batch(event(properties={"x": json.loads("[" * 40 + "]" * 40)})),
        {},
        400,
        "nests deeper",
    ),
    ("nested past what JSON decoding takes", b"[" * 100_000 + b"]" * 100_000, {}, 400, "nests too"),
    (
        "a form of a thousand fields",
        b"&".join(b"f%d=" % n for n in range(1000)) + b"&data=" + base64.b64encode(batch(event())),
        {"content-type": "application/x-www-form-urlencoded"},
        400,
        "more than 100 fields",
    ),
    ("no token", json.dumps({"batch": [event()]}).encode(), {}, 401, "no project token"),
    ("unknown token", batch(event(), token="phc_unknown"), {}, 401, "unknown project token"),
    ("personal key", batch(event(), token="phx_secret"), {}, 401, "personal API key"),
    ("empty body", b"", {}, 400, "no body"),
]


@pytest.mark.parametrize("path", ["/batch/", "/i/v0/ai/batch/"], ids=["batch", "ai-lane"])
@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_requests_get_a_clear_4xx(
    server: RunningServer,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    response = httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert response.json()["status"] == status


def test_a_body_over_the_limit_is_413(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/batch/", content=b"x" * (21 * 1024 * 1024), timeout=60)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_too_many_events_is_413(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/batch/", content=batch(*[event()] * 20_001), timeout=60)
    assert response.status_code == 413
    assert "20000" in response.json()["detail"]


def test_the_server_keeps_serving_and_counts_rejections(server: RunningServer) -> None:
    health = server.health()
    assert health["status"] == "ok"
    assert health["counters"].get("http_400", 0) >= 1
    person = f"after-bad-{uuid.uuid4()}"
    ok = httpx.post(f"{server.url}/batch/", content=batch(event(distinct_id=person)), timeout=30)
    assert ok.status_code == 200 and ok.json() == {"status": 1}
    server.wait_for_count(f"distinct_id = '{person}'", 1)


# Odd but valid JSON that real clients can send: each is stored, never refused (a 4xx
# makes posthog-js drop the whole batch) and never a 500.
HUGE = 2**70  # past 64 bits: PostHog's capture reads it as a float


def raw_batch(person: str, event_fields: str, envelope_fields: str = "") -> bytes:
    """A batch of one event, its fields written as JSON text: what json.dumps cannot say."""
    envelope = f'"api_key": "{TOKEN}"' + (f", {envelope_fields}" if envelope_fields else "")
    one = f'{{"event": "odd", "distinct_id": "{person}", {event_fields}}}'
    return f'{{{envelope}, "batch": [{one}]}}'.encode()


def test_an_integer_past_64_bits_is_stored_as_a_float(server: RunningServer) -> None:
    person = f"huge-{uuid.uuid4()}"
    body = batch(event(distinct_id=person, properties={"app": "openchat-web", "huge": HUGE}))
    response = httpx.post(f"{server.url}/batch/", content=body, timeout=30)
    assert response.status_code == 200, response.text
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[huge]] = server.sql(
        "SELECT json_extract(properties, '$.huge')::DOUBLE FROM events "
        f"WHERE distinct_id = '{person}'"
    )
    assert huge == float(HUGE)


@pytest.mark.parametrize(
    "times",
    [
        '"timestamp": -1e300',
        '"timestamp": "0001-01-01T00:00:00+14:00"',
        '"timestamp": -9223371950454778',
        '"offset": 1e300',
    ],
    ids=["far-past number", "year 1", "near int64", "huge offset"],
)
def test_a_time_out_of_any_range_is_taken_as_the_time_received(
    server: RunningServer, times: str
) -> None:
    person = f"time-{uuid.uuid4()}"
    response = httpx.post(f"{server.url}/batch/", content=raw_batch(person, times), timeout=30)
    assert response.status_code == 200, response.text
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[timestamp, created_at]] = server.sql(
        f"SELECT timestamp, created_at FROM events WHERE distinct_id = '{person}'"
    )
    assert timestamp == created_at


def test_a_sent_at_out_of_range_is_ignored(server: RunningServer) -> None:
    person = f"sent-at-{uuid.uuid4()}"
    body = raw_batch(person, '"timestamp": "2026-01-01T00:00:00Z"', '"sent_at": 1.7e305')
    response = httpx.post(f"{server.url}/batch/", content=body, timeout=30)
    assert response.status_code == 200, response.text
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[timestamp]] = server.sql(f"SELECT timestamp FROM events WHERE distinct_id = '{person}'")
    assert timestamp.startswith("2026-01-01")


@pytest.mark.parametrize("sent_at", ["9" * 5000, "\u00b2"], ids=["5000 digits", "superscript two"])
def test_a_query_time_that_is_no_number_is_ignored(server: RunningServer, sent_at: str) -> None:
    person = f"query-time-{uuid.uuid4()}"
    response = httpx.post(
        f"{server.url}/e/?_={sent_at}", content=batch(event(distinct_id=person)), timeout=30
    )
    assert response.status_code == 200, response.text
    server.wait_for_count(f"distinct_id = '{person}'", 1)


def test_a_lone_surrogate_escape_is_stored_as_a_replacement_character(
    server: RunningServer,
) -> None:
    # JSON.stringify("a😀".slice(0, 2)): the emoji cut in half.
    person = f"surrogate-{uuid.uuid4()}"
    body = raw_batch(person, '"properties": {"title": "a\\ud83d"}')
    response = httpx.post(f"{server.url}/batch/", content=body, timeout=30)
    assert response.status_code == 200, response.text
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    [[title]] = server.sql(
        f"SELECT properties->>'title' FROM events WHERE distinct_id = '{person}'"
    )
    assert title == "a\ufffd"


ENCODINGS = {
    "json": lambda body: (body, {"content-type": "application/json"}, ""),
    "gzip sniffed (posthog-js)": lambda body: (
        gzip.compress(body),
        {"content-type": "text/plain"},
        "",
    ),
    "content-encoding gzip (posthog-python)": lambda body: (
        gzip.compress(body),
        {"content-type": "application/json", "content-encoding": "gzip"},
        "",
    ),
    "compression=gzip-js (older posthog-js)": lambda body: (
        gzip.compress(body),
        {"content-type": "text/plain"},
        "?compression=gzip-js",
    ),
    "form data= base64": lambda body: (
        b"data=" + base64.b64encode(body).replace(b"+", b"%2B").replace(b"=", b"%3D"),
        {"content-type": "application/x-www-form-urlencoded"},
        "?compression=base64",
    ),
    "sendBeacon text/plain JSON": lambda body: (body, {"content-type": "text/plain"}, ""),
}


@pytest.mark.parametrize("encoding", list(ENCODINGS))
@pytest.mark.parametrize("path", ["/e/", "/i/v0/e/", "/batch", "/capture/", "/track", "/engage/"])
def test_every_path_and_encoding_is_accepted(
    server: RunningServer, encoding: str, path: str
) -> None:
    person = f"enc-{uuid.uuid4()}"
    body, headers, query = ENCODINGS[encoding](batch(event(distinct_id=person)))
    response = httpx.post(f"{server.url}{path}{query}", content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": 1}
    server.wait_for_count(f"distinct_id = '{person}'", 1)


def test_get_with_data_in_the_query(server: RunningServer) -> None:
    person = f"get-{uuid.uuid4()}"
    data = base64.b64encode(json.dumps({**event(distinct_id=person), "api_key": TOKEN}).encode())
    response = httpx.get(f"{server.url}/e/", params={"data": data.decode()}, timeout=30)
    assert response.status_code == 200
    server.wait_for_count(f"distinct_id = '{person}'", 1)


def test_init_endpoints_answer_like_posthog(server: RunningServer) -> None:
    config = httpx.get(f"{server.url}/array/{TOKEN}/config", timeout=10).json()
    assert "gzip-js" in config["supportedCompression"]
    script = httpx.get(f"{server.url}/array/{TOKEN}/config.js", timeout=10)
    assert "javascript" in script.headers["content-type"]
    assert f'_POSTHOG_REMOTE_CONFIG["{TOKEN}"]' in script.text
    flags = httpx.post(f"{server.url}/flags/?v=2", content=b"{}", timeout=10).json()
    assert flags["flags"] == {} and flags["errorsWhileComputingFlags"] is False
    preflight = httpx.options(
        f"{server.url}/e/",
        headers={
            "origin": "https://openchat.example",
            "access-control-request-headers": "content-type",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://openchat.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-headers"] == "content-type"


def test_recordings_are_accepted_and_counted(server: RunningServer) -> None:
    response = httpx.post(f"{server.url}/s/", content=gzip.compress(b"[]"), timeout=10)
    assert response.status_code == 200
    assert server.health()["recordings"]["requests"] >= 1


def test_the_capture_token_cannot_read(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.url}/api/sql",
        json={"query": "SELECT 1"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM events_data", "only SELECT"),
        ("SELEC 1", "does not parse"),
        ("SELECT nope", "nope"),
    ],
)
def test_api_sql_refuses_writes_and_explains_errors(
    server: RunningServer, query: str, message: str
) -> None:
    from tests.servers import API_KEY

    response = httpx.post(
        f"{server.url}/api/sql",
        json={"query": query},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    )
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_a_token_over_its_budget_gets_503_with_retry_after(tmp_path: Path) -> None:
    from tests.servers import openchat_server

    limited = openchat_server(tmp_path, env={"EVENTPLAN_TOKEN_RATE": "50"})
    try:
        body = batch(*[event(distinct_id="budget")] * 40)
        first = httpx.post(f"{limited.url}/batch/", content=body, timeout=30)
        second = httpx.post(f"{limited.url}/batch/", content=body, timeout=30)
        assert first.status_code == 200
        assert second.status_code == 503 and int(second.headers["retry-after"]) >= 1
        assert "budget" in second.json()["detail"]
        assert limited.health()["counters"]["http_503"] == 1
    finally:
        limited.stop()
