"""The unchanged posthog-js (from npm) in headless Chromium, pointed at eventplan."""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool
from tests.servers import TOKEN, RunningServer, free_port

# posthog-js drops events from user agents that look like bots, headless Chromium's
# own included, and when navigator.webdriver is set; so the browser gets an ordinary
# user agent and no automation flag (the page's init options are untouched).
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)

PAGE = """<!doctype html>
<html><head><title>OpenChat</title><script src="/posthog.js"></script></head>
<body><h1>OpenChat</h1><script>
  posthog.init({token}, {{ api_host: {api_host}, person_profiles: "always" }});
  posthog.register({{ app: "openchat-web", ui_theme: "dark", workspace_id: {run} }});
  posthog.capture("marketing.visit_landing", {{
    referrer_url: "direct", referrer_domain: "direct", entry_path: "/", session_is_guest: true
  }});
  posthog.identify({member});
  posthog.group("workspace", "ws-js");
  posthog.capture("marketing.cta_clicked", {{ cta_id: "hero_try_openchat", section: "hero" }});
  posthog.capture("marketing.cta_clicked", {{ cta_id: "hero_signup", section: "hero" }});
</script></body></html>
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A static site on its own loopback port serving the page and posthog-js."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "posthog.js").write_bytes(
        (ROOT / "node_modules" / "posthog-js" / "dist" / "array.full.js").read_bytes()
    )
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()


def test_posthog_js_events_arrive(
    server: RunningServer, site: tuple[str, Path], tmp_path: Path
) -> None:
    chromium = require_tool("chromium", "chromium")
    base, root = site
    run, member = f"run-{uuid.uuid4()}", f"js-member-{uuid.uuid4()}"
    (root / "index.html").write_text(
        PAGE.format(
            token=json.dumps(TOKEN),
            api_host=json.dumps(server.url),
            run=json.dumps(run),
            member=json.dumps(member),
        )
    )
    browser = subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-blink-features=AutomationControlled",
            f"--user-agent={USER_AGENT}",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--remote-debugging-port=0",
            f"{base}/index.html?utm_source=newsletter&utm_medium=email",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        where = f"properties->>'workspace_id' = '{run}'"
        server.wait_for_count(f"{where} AND event = 'marketing.cta_clicked'", 2, timeout=90)
        server.wait_for_count(f"{where} AND event IN ('$pageview', '$identify')", 2, timeout=30)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
    rows = server.sql(
        "SELECT event, distinct_id, person_id, verdict, properties, violations FROM events "
        f"WHERE {where} ORDER BY timestamp"
    )
    by_event: dict[str, list[list[object]]] = {}
    for row in rows:
        by_event.setdefault(str(row[0]), []).append(row)
    assert {"$pageview", "marketing.visit_landing", "$identify", "marketing.cta_clicked"} <= set(
        by_event
    )
    # The guest's events and the identified member's are one person.
    assert len({row[2] for row in rows}) == 1
    assert {row[1] for row in by_event["marketing.cta_clicked"]} == {member}
    pageview = json.loads(str(by_event["$pageview"][0][4]))
    assert pageview["$lib"] == "web"
    assert pageview["entry_path"] == "/index.html"
    assert pageview["entry_query"] == "utm_source=newsletter&utm_medium=email"
    assert pageview["referrer_domain"] == "direct"
    assert by_event["$pageview"][0][3] == "valid"
    verdicts = sorted(str(row[3]) for row in by_event["marketing.cta_clicked"])
    assert verdicts == ["invalid", "valid"]  # hero_signup is not a planned cta_id
    clicked = json.loads(str(by_event["marketing.cta_clicked"][0][4]))
    assert clicked["$groups"] == {"workspace": "ws-js"}
    assert "token" in clicked and "$ip" not in clicked
