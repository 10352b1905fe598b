"""The `eventplan` command over real files: validate, plan show."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from eventplan.cli import cli
from tests.conftest import OPENCHAT, ROOT

GOOD = {
    "event": "sync.connection_state",
    "distinct_id": "u1",
    "uuid": "0193a0c4-0000-7000-8000-000000000001",
    "properties": {"state": "retry", "retry_count": 2, "app": "openchat-web"},
}
BAD = {
    "event": "sync.connection_state",
    "distinct_id": "u1",
    "uuid": "0193a0c4-0000-7000-8000-000000000002",
    "properties": {"state": "retrying", "app": "openchat-web"},
}
UNPLANNED = {"event": "sync.reconnected", "uuid": "0193a0c4-0000-7000-8000-000000000003"}


def write_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_json_gives_one_verdict_per_event(tmp_path: Path) -> None:
    path = write_lines(tmp_path, json.dumps(GOOD), json.dumps(BAD), json.dumps(UNPLANNED))
    result = CliRunner().invoke(cli, ["validate", str(OPENCHAT), str(path), "--json"])
    assert result.exit_code == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["uuid"], r["verdict"]) for r in rows] == [
        (GOOD["uuid"], "valid"),
        (BAD["uuid"], "invalid"),
        (UNPLANNED["uuid"], "unplanned"),
    ]
    (violation,) = rows[1]["violations"]
    assert violation["code"] == "not_in_enum"
    assert violation["property"] == "state"
    assert violation["expected"] == ["connected", "retry", "failed"]
    assert violation["received"] == "retrying"
    assert set(violation) >= {"code", "property", "expected", "received", "message"}


def test_validate_exits_zero_when_everything_is_valid(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["validate", str(OPENCHAT), str(write_lines(tmp_path, json.dumps(GOOD)))]
    )
    assert result.exit_code == 0
    assert "sync.connection_state" in result.output


def test_a_line_that_is_not_json_is_reported_with_its_number(tmp_path: Path) -> None:
    path = write_lines(tmp_path, json.dumps(GOOD), "{not json", json.dumps(GOOD))
    result = CliRunner().invoke(cli, ["validate", str(OPENCHAT), str(path), "--json"])
    assert result.exit_code == 1
    assert f"{path}:2: not JSON" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stdout.splitlines()) == 2


def test_a_line_nested_past_what_json_decoding_takes_is_reported_too(tmp_path: Path) -> None:
    path = write_lines(tmp_path, json.dumps(GOOD), "[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(cli, ["validate", str(OPENCHAT), str(path), "--json"])
    assert result.exit_code == 1
    assert f"{path}:2: not JSON: it nests too deeply to read" in result.stderr
    assert len(result.stdout.splitlines()) == 1


def test_validate_reads_a_posthog_json_export(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps([GOOD, BAD]))
    result = CliRunner().invoke(cli, ["validate", str(OPENCHAT), str(path)])
    assert result.exit_code == 1
    assert "not_in_enum" in result.output  # the human report lists frequent violations


def test_validate_the_shipped_examples() -> None:
    result = CliRunner().invoke(
        cli, ["validate", str(OPENCHAT), str(ROOT / "examples" / "openchat-events.jsonl"), "--json"]
    )
    verdicts = {json.loads(line)["verdict"] for line in result.stdout.splitlines()}
    assert verdicts == {"valid", "invalid"} or verdicts == {"valid", "invalid", "unplanned"}


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", str(OPENCHAT), str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 1
    assert "cannot read" in result.output


def test_a_broken_plan_is_a_clear_error(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("plan: x\nevents:\n  Bad Name: {}\n")
    result = CliRunner().invoke(cli, ["plan", "show", str(plan)])
    assert result.exit_code == 1
    assert "bad_event_name" in result.output and "Traceback" not in result.output


def test_plan_show_lists_events_and_one_event_in_full() -> None:
    runner = CliRunner()
    overview = runner.invoke(cli, ["plan", "show", str(OPENCHAT)], env={"COLUMNS": "250"})
    assert overview.exit_code == 0
    assert "workspace.fallback_storage_used" in overview.output
    detail = runner.invoke(
        cli, ["plan", "show", str(OPENCHAT), "--event", "chat.created"], env={"COLUMNS": "250"}
    )
    assert detail.exit_code == 0
    assert "memory_fallback" in detail.output and "app-sidebar.tsx" in detail.output


def test_sql_on_a_file_that_is_no_duckdb_says_so(tmp_path: Path) -> None:
    path = tmp_path / "notes.duckdb"
    path.write_text("hello")
    result = CliRunner().invoke(cli, ["sql", "--db", str(path), "SELECT 1"])
    assert result.exit_code == 1
    assert "not a valid DuckDB database file" in result.output  # not "in use by another process"


def test_import_of_a_file_that_is_no_parquet_says_so(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1 not really")
    result = CliRunner().invoke(
        cli, ["import", "--db", str(tmp_path / "e.duckdb"), "--plan", str(OPENCHAT), str(path)]
    )
    assert result.exit_code == 1
    assert f"{path}: not a Parquet file that can be read" in result.output


def test_serve_on_a_taken_port_says_so_and_closes_the_store_cleanly(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from eventplan.store import open_store

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    db = tmp_path / "e.duckdb"
    serve = ["serve", "--plan", str(OPENCHAT), "--db", str(db), "--port", str(port)]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "eventplan", *serve, "--token", "phc_x", "--api-key", "phx_k"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        taken.close()
    assert result.returncode != 0
    assert "address already in use" in result.stderr
    # The alert check that starts with the server had its store call in a thread;
    # shutdown waits for it instead of closing the store under it.
    assert "Traceback" not in result.stderr, result.stderr
    open_store(str(db), read_only=True).close()


def test_a_folder_that_cannot_be_made_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    events = ROOT / "examples" / "openchat-events.jsonl"
    db = blocker / "sub" / "e.duckdb"
    command = ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)]
    result = subprocess.run(
        [sys.executable, "-m", "eventplan", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert f"Error: Not a directory: {blocker / 'sub'}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_library_error_in_any_command_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    """Errors are mapped once, for every command: those that forgot (quarantine list,
    coverage) printed a traceback on a QueryError."""
    db = tmp_path / "e.duckdb"
    events = tmp_path / "events.jsonl"
    events.write_text('{"event": "chat.created", "distinct_id": "u1", "properties": {}}\n')
    imported = CliRunner().invoke(
        cli, ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)]
    )
    assert imported.exit_code == 0, imported.output
    result = CliRunner().invoke(cli, ["quarantine", "list", "--db", str(db), "--limit", "-1"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "LIMIT" in result.output.upper()
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a QueryError raised
