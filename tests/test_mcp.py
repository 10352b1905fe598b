"""`eventplan mcp`: a coding agent's view of the plan, through the official MCP SDK's own
client talking to the real command over stdio."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
from click.testing import CliRunner
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from eventplan.cli import cli
from tests.conftest import OPENCHAT


async def ask(
    args: list[str], calls: list[tuple[str, dict[str, Any]]]
) -> tuple[set[str], list[Any]]:
    server = StdioServerParameters(command=sys.executable, args=["-m", "eventplan", "mcp", *args])
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {tool.name for tool in (await session.list_tools()).tools}
        answers = []
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            assert not result.is_error, result
            answers.append(json.loads(result.content[0].text))  # type: ignore[union-attr]
        return tools, answers


def test_an_agent_looks_up_an_event_validates_a_payload_and_runs_status(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "hero.tsx").write_text(
        'import posthog from "posthog-js";\nposthog.capture("marketing.cta_clickd", {});\n'
    )
    tools, (event, valid, invalid, status) = anyio.run(
        ask,
        [str(OPENCHAT)],
        [
            ("lookup_event", {"name": "chat.created"}),
            (
                "validate_payload",
                {
                    "event": "chat.rate_limited",
                    "properties": {
                        "app": "openchat-server",
                        "chat_id": "c",
                        "limit": 20,
                        "window_ms": 60000,
                    },
                },
            ),
            (
                "validate_payload",
                {
                    "event": "chat.rate_limited",
                    "properties": {"app": "openchat-server", "chat_id": "c", "limit": "twenty"},
                },
            ),
            ("status", {"folder": str(code)}),
        ],
    )
    assert tools == {"lookup_event", "validate_payload", "status"}  # no store: no traffic tools
    assert event["found"] and event["properties"]["source"]["enum"] == ["sidebar_button"]
    assert valid == {"verdict": "valid", "violations": []}
    assert invalid["verdict"] == "invalid"
    assert {v["property"] for v in invalid["violations"]} == {"limit", "window_ms"}
    [finding] = [f for f in status["findings"] if f["code"] == "unplanned_event"]
    assert "did you mean marketing.cta_clicked?" in finding["message"]


def test_with_a_store_the_agent_reads_coverage_and_alerts(tmp_path: Path) -> None:
    runner = CliRunner()
    events, db = tmp_path / "events.jsonl", tmp_path / "events.duckdb"
    runner.invoke(cli, ["simulate", "--users", "40", "--days", "2", "--out", str(events)])
    runner.invoke(cli, ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)])
    tools, (coverage,) = anyio.run(ask, [str(OPENCHAT), "--db", str(db)], [("coverage", {})])
    assert {"coverage", "alerts", "quarantine"} <= tools
    # The same report `eventplan coverage --json` prints.
    printed = json.loads(
        runner.invoke(cli, ["coverage", "--db", str(db), "--plan", str(OPENCHAT), "--json"]).output
    )
    assert {e["event"]: e["total"] for e in coverage["events"]} == {
        e["event"]: e["total"] for e in printed["events"]
    }
