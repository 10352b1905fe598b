"""What `eventplan status` says of real-shaped code: each finding `path:line:col: code:
message`, from a parser (tree-sitter, Python's ast), with wrappers found, not named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from eventplan.capture.judge import Judge
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
  posthog.capture("chat.rate_limited", { chat_id: "c", limit: 20, window_ms: 1000 });
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
        # the plan's trigger for the key events, which sends none of them now
        "apps/web/src/components/openrouter-link-modal.tsx": "export const Modal = () => null;\n",
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


def test_an_event_from_the_wrong_surface_and_a_trigger_that_moved(tmp_path: Path) -> None:
    status = scan(tree(tmp_path), load_plan(OPENCHAT))
    button = "apps/web/src/components/key-button.tsx"
    [wrong] = [f for f in status.findings if f.code == "wrong_surface"]
    assert (wrong.path, wrong.line, wrong.message) == (
        button,
        8,
        'chat.rate_limited is sent from web code (a "use client" module); '
        "the plan sends it from server",
    )
    moved = {(f.event, f.severity) for f in status.findings if f.code == "trigger_moved"}
    # Planned in openrouter-link-modal.tsx, which is in the tree and sends neither.
    assert moved == {
        ("openrouter.key_prompt_shown", "warning"),
        ("openrouter.key_saved", "warning"),
    }


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
        "wrong_surface",
        "trigger_moved",
    }


def test_the_plan_names_a_wrapper_status_cannot_see_and_maps_folders_to_surfaces(
    tmp_path: Path, write_plan: Callable[[str], Path]
) -> None:
    plan = write_plan(
        """
plan: extension
version: "1"
events:
  page.opened:
    surfaces: [extension]
    properties:
      tab: {type: string, required: true}
code:
  surfaces: {"ext/*": extension, "lib/*": web}
  wrappers:
    sendEvent: {event: 1, properties: 2}
"""
    )
    root = tmp_path / "repo"
    for folder, tab in (("ext", '"home"'), ("lib", "3")):
        (root / folder).mkdir(parents=True)
        (root / folder / "send.ts").write_text(
            f'import {{ sendEvent }} from "some-sdk";\nsendEvent(ctx, "page.opened", {{ tab: {tab} }});\n'
        )
    status = scan(root, load_plan(plan))
    assert [(c.path, c.event) for c in status.calls] == [
        ("ext/send.ts", "page.opened"),
        ("lib/send.ts", "page.opened"),
    ]
    assert {(f.path, f.code) for f in status.findings} == {
        ("lib/send.ts", "bad_value"),
        ("lib/send.ts", "wrong_surface"),
    }


def test_sarif_carries_each_finding_for_code_scanning(tmp_path: Path) -> None:
    root = tree(tmp_path)
    out = CliRunner().invoke(cli, ["status", str(OPENCHAT), "--code", str(root), "--sarif"])
    assert out.exit_code == 1
    report = json.loads(out.output)
    assert report["version"] == "2.1.0"
    [run] = report["runs"]
    rules = {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    status = scan(root, load_plan(OPENCHAT))
    assert len(run["results"]) == len(status.findings)
    for result, found in zip(run["results"], status.findings, strict=True):
        assert result["ruleId"] in rules and result["level"] == found.severity
        region = result["locations"][0]["physicalLocation"]["region"]
        assert (region["startLine"], region["startColumn"]) == (found.line, found.column)


def test_with_traffic_the_code_is_joined_with_what_arrived(tmp_path: Path) -> None:
    runner = CliRunner()
    events, db = tmp_path / "events.jsonl", tmp_path / "events.duckdb"
    runner.invoke(cli, ["simulate", "--users", "80", "--days", "3", "--out", str(events)])
    runner.invoke(cli, ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)])
    root = tree(tmp_path / "repo")
    args = ["status", str(OPENCHAT), "--code", str(root), "--db", str(db), "--days", "30"]
    traffic = json.loads(runner.invoke(cli, [*args, "--json"]).output)["traffic"]
    # By hand, from the file the store was loaded from (people's events: no bots).
    arrived: dict[str, list[dict[str, Any]]] = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if "$raw_user_agent" not in event["properties"]:
            arrived.setdefault(event["event"], []).append(event)
    judge = Judge(load_plan(OPENCHAT))
    assert "chat_mesage_stream" in traffic["sent_never_seen"]  # the typo never arrives
    not_in_code = {e["event"]: e["seen"] for e in traffic["seen_not_in_code"]}
    assert not_in_code["dashboard.entered"] == len(arrived["dashboard.entered"])
    [site] = [
        c for c in traffic["per_call"] if c["line"] == 5 and c["event"] == "chat_message_stream"
    ]
    streams = arrived["chat_message_stream"]
    broken = [judge.check(e) for e in streams if judge.check(e).verdict != "valid"]
    assert (site["seen"], site["invalid"]) == (len(streams), len(broken))
    if broken:  # the violation most broken streams have
        tally: dict[str, int] = {}
        for verdict in broken:
            for v in verdict.violations:
                if v.severity == "error":
                    key = f"{v.code} {v.property or ''}".strip()
                    tally[key] = tally.get(key, 0) + 1
        assert site["top_violation"] == max(tally, key=lambda k: (tally[k], k))
    text = runner.invoke(cli, args).output
    assert "sent in code, not seen in 30 days: chat_mesage_stream" in text


def test_a_wrapper_taking_one_object_is_followed_through_its_destructured_fields(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "src" / "lib"
    lib.mkdir(parents=True)
    (lib / "analytics.ts").write_text(
        'import { PostHog } from "posthog-node";\n'
        "const client = new PostHog(key);\n"
        "export async function captureServerEvent({ event, distinctId, properties: props }: Args) {\n"
        "  client.capture({ distinctId, event, properties: { ...props, app: 'openchat-server' } });\n"
        "}\n"
    )
    (lib / "route.ts").write_text(
        'import { captureServerEvent } from "./analytics";\n'
        "await captureServerEvent({ event: 'chat.created', distinctId: u, "
        "properties: { chat_id: 'c', source: 'server_router', storage_backend: 'postgres' } });\n"
    )
    status = scan(tmp_path, load_plan(OPENCHAT))
    assert [(c.path, c.event) for c in status.calls] == [("src/lib/route.ts", "chat.created")]
    [bad] = [f for f in status.findings if f.code == "bad_value"]
    assert bad.message.startswith('chat.created: source is "server_router"')


def test_a_tsconfig_alias_and_a_client_built_by_a_getter_are_followed(tmp_path: Path) -> None:
    (tmp_path / "tsconfig.json").write_text(
        "{\n  // comments and trailing commas, as tsconfig allows\n"
        '  "compilerOptions": { "baseUrl": ".", "paths": { "@/*": ["./src/*"], }, },\n}\n'
    )
    (tmp_path / "src" / "lib").mkdir(parents=True)
    (tmp_path / "src" / "lib" / "ph.ts").write_text(
        'import { PostHog } from "posthog-node";\n'
        "let client: PostHog | null = null;\n"
        "function getClient(): PostHog {\n"
        "  if (!client) { client = new PostHog(key); }\n"
        "  return client;\n"
        "}\n"
        "export function track(user: string, event: string, props?: Record<string, unknown>) {\n"
        "  getClient().capture({ distinctId: user, event, properties: props });\n"
        "}\n"
    )
    (tmp_path / "src" / "app").mkdir()
    (tmp_path / "src" / "app" / "page.tsx").write_text(
        'import { track } from "@/lib/ph";\ntrack(id, "chat.created", { chat_id: "c" });\n'
    )
    status = scan(tmp_path, load_plan(OPENCHAT))
    assert [(c.path, c.line, c.event, c.via) for c in status.calls] == [
        ("src/app/page.tsx", 2, "chat.created", "track")
    ]
