"""A logged-in browser is kept safe: security headers everywhere, no change carried by
the session cookie alone, and a session that ends for good at logout."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.servers import API_KEY, RunningServer, logged_in, openchat_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = openchat_server(tmp_path_factory.mktemp("security"), "--alert-interval", "0")
    yield running
    running.stop()


def test_every_response_carries_the_security_headers(server: RunningServer) -> None:
    with logged_in(server) as client:
        for response in (
            client.get("/plan"),
            client.get("/api/dashboards"),
            client.post("/batch/", content=b"{}"),  # capture, refused: headers all the same
            client.get("/static/app.js"),
        ):
            policy = response.headers["content-security-policy"]
            assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-content-type-options"] == "nosniff"


def test_a_post_with_the_session_cookie_from_another_origin_is_refused(
    server: RunningServer,
) -> None:
    other_port = f"http://127.0.0.1:{server.port + 1}"  # same host, another port: same site
    query = {"query": "SELECT count(*) FROM events"}
    with logged_in(server) as client:
        refused = client.post("/api/sql", json=query, headers={"Origin": other_port})
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
        assert client.post("/api/sql", json=query).status_code == 403  # no Origin, no token
        own = client.post("/api/sql", json=query, headers={"Origin": server.url})
        assert own.status_code == 200
        assert client.get("/api/dashboards").status_code == 200  # reading needs neither
    bearer = httpx.post(
        f"{server.url}/api/sql",
        json=query,
        headers={"Authorization": f"Bearer {API_KEY}", "Origin": other_port},
    )
    assert bearer.status_code == 200  # a personal key is no ambient credential


def test_a_session_cookie_kept_from_before_logout_opens_nothing(server: RunningServer) -> None:
    with logged_in(server) as client:
        kept = dict(client.cookies)
        page = client.get("/plan")
        assert page.status_code == 200
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    with httpx.Client(base_url=server.url, cookies=kept) as replay:
        assert replay.get("/plan").status_code == 303  # to the login form
        assert replay.get("/api/dashboards").status_code == 401
