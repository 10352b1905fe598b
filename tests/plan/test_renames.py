"""Renames that keep history: `renamed_from:` on an event or a property.

A team that already tracks `chat_created` with `chatId` adopts the plan's
`chat.created` with `chat_id`. Events sent under the old names (by code still
deployed) are stored under the new ones with the names sent kept; events stored
before the rename stay as they are; every insight and coverage figure counts both as
the new; `diff` calls the rename non-breaking, and `status` says what the code should
send now."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from eventplan.codegen.status import scan
from eventplan.plan import load_plan
from eventplan.project import Project
from eventplan.query.model import DateRange, Series, TrendsQuery
from eventplan.store import open_store
from tests.conftest import BACKENDS, store_url

OLD = """
plan: chats
version: "1"
naming: {legacy_events: [chat_created], legacy_properties: [chatId]}
events:
  chat_created:
    properties:
      chatId: {type: string, required: true}
"""
NEW = """
plan: chats
version: "2"
events:
  chat.created:
    renamed_from: [chat_created]
    properties:
      chat_id: {type: string, required: true, renamed_from: chatId}
"""
NOW = datetime.now(UTC).replace(microsecond=0)


def sent(name: str, key: str, value: str, hours_ago: int) -> dict[str, Any]:
    return {
        "event": name,
        "distinct_id": f"u-{value}",
        "uuid": str(uuid.uuid4()),
        "timestamp": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "properties": {key: value},
    }


def load(db: Path | str, plan: Path, events: list[dict[str, Any]], tmp_path: Path) -> None:
    file = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    file.write_text("".join(json.dumps(e) + "\n" for e in events))
    result = CliRunner().invoke(cli, ["import", "--db", str(db), "--plan", str(plan), str(file)])
    assert result.exit_code == 0, result.output


def test_old_names_are_stored_under_the_new_and_counted_with_history(tmp_path: Path) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    db = tmp_path / "events.duckdb"
    history = [sent("chat_created", "chatId", f"h{n}", 30 + n) for n in range(3)]
    load(db, old, history, tmp_path)  # before the rename: stored as sent
    still_old = [sent("chat_created", "chatId", f"o{n}", 5 + n) for n in range(2)]
    renamed = [sent("chat.created", "chat_id", f"n{n}", 2 + n) for n in range(4)]
    load(db, new, still_old + renamed, tmp_path)

    plan = load_plan(new)
    store = open_store(str(db), [plan], read_only=True)
    try:
        _, rows = store.sql("SELECT event, verdict, properties FROM events ORDER BY timestamp", [])
        project = Project(plan.name, plan, store)
        query = TrendsQuery(
            series=(Series("chat.created"),),
            date_range=DateRange(date_from="-3d"),
            breakdown="chat_id",
            project=plan.name,
        )
        result = project.query(query)
        coverage = project.coverage()
    finally:
        store.close()
    stored = [(event, verdict, json.loads(props)) for event, verdict, props in rows]
    # History as it was stored; old code's events under the planned names, sent names kept.
    assert [e for e, _, _ in stored] == ["chat_created"] * 3 + ["chat.created"] * 6
    moved = [p for e, _, p in stored[3:5]]
    assert all(p["$eventplan_sent_as"] == "chat_created" for p in moved)
    assert all(p["$eventplan_renamed"] == {"chatId": "chat_id"} for p in moved)
    assert {v for _, v, _ in stored[3:]} == {"valid"}
    # Every figure counts all nine as chat.created, with history's chatId as chat_id.
    by_value = {r["breakdown_value"]: r["count"] for r in result["results"]}
    everything = history + still_old + renamed
    assert by_value == {next(iter(e["properties"].values())): 1 for e in everything}
    [entry] = [e for e in coverage["events"] if e["event"] == "chat.created"]
    assert entry["total"] == len(everything)
    assert coverage["seen_not_planned"] == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_hogql_reads_old_names_as_the_new_ones(tmp_path: Path, backend: str) -> None:
    """HogQL counts what the insights count: history stored as `chat_created` with
    `chatId` reads as `chat.created` with `chat_id`."""
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    db = store_url(backend, tmp_path)
    history = [sent("chat_created", "chatId", f"h{n}", 30 + n) for n in range(3)]
    load(db, old, history, tmp_path)
    load(db, new, [sent("chat.created", "chat_id", f"n{n}", 2 + n) for n in range(2)], tmp_path)
    plan = load_plan(new)
    store = open_store(db, [plan], read_only=True)
    try:
        project = Project(plan.name, plan, store)
        rows = project.hogql("SELECT event, properties.chat_id FROM events ORDER BY timestamp")[
            "results"
        ]
        [[counted]] = project.hogql("SELECT count() FROM events WHERE event = 'chat.created'")[
            "results"
        ]
        unplanned = project.hogql("SELECT count() FROM events WHERE event = 'chat_created'")
    finally:
        store.close()
    assert rows == [["chat.created", f"h{n}"] for n in (2, 1, 0)] + [
        ["chat.created", f"n{n}"] for n in (1, 0)
    ]
    assert counted == 5
    assert unplanned["results"] == [[0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_old_name_with_a_quote_reads_as_the_new_in_hogql_and_rejudge(
    tmp_path: Path, backend: str
) -> None:
    """The old name, and the project's, go into SQL as literals of the store's own
    dialect."""
    quoted = "chat'created"
    project = 'plan: "chat\'s"'
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD.replace("chat_created", f'"{quoted}"').replace("plan: chats", project))
    new.write_text(NEW.replace("[chat_created]", f'["{quoted}"]').replace("plan: chats", project))
    db = store_url(backend, tmp_path)
    load(db, old, [sent(quoted, "chatId", "h0", 30)], tmp_path)
    plan = load_plan(new)
    store = open_store(db, [plan], read_only=True)
    try:
        rows = Project(plan.name, plan, store).hogql("SELECT event FROM events")["results"]
    finally:
        store.close()
    assert rows == [["chat.created"]]
    if backend == "duckdb":  # rejudge runs in DuckDB only
        done = CliRunner().invoke(cli, ["rejudge", "--db", db, "--plan", str(new), "--json"])
        assert done.exit_code == 0, done.output
        assert json.loads(done.output) == []  # still valid under its new name


def test_diff_calls_a_declared_rename_non_breaking_and_status_says_what_to_send(
    tmp_path: Path,
) -> None:
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(OLD)
    new.write_text(NEW)
    changed = CliRunner().invoke(cli, ["diff", str(old), str(new), "--json"])
    assert changed.exit_code == 0, changed.output  # nothing breaking
    kinds = {(c["kind"], c["breaking"]) for c in json.loads(changed.output)}
    assert ("event_renamed", False) in kinds
    code = tmp_path / "app"
    code.mkdir()
    (code / "chat.ts").write_text(
        'import posthog from "posthog-js";\nposthog.capture("chat_created", { chatId: id });\n'
    )
    status = scan(code, load_plan(new))
    assert [c.event for c in status.calls] == ["chat.created"]
    assert {(f.code, f.severity) for f in status.findings} == {
        ("renamed_event", "warning"),
        ("renamed_property", "warning"),
    }
    assert status.problems == 0


def test_an_old_name_the_plan_still_plans_is_a_lint_error(tmp_path: Path) -> None:
    plan = tmp_path / "conflict.yaml"
    plan.write_text(NEW + "  chat_created: {}\n")
    result = CliRunner().invoke(cli, ["lint", str(plan)])
    assert result.exit_code == 1
    assert "rename_conflict" in result.output and "`chat_created`" in result.output
