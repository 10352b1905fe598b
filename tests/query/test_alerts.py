"""Each simulated incident fires its alert; a run without incidents fires none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from tests.conftest import OPENCHAT

INCIDENTS = {
    "db-outage@day=12,hours=3": "fallback_storage_share",
    "model-errors@day=20": "model_error_rate",
    "rate-limit-storm@day=25,hours=3": "rate_limit_spike",
    "models-fetch-down@day=8,hours=2": "models_fetch_down",
}


def simulated_store(tmp_path: Path, *incidents: str) -> Path:
    runner = CliRunner()
    events, db = tmp_path / "events.jsonl", tmp_path / "events.duckdb"
    args = ["simulate", "--seed", "11", "--out", str(events)]
    for incident in incidents:
        args += ["--incident", incident]
    assert runner.invoke(cli, args).exit_code == 0
    imported = runner.invoke(cli, ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)])
    assert imported.exit_code == 0, imported.output
    return db


def fired(db: Path) -> tuple[int, dict[str, list[dict[str, object]]]]:
    result = CliRunner().invoke(
        cli,
        ["alerts", "check", "--db", str(db), "--plan", str(OPENCHAT), "--since", "-30d", "--json"],
    )
    return result.exit_code, {
        a["name"]: a["firing"] for a in json.loads(result.output) if a["fired"]
    }


@pytest.mark.slow
def test_every_incident_fires_its_alert(tmp_path: Path) -> None:
    code, firing = fired(simulated_store(tmp_path, *INCIDENTS))
    assert code == 1
    assert set(firing) == set(INCIDENTS.values())
    assert all(f["owner"] for alerts in firing.values() for f in alerts)
    (errors,) = {f["breakdown_value"] for f in firing["model_error_rate"]}
    assert errors == "openai/gpt-4o-mini"


@pytest.mark.slow
def test_no_incident_no_alert(tmp_path: Path) -> None:
    code, firing = fired(simulated_store(tmp_path))
    assert (code, firing) == (0, {})
