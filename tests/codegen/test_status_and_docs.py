"""`eventplan status` on a fixture tree shaped like the seed's monorepo; `eventplan docs`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from eventplan.cli import cli
from tests.conftest import OPENCHAT

FILES = {
    "apps/web/src/components/hero-section.tsx": """
export function Hero() {
  useEffect(() => { posthog.capture("marketing.visit_landing", { referrer_url: document.referrer || "direct",
    referrer_domain, entry_path: location.pathname, session_is_guest: true }); }, []);
  return <button onClick={() => posthog.capture('marketing.cta_clicked', { cta_id: "hero_try_openchat", section: "hero", colour: "blue" })} />;
}
""",
    "apps/web/src/components/chat-room.tsx": """
const send = () => captureClientEvent("chat_message_submited", { chat_id, model_id, characters });
analytics.chatCreated({ chat_id: id, source: "sidebar_button", storage_backend });
""",
    "apps/server/src/routers/index.ts": """
client.capture({ distinctId: userId, event: "workspace.fallback_storage_used", properties: { operation: "list" } });
""",
    "apps/web/src/lib/posthog-server.py": """
posthog.capture("chat_message_stream", distinct_id=user, properties={"chat_id": chat_id})
""",
    "node_modules/ignored/index.js": 'posthog.capture("nonsense.event")',
}


def fixture(root: Path) -> Path:
    for relative, text in FILES.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_status_finds_missing_misspelt_and_unplanned(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["status", str(OPENCHAT), "--code", str(fixture(tmp_path)), "--json"]
    )
    assert result.exit_code == 1
    report = json.loads(result.output)
    sent = {c["event"] for c in report["calls"]}
    assert {
        "marketing.visit_landing",
        "marketing.cta_clicked",
        "chat.created",
        "workspace.fallback_storage_used",
        "chat_message_stream",
    } <= sent
    assert "nonsense.event" not in sent  # node_modules is not the app's code
    [misspelt] = report["unplanned"]
    assert (misspelt["event"], misspelt["did_you_mean"], misspelt["path"], misspelt["line"]) == (
        "chat_message_submited",
        "chat_message_submitted",
        "apps/web/src/components/chat-room.tsx",
        2,
    )
    assert [(u["event"], u["property"]) for u in report["unplanned_properties"]] == [
        ("marketing.cta_clicked", "colour")
    ]
    assert "openrouter.key_saved" in report["never_sent"]
    assert "marketing.visit_landing" not in report["never_sent"]


def test_status_skips_what_is_not_a_readable_file(tmp_path: Path) -> None:
    root = fixture(tmp_path / "repo")
    odd = root / "apps" / "web" / "src"
    (odd / "dead-link.ts").symlink_to(tmp_path / "gone.ts")
    (odd / "folder.tsx").mkdir()
    os.mkfifo(odd / "pipe.ts")  # reading a fifo would wait for a writer for ever
    # In a subprocess with a timeout, so that a regression fails rather than hangs.
    result = subprocess.run(
        [sys.executable, "-m", "eventplan", "status", str(OPENCHAT), "--code", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr  # the fixture's own problems
    report = json.loads(result.stdout)
    assert {c["path"] for c in report["calls"]} == {
        relative for relative in FILES if not relative.startswith("node_modules")
    }
    assert report["unreadable"] == []


def test_docs_writes_a_searchable_catalogue(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["docs", str(OPENCHAT), "-o", str(tmp_path / "site")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert 'id="workspace.fallback_storage_used"' in page
    assert "apps/server/src/routers/index.ts" in page and "Model Performance Report" in page
    assert "fallback_storage_share" in page and 'id="search"' in page
