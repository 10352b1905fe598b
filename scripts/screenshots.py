"""Screenshots of every page from a running demo, for the README.

.venv/bin/python scripts/screenshots.py http://127.0.0.1:8000 PERSONAL_API_KEY
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PAGES = {
    "dashboard-acquisition": "/dashboards/acquisition_to_activation",
    "dashboard-chat-health": "/dashboards/chat_health",
    "dashboard-reliability": "/dashboards/reliability",
    "dashboard-attachments": "/dashboards/attachment_demand",
    "dashboard-models": "/dashboards/model_performance",
    "live": "/live",
    "plan": "/plan",
    "alerts": "/alerts",
}


def main() -> None:
    base, key = sys.argv[1], sys.argv[2]
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{base}/login")
        page.fill("input[name=key]", key)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        for name, path in PAGES.items():
            page.goto(base + path)
            if path.startswith("/dashboards"):
                waiting = page.locator('.panel:is(:not([data-loaded]), [data-loaded=""])')
                expect(waiting).to_have_count(0, timeout=120_000)
            page.screenshot(path=str(OUT / f"{name}.png"))
        browser.close()


if __name__ == "__main__":
    main()
