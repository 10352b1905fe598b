"""What `eventplan status` says of real-shaped code: each finding `path:line:col: code:
message`, from a parser (tree-sitter, Python's ast), with wrappers found, not named."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from eventplan.cli import cli
from eventplan.codegen.status import scan
from eventplan.plan import load_plan
from tests.conftest import OPENCHAT

SERVER_WRAPPER = """
import { PostHog } from "posthog-node";
const client = new PostHog(process.env.POSTHOG_KEY!);
export function captureServerEvent(event: string, distinctId: string, properties: Record<string, unknown>) {
  client.capture({ distinctId, event, properties });
}
"""
ROUTER = """
import { captureServerEvent } from "../../../lib/posthog-server";
import { STREAM } from "./names";
export async function POST(request: Request) {
  captureServerEvent(STREAM, userId, { chatId, modelId, durationMs: 12 });
  captureServerEvent("chat.created", userId, { chat_id: null, source: "server_router", storage_backend: "postgres" });
  captureServerEvent("chat.rate_limited", userId, { ...limits, chat_id: "c", limit: "twenty" });
}
"""
NAMES = 'export const STREAM = "chat_message_stream";\n'
CLIENT = """
"use client";
import posthog from "posthog-js";
export function KeyButton({ action }: { action: string }) {
  posthog.capture(`openrouter.key_${action}`);
  posthog.capture(eventFor(action));
  posthog.capture("$pageview", {});
  return null;
}
"""
PYTHON = """
from posthog import Posthog

posthog = Posthog("phc_key")

def track(name, user, props):
    posthog.capture(name, distinct_id=user, properties=props)

def handler(user):
    track("chat_mesage_stream", user, {"chat_id": "c"})
"""


def tree(root: Path) -> Path:
    files = {
        "apps/web/src/lib/posthog-server.ts": SERVER_WRAPPER,
        "apps/web/src/app/api/chat/route.ts": ROUTER,
        "apps/web/src/app/api/chat/names.ts": NAMES,
        "apps/web/src/components/key-button.tsx": CLIENT,
        "apps/server/handlers.py": PYTHON,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def findings(root: Path) -> set[tuple[str, int, str, str]]:
    status = scan(root, load_plan(OPENCHAT))
    return {(f.path, f.line, f.code, f.message) for f in status.findings}


def test_a_three_argument_server_wrapper_is_followed_to_its_properties(tmp_path: Path) -> None:
    found = findings(tree(tmp_path))
    route = "apps/web/src/app/api/chat/route.ts"
    for key in ("chatId", "modelId", "durationMs"):  # camelCase sends through a constant
        message = f"chat_message_stream sends {key}, which the plan does not define"
        assert (route, 5, "unplanned_property", message) in found
    messages = {m for path, line, _, m in found if path == route and line == 6}
    assert any('chat.created: source is "server_router"' in m for m in messages)
    assert any(m.startswith("chat.created: chat_id is null") for m in messages)
    # A spread object may carry the rest: no "missing" claim; its literals still count.
    rate = {(code, m) for path, line, code, m in found if path == route and line == 7}
    assert not any(code == "missing_required" for code, _ in rate)
    assert any(code == "bad_value" and 'limit is "twenty"' in m for code, m in rate)


def test_template_names_dynamic_names_and_missing_required_properties(tmp_path: Path) -> None:
    root = tree(tmp_path)
    status = scan(root, load_plan(OPENCHAT))
    button = "apps/web/src/components/key-button.tsx"
    matched = sorted(c.event for c in status.calls if c.path == button and c.line == 5)
    assert matched == [
        "openrouter.key_prompt_shown",
        "openrouter.key_removed",
        "openrouter.key_saved",
    ]
    codes = {(f.line, f.code) for f in status.findings if f.path == button}
    assert (6, "dynamic_event") in codes
    missing = {f.message for f in status.findings if f.path == button and f.line == 7}
    plan = load_plan(OPENCHAT)
    required = {n for n, p in plan.events["$pageview"].properties.items() if p.required}
    assert missing == {f"$pageview does not send {n}, which the plan requires" for n in required}


def test_a_python_wrapper_is_found_and_a_misspelt_name_gets_its_suggestion(tmp_path: Path) -> None:
    found = findings(tree(tmp_path))
    assert (
        "apps/server/handlers.py",
        10,
        "unplanned_event",
        "unplanned event chat_mesage_stream (did you mean chat_message_stream?)",
    ) in found


def test_the_command_prints_each_finding_as_lint_does_and_in_json(tmp_path: Path) -> None:
    root = tree(tmp_path)
    text = CliRunner().invoke(cli, ["status", str(OPENCHAT), "--code", str(root)])
    assert text.exit_code == 1
    assert (
        "apps/server/handlers.py:10:5: unplanned_event: unplanned event chat_mesage_stream "
        "(did you mean chat_message_stream?)"
    ) in text.output
    as_json = json.loads(
        CliRunner().invoke(cli, ["status", str(OPENCHAT), "--code", str(root), "--json"]).output
    )
    assert {f["code"] for f in as_json["findings"]} == {
        "unplanned_property",
        "bad_value",
        "dynamic_event",
        "missing_required",
        "unplanned_event",
    }
