"""PostHog's own compatibility fixture: requests recorded from posthog-js 1.78.5 (form
and base64 bodies, gzip with and without the `?compression=gzip-js` hint, and a hint
that does not match the body), posthog-node 4.0.0 and a batch export. As PostHog's
capture test requires: a 200 for every line, and every event it produced stored.

The server is given the dump's own tokens, so each request is replayed byte for byte.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPENCHAT
from tests.servers import RunningServer, free_port

DUMP = Path(__file__).parent / "fixtures" / "posthog-requests-dump.jsonl"  # see its README


def recorded() -> list[dict[str, Any]]:
    lines = DUMP.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip() and not line.startswith("#")]


REQUESTS = recorded()
TOKENS = sorted({event["token"] for request in REQUESTS for event in request["output"]})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("dump")
    tokens = [arg for token in TOKENS for arg in ("--token", token)]
    running = RunningServer(
        db=folder / "eventplan.duckdb",
        port=free_port(),
        args=["--plan", str(OPENCHAT), *tokens, "--alert-interval", "0"],
    ).start()
    yield running
    running.stop()


@pytest.mark.parametrize("number", range(len(REQUESTS)))
def test_every_recorded_request_is_taken_whole(server: RunningServer, number: int) -> None:
    request = REQUESTS[number]
    headers = {"Content-Type": request["content_type"]}
    if request["content_encoding"]:
        headers["Content-Encoding"] = request["content_encoding"]
    response = httpx.request(
        request["method"],
        server.url + request["path"],
        content=base64.b64decode(request["body"]),
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    uuids = [event["uuid"] for event in request["output"]]
    quoted = ", ".join(f"'{uuid}'" for uuid in uuids)
    server.wait_for_count(f"uuid IN ({quoted})", len(uuids))
