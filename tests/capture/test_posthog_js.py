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
    browser = open_in_chromium(
        chromium, f"{base}/index.html?utm_source=newsletter&utm_medium=email", tmp_path, USER_AGENT
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


def open_in_chromium(
    chromium: str, url: str, tmp_path: Path, agent: str
) -> subprocess.Popen[bytes]:
    """Headless Chromium on `url` with the user agent `agent` and no automation flag."""
    return subprocess.Popen(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-blink-features=AutomationControlled",
            f"--user-agent={agent}",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--remote-debugging-port=0",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BOT_PAGE = """<!doctype html>
<html><head><title>OpenChat</title><script src="/posthog.js"></script></head>
<body><script>
  posthog.init({token}, {{ api_host: {api_host}, opt_out_useragent_filter: {opt_out} }});
  posthog.register({{ app: "openchat-web", workspace_id: {run} }});
  posthog.capture("marketing.cta_clicked", {{ cta_id: "hero_try_openchat", section: "hero" }});
</script></body></html>
"""


@pytest.mark.parametrize(
    ("agent", "opt_out", "bot"),
    [
        # A crawler posthog-js knows: sent only with opt_out_useragent_filter, and
        # then marked by posthog-js itself ($browser_type: "bot").
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            True,
            "Googlebot",
        ),
        # An uptime check in a real Chrome that posthog-js does not know: sent as a
        # person's, and told apart here by the crawler list.
        (USER_AGENT + " Checkly/1.0 (https://www.checklyhq.com)", False, "Checkly"),
    ],
    ids=["known-to-posthog-js", "unknown-to-posthog-js"],
)
def test_a_bots_events_are_labelled_at_capture(
    server: RunningServer,
    site: tuple[str, Path],
    tmp_path: Path,
    agent: str,
    opt_out: bool,
    bot: str,
) -> None:
    chromium = require_tool("chromium", "chromium")
    base, root = site
    run = f"bot-{uuid.uuid4()}"
    (root / "bot.html").write_text(
        BOT_PAGE.format(
            token=json.dumps(TOKEN),
            api_host=json.dumps(server.url),
            opt_out=json.dumps(opt_out),
            run=json.dumps(run),
        )
    )
    browser = open_in_chromium(chromium, f"{base}/bot.html", tmp_path, agent)
    try:
        where = f"properties->>'workspace_id' = '{run}'"
        server.wait_for_count(f"{where} AND event = 'marketing.cta_clicked'", 1, timeout=90)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
    rows = server.sql(f"SELECT properties FROM events WHERE {where}")
    labels = {
        (p.get("$eventplan_bot"), p.get("$eventplan_bot_name"))
        for p in (json.loads(row[0]) for row in rows)
    }
    assert labels == {(True, bot)}
    # The query API leaves bots out: over this run's clicks, a trend counts none.
    query = {
        "kind": "TrendsQuery",
        "series": [
            {
                "kind": "EventsNode",
                "event": "marketing.cta_clicked",
                "properties": [{"key": "workspace_id", "value": run, "operator": "exact"}],
            }
        ],
        "dateRange": {"date_from": "-1d"},
    }
    answer = server.api_post("/api/projects/1/query/", {"query": query})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["count"] == 0 < len(rows)
