"""The web UI in real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from posthog import Posthog

from eventplan.plan import load_plan
from tests.conftest import OPENCHAT, require_tool
from tests.servers import API_KEY, TOKEN, RunningServer, openchat_server, simulated_server

DASHBOARDS = [
    "acquisition_to_activation",
    "chat_health",
    "reliability",
    "attachment_demand",
    "model_performance",
]


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = simulated_server(tmp_path_factory.mktemp("ui_server"), 300, 10, 5)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = require_tool("chromium", "chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, ui_server: RunningServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    blocked: list[str] = []  # the UI must work under its own Content Security Policy
    page.on("console", lambda m: blocked.append(m.text) if "Security Policy" in m.text else None)
    page.goto(f"{ui_server.url}/login")
    page.fill("input[name=key]", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{ui_server.url}/")
    yield page
    context.close()
    assert blocked == []


def api(server: RunningServer, path: str) -> Any:
    response = httpx.get(
        f"{server.url}{path}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def panel_totals(page: Page, insight: str) -> dict[str, float]:
    rows = page.locator(f'.panel[data-insight="{insight}"] table.numbers tr[data-series]')
    return {
        row.get_attribute("data-series") or "": float(row.get_attribute("data-total") or 0)
        for row in rows.all()
    }


def wait_loaded(page: Page) -> None:
    """Every panel drawn or failed. Waited for with selectors, not a script: the page's
    Content Security Policy forbids evaluating strings, as it should."""
    # data-loaded is "" while a panel loads, and says what it loaded once drawn.
    waiting = page.locator(
        '.panel:is(:not([data-loaded]), [data-loaded=""]):not(:has(.state.error))'
    )
    expect(waiting).to_have_count(0, timeout=60_000)


def api_totals(data: dict[str, Any]) -> dict[str, float]:
    result = data["result"]
    if data["kind"] == "funnel":
        groups = (
            result["results"] if isinstance(result["results"][0], list) else [result["results"]]
        )
        return {
            s["name"] + (f" - {s['breakdown_label']}" if s.get("breakdown_value") else ""): float(
                s["count"]
            )
            for steps in groups
            for s in steps
        }
    return {r.get("display_label", r["label"]): float(r["count"]) for r in result["results"]}


def test_pages_need_a_login(browser: Browser, ui_server: RunningServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{ui_server.url}/plan")
    assert "/login" in page.url
    page.fill("input[name=key]", "phx_wrong")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "That key is not valid."
    page.fill("input[name=key]", API_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(f"{ui_server.url}/plan")
    assert page.locator("h1").inner_text().startswith("Plan openchat")
    context.close()


@pytest.mark.parametrize("dashboard", DASHBOARDS)
def test_every_chart_shows_what_the_query_api_returns(
    page: Page, ui_server: RunningServer, dashboard: str
) -> None:
    page.goto(f"{ui_server.url}/dashboards/{dashboard}")
    wait_loaded(page)
    assert page.locator(".state.error").count() == 0
    board = api(ui_server, f"/api/dashboards/{dashboard}?date_from=-30d")
    for insight in board["insights"]:
        drawn = panel_totals(page, insight["name"])
        if insight["display"] == "histogram":  # the engine's buckets, every event in one
            assert sorted(drawn.values()) == sorted(b["count"] for b in insight["histogram"])
            assert len(drawn) > 1
            continue
        assert drawn == pytest.approx(api_totals(insight)), insight["name"]
        results = insight["result"]["results"]
        panel = page.locator(f'.panel[data-insight="{insight["name"]}"]')
        if insight["kind"] == "funnel" and results and isinstance(results[0], list):
            # One bar group per breakdown value, not the total funnel alone.
            assert panel.get_attribute("data-datasets") == str(len(results))
        if insight["kind"] == "funnel":  # time to convert: the engine's bins, drawn
            bins = [b["count"] for b in insight["result"]["time_to_convert"]["bins"]]
            drawn_bins = [
                int(b.get_attribute("data-count") or -1) for b in panel.locator(".ttc-bin").all()
            ]
            assert drawn_bins == bins and sum(bins) > 0
        # Read like a product: at most the top values and Other per planned series,
        # a legend entry for each dataset, and no legend taller than its chart.
        if insight["display"] != "histogram":
            datasets = int(panel.get_attribute("data-datasets") or -1)
            assert datasets == int(panel.get_attribute("data-legend-items") or -1) or (
                insight["kind"] == "funnel" and not insight["breakdown"]
            )
            per_series = len(insight["query"].get("series", [None]))
            # each planned series: at most the top values, Other and (none)
            assert datasets <= per_series * (insight["breakdown_limit"] + 2), insight["name"]
            legend = int(panel.get_attribute("data-legend-height") or 0)
            assert legend <= int(panel.get_attribute("data-plot-height") or 0), insight["name"]
    # PostHog's internal markers never show; a value the plan forbids shows as such.
    assert "$$_posthog" not in page.locator("main").inner_text()
    for row in page.locator("table.numbers tr[data-series]").all():
        label = row.get_attribute("data-series") or ""
        assert ("invalid: " in label) == ("invalid" in (row.get_attribute("class") or ""))
        assert page.locator(f'.panel[data-insight="{insight["name"]}"] canvas').count() == 1


def test_changing_the_date_range_requeries(page: Page, ui_server: RunningServer) -> None:
    page.goto(f"{ui_server.url}/dashboards/chat_health")
    wait_loaded(page)
    month = panel_totals(page, "streams_by_status")
    page.select_option("select[name=date_from]", "-24h")
    requeried = page.locator('.panel[data-insight=streams_by_status][data-loaded*="-24h"]')
    expect(requeried).to_have_count(1, timeout=60_000)
    day = panel_totals(page, "streams_by_status")
    expected = api(
        ui_server, "/api/dashboards/chat_health/insights/streams_by_status?date_from=-24h"
    )
    assert day == pytest.approx(api_totals(expected))
    assert day != month


def test_the_top_n_picker_redraws_every_breakdown_with_n_values_and_other(
    page: Page, ui_server: RunningServer
) -> None:
    page.goto(f"{ui_server.url}/dashboards/model_performance")
    wait_loaded(page)
    page.select_option("select[name=top]", "3")
    requeried = page.locator('.panel[data-loaded*="top=3"]')
    expect(requeried).to_have_count(page.locator(".panel").count(), timeout=60_000)
    board = api(ui_server, "/api/dashboards/model_performance?date_from=-30d&top=3")
    for insight in board["insights"]:
        drawn = panel_totals(page, insight["name"])
        assert drawn == pytest.approx(api_totals(insight)), insight["name"]
        per_series = len(insight["query"]["series"])
        assert len(drawn) <= 4 * per_series  # three values and Other, for each series
        assert any(label.endswith("Other") for label in drawn), insight["name"]


def test_a_warning_counts_forbidden_values_and_links_to_the_events_behind_it(
    page: Page, ui_server: RunningServer
) -> None:
    page.goto(f"{ui_server.url}/dashboards/chat_health")
    wait_loaded(page)
    panel = page.locator(".panel[data-insight=streams_by_status]")
    data = api(ui_server, "/api/dashboards/chat_health/insights/streams_by_status?date_from=-30d")
    [forbidden] = [w for w in data["result"]["warnings"] if w["code"] == "invalid_breakdown"]
    invalid_total = int(
        sum(r["count"] for r in data["result"]["results"] if r.get("breakdown_kind") == "invalid")
    )
    counted = f"{invalid_total:,} events have" if invalid_total != 1 else "1 event has"
    assert forbidden["message"].startswith(f"{counted} a status the plan forbids")
    shown = panel.locator(".warning.invalid_breakdown")
    expect(shown).to_contain_text(forbidden["message"])
    shown.locator("a.live-link").click()
    page.wait_for_url("**/live?event=chat_message_stream&verdict=problems**")
    assert page.locator("input[name=event]").input_value() == "chat_message_stream"
    assert page.locator("input[name=verdict]").is_checked()
    rows = page.locator("#live tbody tr")
    assert rows.count() > 0
    for row in rows.all():
        assert row.locator("td.captured").first.inner_text().startswith("chat_message_stream")
        assert row.locator(".verdict").inner_text() != "valid"


def test_bots_are_left_out_until_the_toggle_brings_them_in(
    page: Page, ui_server: RunningServer
) -> None:
    """The simulated crawler and uptime check visit the landing page; the landing
    visits count people only until "Include bots" is ticked, as the API counts."""
    page.goto(f"{ui_server.url}/dashboards/acquisition_to_activation")
    wait_loaded(page)
    people = sum(panel_totals(page, "landing_visits").values())
    page.check("input[name=bots]")
    with_bots = page.locator('.panel[data-insight=landing_visits][data-loaded*="bots=1"]')
    expect(with_bots).to_have_count(1, timeout=60_000)
    everyone = sum(panel_totals(page, "landing_visits").values())
    path = "/api/dashboards/acquisition_to_activation/insights/landing_visits?date_from=-30d"
    assert people == sum(api_totals(api(ui_server, path)).values())
    assert everyone == sum(api_totals(api(ui_server, path + "&bots=1")).values())
    [[bots]] = ui_server.sql(
        "SELECT count(*) FROM events WHERE event = 'marketing.visit_landing' "
        """AND properties->>'$."$eventplan_bot"' = 'true' """
        "AND timestamp >= date_trunc('day', now() - INTERVAL 30 DAY)"
    )
    assert everyone - people == bots > 0


def test_live_feed_shows_captured_events_with_their_verdict(
    page: Page, ui_server: RunningServer
) -> None:
    page.goto(f"{ui_server.url}/live")
    expect(page.locator("#live-status")).to_have_text("live")
    person = f"live-{uuid.uuid4()}"
    client = Posthog(TOKEN, host=ui_server.url, sync_mode=True)
    client.capture(
        "chat.rate_limited",
        distinct_id=person,
        properties={"app": "openchat-server", "chat_id": "c", "limit": 20, "window_ms": 60000},
    )
    client.capture(
        "chat.rate_limited",
        distinct_id=person,
        properties={"app": "openchat-server", "chat_id": "c", "limit": "twenty"},
    )
    rows = page.locator("#live tbody tr", has_text=person)
    rows.nth(1).wait_for(timeout=15_000)
    verdicts = sorted(r.locator(".verdict").inner_text() for r in rows.all())
    assert verdicts == ["invalid", "valid"]
    versions = {r.locator(".plan-version").inner_text() for r in rows.all()}
    assert versions == {load_plan(OPENCHAT).version}  # the plan that judged them
    invalid = page.locator("#live tbody tr.invalid", has_text=person)
    assert "limit: expected integer" in invalid.inner_text()
    assert "window_ms: required" in invalid.inner_text()
    marked = page.locator("#live tbody tr", has_text=person).locator(".bot")
    assert marked.count() == 0  # people's events carry no bot mark
    crawler = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    client.capture(
        "chat.rate_limited",
        distinct_id=person,
        properties={"app": "openchat-server", "chat_id": "c", "$raw_user_agent": crawler},
    )
    expect(marked).to_have_text("bot: bingbot", timeout=15_000)


def test_hostile_text_on_the_live_page_is_isolated_and_cut(
    page: Page, ui_server: RunningServer
) -> None:
    """An event name with a right-to-left override cannot reorder the text around it,
    and a 60,000-character id does not make the page 800,000 px wide; a click shows it."""
    page.goto(f"{ui_server.url}/live")
    expect(page.locator("#live-status")).to_have_text("live")
    before = page.evaluate("() => document.documentElement.scrollWidth")
    person = "long-" + "x" * 60_000
    Posthog(TOKEN, host=ui_server.url, sync_mode=True).capture(
        "evil\u202egnp.exe", distinct_id=person, properties={"app": "openchat-web"}
    )
    row = page.locator("#live tbody tr", has_text="long-xxxx").first
    row.wait_for(timeout=15_000)
    event_cell, id_cell = row.locator("td.captured").all()
    assert event_cell.evaluate("cell => getComputedStyle(cell).unicodeBidi") == "isolate"
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= before  # nothing pushed the page sideways
    cut = id_cell.bounding_box()
    assert cut is not None and cut["width"] < 1400
    id_cell.click()
    assert "whole" in (id_cell.get_attribute("class") or "")
    whole = id_cell.bounding_box()
    assert whole is not None and whole["height"] > 2 * cut["height"]  # all of it, wrapped


def test_plan_coverage_notices_a_new_event_name(page: Page, ui_server: RunningServer) -> None:
    page.goto(f"{ui_server.url}/plan")
    assert "chat.reaction_added" not in page.locator("#unplanned").inner_text()
    assert page.locator('#plan-events tr[data-event="chat.created"] .n7').inner_text() != "0"
    Posthog(TOKEN, host=ui_server.url, sync_mode=True).capture(
        "chat.reaction_added", distinct_id="someone", properties={"emoji": "+1"}
    )
    deadline = 30
    for _ in range(deadline * 2):
        page.reload()
        if "chat.reaction_added" in page.locator("#unplanned").inner_text():
            break
        page.wait_for_timeout(500)
    assert "chat.reaction_added" in page.locator("#unplanned").inner_text()


def test_alerts_page_and_logout(page: Page, ui_server: RunningServer) -> None:
    page.goto(f"{ui_server.url}/alerts")
    names = page.locator("table.alerts tbody td:first-child").all_inner_texts()
    assert any(n.startswith("fallback_storage_share") for n in names)
    page.click("form.logout button")
    page.wait_for_url(f"{ui_server.url}/login")
    page.goto(f"{ui_server.url}/alerts")
    assert "/login" in page.url


def test_a_forged_form_is_refused(ui_server: RunningServer) -> None:
    with httpx.Client(base_url=ui_server.url) as client:
        client.get("/login")
        response = client.post("/login", data={"csrf": "forged", "key": API_KEY})
    assert response.status_code == 401 and "expired" in response.text


def test_a_panel_downloads_as_csv_and_no_cell_can_run_as_a_formula(
    browser: Browser, tmp_path: Path
) -> None:
    # Breakdown values come from anyone with the public project token; a spreadsheet
    # opening the download must read them as text.
    server = openchat_server(tmp_path, "--alert-interval", "0")
    try:
        values = ['=HYPERLINK("http://evil.example","x")', "@SUM(A1)", "-3"]
        batch = [
            {
                "event": "chat_message_stream",
                "distinct_id": f"csv-{number}",
                "properties": {"model_id": value, "characters": 10 + number},
            }
            for number, value in enumerate(values)
        ]
        sent = httpx.post(f"{server.url}/batch/", json={"api_key": TOKEN, "batch": batch})
        assert sent.status_code == 200
        server.wait_for_count("distinct_id LIKE 'csv-%'", len(values))
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        page.goto(f"{server.url}/login")
        page.fill("input[name=key]", API_KEY)
        page.click("button[type=submit]")
        page.goto(f"{server.url}/dashboards/model_performance")
        wait_loaded(page)
        with page.expect_download() as download:
            page.click('.panel[data-insight="characters_by_model"] button.csv')
        lines = Path(download.value.path()).read_text().splitlines()
        # Today every label starts with its series' name; the cell rule is checked on
        # the values themselves, in the page's own function.
        cells = page.evaluate(
            "(texts) => texts.map(csvCell)", ["=1+1", "+1+1", "@A1", "-3", "1,200", "12.5%", "-x"]
        )
        context.close()
    finally:
        server.stop()
    header, *rows = csv.reader(lines)
    assert header == ["series", "total", "average"]
    assert sorted(row[:2] for row in rows) == [
        ["chat_message_stream - -3", "12"],
        ['chat_message_stream - =HYPERLINK("http://evil.example","x")', "10"],
        ["chat_message_stream - @SUM(A1)", "11"],
    ]
    assert cells == [
        '"\'=1+1"',
        '"\'+1+1"',
        '"\'@A1"',
        '"-3"',
        '"1,200"',
        '"12.5%"',
        '"\'-x"',
    ]


def test_a_page_that_fails_shows_an_error_page_in_the_browser(
    page: Page, ui_server: RunningServer
) -> None:
    response = page.goto(f"{ui_server.url}/plan?project=no-such-project")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "Not found"
    error = page.locator("p.error")
    assert "no project 'no-such-project'" in error.inner_text()
    assert error.get_attribute("data-code") == "unknown_project"
    assert page.locator("form.logout").count() == 1  # still the app, logged in


def test_a_page_that_fails_answers_in_the_one_error_shape(ui_server: RunningServer) -> None:
    with httpx.Client(base_url=ui_server.url) as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post("/login", data={"csrf": csrf, "key": API_KEY}).status_code < 400
        response = client.get("/plan?project=no-such-project")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_project"
    assert "no project 'no-such-project'" in response.json()["detail"]
