"""The OpenChat simulator: deterministic, plan-valid except its deliberate breakage."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from eventplan.plan import Plan
from eventplan.plan.validator import Validator
from eventplan.simulate.openchat import Incident, Simulation
from tests.servers import TOKEN, RunningServer


def test_the_same_seed_gives_the_same_events(tmp_path: Path) -> None:
    runner = CliRunner()
    digests = set()
    for name in ("a.jsonl", "b.jsonl"):
        result = runner.invoke(
            cli,
            [
                "simulate",
                "--users",
                "150",
                "--days",
                "7",
                "--seed",
                "9",
                "--out",
                str(tmp_path / name),
            ],
        )
        assert result.exit_code == 0, result.output
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(digests) == 1
    other = runner.invoke(
        cli,
        [
            "simulate",
            "--users",
            "150",
            "--days",
            "7",
            "--seed",
            "10",
            "--out",
            str(tmp_path / "c.jsonl"),
        ],
    )
    assert other.exit_code == 0
    assert hashlib.sha256((tmp_path / "c.jsonl").read_bytes()).hexdigest() not in digests


def test_every_event_is_valid_except_the_deliberately_broken(openchat_plan: Plan) -> None:
    simulation = Simulation(openchat_plan, users=400, days=14, seed=4, broken_share=0.02)
    validator = Validator(openchat_plan)
    not_valid = {e["uuid"] for e in simulation.events() if not validator.check(e).ok}
    assert simulation.broken, "the simulation should break some events"
    assert not_valid == set(simulation.broken)


def test_every_event_has_its_own_uuid(openchat_plan: Plan) -> None:
    incidents = [Incident.parse("models-fetch-down@day=2,hours=3")]
    events = list(
        Simulation(openchat_plan, users=300, days=5, seed=8, incidents=incidents).events()
    )
    assert len({e["uuid"] for e in events}) == len(events)


def test_the_journey_covers_every_planned_event_and_identifies_guests(
    openchat_plan: Plan,
) -> None:
    events = list(Simulation(openchat_plan, users=600, days=30, seed=2, broken_share=0).events())
    names = {e["event"] for e in events}
    assert set(openchat_plan.events) <= names
    identify = [e for e in events if e["event"] == "$identify"]
    assert identify and all(
        e["properties"]["$anon_distinct_id"].startswith("anon-") for e in identify
    )
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    ("kind", "event", "where"),
    [
        ("db-outage", "workspace.fallback_storage_used", {}),
        ("rate-limit-storm", "chat.rate_limited", {}),
        ("models-fetch-down", "openrouter.models_fetch_failed", {}),
        ("model-errors", "chat_message_stream", {"status": "error"}),
    ],
)
def test_an_incident_multiplies_its_events_in_its_window(
    openchat_plan: Plan, kind: str, event: str, where: dict[str, str]
) -> None:
    extra = ",model=openai/gpt-4o-mini" if kind == "model-errors" else ""
    incident = Incident.parse(f"{kind}@day=5,hours=12,at=8{extra}")

    def count(incidents: list[Incident]) -> int:
        simulation = Simulation(
            openchat_plan, users=800, days=7, seed=1, broken_share=0, incidents=incidents
        )
        start = simulation.start_us
        total = 0
        for e in simulation.events():
            micros = int(
                __import__("datetime")
                .datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
                .timestamp()
                * 1_000_000
            )
            if (
                e["event"] == event
                and incident.active(start, micros)
                and all(e["properties"].get(k) == v for k, v in where.items())
            ):
                total += 1
        return total

    assert count([incident]) > 3 * max(count([]), 1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flood@day=1", "unknown incident"),
        ("db-outage", "needs day"),
        ("db-outage@day=x", "whole number"),
        ("model-errors@day=2,model=gpt-9", "unknown model"),
        ("db-outage@day=0", "days count from 1"),
        ("db-outage@day=2,at=30", "hour of the day"),
        ("db-outage@day=31", "on day 31, past the 30 simulated day(s)"),
    ],
)
def test_bad_incidents_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    result = CliRunner().invoke(
        cli, ["simulate", "--out", str(tmp_path / "x.jsonl"), "--incident", text]
    )
    assert result.exit_code == 1 and message in result.output


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--days", "0"], "'--days': 0 is not in the range x>=1"),
        (["--users", "-5"], "'--users': -5 is not in the range x>=1"),
        (["--broken", "2"], "'--broken': 2.0 is not in the range 0<=x<=1"),
    ],
)
def test_bad_sizes_are_usage_errors(tmp_path: Path, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", "--out", str(tmp_path / "x.jsonl"), *flags])
    assert result.exit_code == 2 and message in result.output


def test_the_output_folder_is_made_when_missing(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "events.jsonl"
    result = CliRunner().invoke(
        cli, ["simulate", "--users", "5", "--days", "1", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert path.read_text().count("\n") > 0


def test_parquet_output_in_posthog_event_shape(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    result = CliRunner().invoke(
        cli, ["simulate", "--users", "100", "--days", "3", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(path)
    assert table.column_names == ["uuid", "event", "distinct_id", "timestamp", "properties"]
    first = table.slice(0, 1).to_pylist()[0]
    assert first["event"] == "$pageview" and "referrer_url" in json.loads(first["properties"])


def test_demo_starts_the_server_feeds_it_once_and_keeps_no_key(tmp_path: Path) -> None:
    from tests.servers import free_port

    runner = CliRunner()
    args = [
        "demo",
        "--data",
        str(tmp_path),
        "--port",
        str(free_port()),
        "--users",
        "80",
        "--days",
        "5",
        "--no-wait",
    ]
    first = runner.invoke(cli, args, env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert "personal API key (shown once" in first.output
    key = next(w for w in first.output.split() if w.startswith("phx_"))
    assert key not in (tmp_path / "demo.json").read_text()
    second = runner.invoke(cli, args, env={"COLUMNS": "200"})
    assert second.exit_code == 0 and "shown once" not in second.output
    counted = runner.invoke(
        cli,
        [
            "sql",
            "--db",
            str(tmp_path / "eventplan.duckdb"),
            "--json",
            "SELECT count(*), count(DISTINCT uuid) FROM events",
        ],
    )
    [[total, distinct]] = json.loads(counted.output)["results"]
    assert total == distinct > 0


def test_sending_through_posthog_python_lands_every_event(
    server: RunningServer, tmp_path: Path
) -> None:
    out = tmp_path / "same.jsonl"
    runner = CliRunner()
    args = ["--users", "60", "--days", "3", "--seed", "77"]
    assert runner.invoke(cli, ["simulate", *args, "--out", str(out)]).exit_code == 0
    expected = len(out.read_text().splitlines())
    sent = runner.invoke(cli, ["simulate", *args, "--host", server.url, "--token", TOKEN])
    assert sent.exit_code == 0, sent.output
    simulated = "distinct_id LIKE 'user-%' OR distinct_id LIKE 'anon-%' OR distinct_id LIKE 'bot-%'"
    server.wait_for_count(simulated, expected)
    [[count]] = server.sql(f"SELECT count(*) FROM events WHERE {simulated}")
    assert count == expected


def test_demo_stopped_with_sigterm_stops_its_server_cleanly(tmp_path: Path) -> None:
    # `kill`, `docker stop` or a closed terminal must not leave the server running.
    from eventplan.runtime import running_server_url, serve_info_path
    from tests.servers import free_port

    db = tmp_path / "eventplan.duckdb"
    demo = subprocess.Popen(
        [
            *(sys.executable, "-m", "eventplan", "demo", "--data", str(tmp_path)),
            *("--port", str(free_port()), "--users", "20", "--days", "2"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        state = tmp_path / "demo.json"
        # Bounded wait, not a timing assertion: fed, and serving.
        while not (state.exists() and json.loads(state.read_text()).get("seeded")):
            assert demo.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert running_server_url(str(db)) is not None
        server_pid = json.loads(serve_info_path(str(db)).read_text())["pid"]
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=90)
    finally:
        if demo.poll() is None:
            demo.kill()
    with pytest.raises(ProcessLookupError):
        os.kill(server_pid, 0)
    assert not serve_info_path(str(db)).exists()  # removed by the server's own clean stop
