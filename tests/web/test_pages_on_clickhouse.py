"""The UI's pages and panels serve from a server whose store is ClickHouse (chDB).

The browser tests run on the DuckDB default; here the same pages are fetched over
HTTP from a `--db chdb:` server after a real posthog-python capture.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
from posthog import Posthog

from tests.servers import API_KEY, TOKEN, openchat_server


def test_every_page_and_panel_answers_on_clickhouse(tmp_path: Path) -> None:
    server = openchat_server(tmp_path, "--alert-interval", "0", backend="clickhouse")
    person = f"ui-{uuid.uuid4()}"
    try:
        client = Posthog(TOKEN, host=server.url, sync_mode=True)
        client.capture(
            distinct_id=person,
            event="marketing.visit_landing",
            properties={"app": "openchat-web", "referrer_domain": "news.example"},
        )
        client.capture(distinct_id=person, event="made_up.event")
        server.wait_for_count(f"distinct_id = '{person}'", 2)
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            form = browser.get("/login").text
            [csrf] = re.findall(r'name="csrf" value="([^"]+)"', form)
            logged_in = browser.post("/login", data={"csrf": csrf, "key": API_KEY})
            assert logged_in.status_code in (200, 303), logged_in.text
            pages = {path: browser.get(path) for path in ("/", "/live", "/plan", "/alerts")}
            assert {path: r.status_code for path, r in pages.items()} == dict.fromkeys(pages, 200)
            assert person in pages["/live"].text  # the live feed reads the store
            assert "made_up.event" in pages["/plan"].text  # seen but not planned
            board = browser.get("/api/dashboards/acquisition_to_activation").json()
            assert board["insights"], board
            for insight in board["insights"]:
                panel = browser.get(
                    f"/api/dashboards/acquisition_to_activation/insights/{insight['name']}"
                )
                assert panel.status_code == 200, panel.text
    finally:
        server.stop()
