"""The plan's dashboards, alerts and coverage give the same answers on both backends.

A simulated week is captured into a DuckDB file, moved to the ClickHouse backend
(chDB) with `eventplan export` / `eventplan import`, and every dashboard, alert
and coverage figure is asked of both at the same moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.query.model import DateRange, View
from eventplan.store import open_store
from tests.conftest import OPENCHAT, store_url


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("backends")
    runner = CliRunner()
    events = folder / "events.jsonl"
    duckdb, clickhouse = store_url("duckdb", folder), store_url("clickhouse", folder)
    exported = folder / "export.parquet"
    for command in (
        ["simulate", "--out", str(events), "--users", "150", "--days", "7", "--broken", "0.2"],
        ["import", "--db", duckdb, "--plan", str(OPENCHAT), str(events)],
        ["export", "--db", duckdb, "--out", str(exported)],
        ["import", "--db", clickhouse, "--plan", str(OPENCHAT), str(exported)],
    ):
        result = runner.invoke(cli, command)
        assert result.exit_code == 0, result.output
    return {"duckdb": duckdb, "clickhouse": clickhouse}


def answers(db: str, plan: Plan, now: datetime) -> dict[str, Any]:
    """Every number the UI, the API and the CLI show, from one store at one moment."""
    store = open_store(db, [plan], read_only=True)
    project = Project(plan.name, plan, store)
    try:
        return {
            "dashboards": {
                board.name: project.dashboard(board.name, View(DateRange("-10d")), now=now)
                for board in plan.dashboards
            },
            "alerts": [a.as_dict() for a in project.alerts(now=now, since="-7d")],
            "coverage": project.coverage(now),
        }
    finally:
        store.close()


def test_dashboards_alerts_and_coverage_agree(stores: dict[str, str], openchat_plan: Plan) -> None:
    now = datetime.now(UTC)
    duckdb, clickhouse = (answers(db, openchat_plan, now) for db in stores.values())
    for name, board in duckdb["dashboards"].items():
        assert board == clickhouse["dashboards"][name], name
        assert counted(board) > 0, name  # the comparison is not of empty boards
    assert duckdb["alerts"] == clickhouse["alerts"]
    assert any(
        alert["firing"] for alert in duckdb["alerts"]
    )  # a fifth of the events break the plan
    assert duckdb["coverage"] == clickhouse["coverage"]
    assert sum(event["total"] for event in duckdb["coverage"]["events"]) > 1000


def counted(value: Any) -> float:
    """Every `count` in a dashboard's answer, added up."""
    if isinstance(value, dict):
        own = value.get("count")
        return (own if isinstance(own, int | float) else 0) + sum(
            counted(v) for k, v in value.items() if k != "count"
        )
    if isinstance(value, list):
        return sum(counted(item) for item in value)
    return 0
