"""Quarantine enforcement: bad events are held back, listed, and replayed once the plan allows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
from click.testing import CliRunner

from eventplan.cli import cli
from tests.conftest import OPENCHAT
from tests.servers import API_KEY, TOKEN, openchat_server


def test_quarantine_holds_back_lists_and_replays(tmp_path: Path) -> None:
    server = openchat_server(tmp_path, "--enforcement", "quarantine")
    person = f"q-{uuid.uuid4()}"
    events = [
        {"event": "chat.attachment_event", "distinct_id": person, "properties": props}
        for props in (
            {
                "app": "openchat-web",
                "chat_id": "c",
                "result": "accepted",
                "file_mime": "image/png",
                "file_size_bytes": 10,
            },
            {
                "app": "openchat-web",
                "chat_id": "c",
                "result": "quarantined",
                "file_mime": "image/png",
                "file_size_bytes": 10,
            },
        )
    ]
    response = httpx.post(
        f"{server.url}/batch/", json={"api_key": TOKEN, "batch": events}, timeout=30
    )
    assert response.status_code == 200
    server.wait_for_count(f"distinct_id = '{person}'", 1)
    server.stop()
    runner = CliRunner()
    listed = runner.invoke(
        cli, ["quarantine", "list", "--db", str(server.db)], env={"COLUMNS": "250"}
    )
    assert listed.exit_code == 0, listed.output
    assert "chat.attachment_event" in listed.output and "not_in_enum" in listed.output
    # Still failing against the same plan: nothing moves.
    same = runner.invoke(
        cli, ["quarantine", "replay", "--db", str(server.db), "--plan", str(OPENCHAT)]
    )
    assert "moved 0 event(s)" in same.output
    # The team adds the value to the plan; replay moves the event into `events`.
    relaxed = tmp_path / "openchat.yaml"
    relaxed.write_text(
        OPENCHAT.read_text()
        .replace("enum: [accepted, rejected]", "enum: [accepted, rejected, quarantined]")
        .replace("version: 1.0.0", "version: 1.0.1", 1)
    )
    moved = runner.invoke(
        cli, ["quarantine", "replay", "--db", str(server.db), "--plan", str(relaxed)]
    )
    assert "moved 1 event(s)" in moved.output, moved.output
    result = runner.invoke(
        cli,
        [
            "sql",
            "--db",
            str(server.db),
            "--json",
            "SELECT properties->>'result', verdict, plan_version FROM events "
            f"WHERE distinct_id = '{person}' ORDER BY 1",
        ],
    )
    # Each says which plan judged it: the replayed one, the plan that let it in.
    assert json.loads(result.output)["results"] == [
        ["accepted", "valid", "1.0.0"],
        ["quarantined", "valid", "1.0.1"],
    ]


def test_sql_reads_the_file_while_the_server_runs(tmp_path: Path) -> None:
    server = openchat_server(tmp_path)
    try:
        person = f"sql-{uuid.uuid4()}"
        httpx.post(
            f"{server.url}/batch/",
            json={
                "api_key": TOKEN,
                "batch": [
                    {
                        "event": "sync.connection_state",
                        "distinct_id": person,
                        "properties": {"state": "connected"},
                    }
                ],
            },
            timeout=30,
        )
        server.wait_for_count(f"distinct_id = '{person}'", 1)
        query = f"SELECT event, verdict FROM events WHERE distinct_id = '{person}'"
        runner = CliRunner()
        refused = runner.invoke(
            cli, ["sql", "--db", str(server.db), query], env={"EVENTPLAN_API_KEY": ""}
        )
        assert refused.exit_code == 1 and "--api-key" in refused.output
        through = runner.invoke(
            cli, ["sql", "--db", str(server.db), "--json", "--api-key", API_KEY, query]
        )
        assert json.loads(through.output)["results"] == [["sync.connection_state", "invalid"]]
        writing = runner.invoke(
            cli, ["sql", "--db", str(server.db), "--api-key", API_KEY, "DROP TABLE events_data"]
        )
        assert writing.exit_code == 1 and "only SELECT" in writing.output
    finally:
        server.stop()
