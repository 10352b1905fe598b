"""One server, two projects fed by the real posthog-python client: every answer is
scoped to the project asked about, and nothing of one shows in the other."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from posthog import Posthog

from tests.conftest import OPENCHAT
from tests.servers import API_KEY, RunningServer, free_port

ALPHA, BETA = "phc_alpha_project", "phc_beta_project"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
ALPHA_KEY = "phx_reads_alpha_only"
RATE_LIMITED = {"app": "openchat-server", "chat_id": "c-1", "limit": 20, "window_ms": 60000}


@pytest.fixture(scope="module")
def two_projects(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("two")
    config = folder / "eventplan.toml"
    config.write_text(
        f'[[projects]]\nname = "alpha"\nplan = "{OPENCHAT}"\ntokens = ["{ALPHA}"]\n'
        f'api_keys = ["{ALPHA_KEY}"]\n\n'
        f'[[projects]]\nname = "beta"\nplan = "{OPENCHAT}"\ntokens = ["{BETA}"]\n'
    )
    server = RunningServer(
        db=folder / "eventplan.duckdb",
        port=free_port(),
        args=["--config", str(config), "--alert-interval", "0"],
    ).start()
    # alpha: 40 rate-limit events, a quarter of them breaking the plan (limit as text);
    # beta: 7, all valid.
    for token, count, broken_every in ((ALPHA, 40, 4), (BETA, 7, 0)):
        client = Posthog(token, host=server.url, sync_mode=True)
        for i in range(count):
            broken = broken_every and i % broken_every == 0
            client.capture(
                "chat.rate_limited",
                distinct_id=f"{token}-user-{i % 5}",
                properties={**RATE_LIMITED, "limit": "twenty"} if broken else RATE_LIMITED,
                uuid=str(uuid.uuid4()),
            )
        client.shutdown()
    server.wait_for_count("event = 'chat.rate_limited'", 47)
    yield server
    server.stop()


def stored_count(server: RunningServer, project: str, where: str = "true") -> int:
    """The independent count: plain SQL over the stored events."""
    rows = server.sql(
        f"SELECT count(*) FROM events WHERE project = '{project}' "
        f"AND event = 'chat.rate_limited' AND {where}"
    )
    return int(rows[0][0])


def trends(server: RunningServer, project: str) -> dict[str, Any]:
    query = {
        "kind": "TrendsQuery",
        "series": [{"kind": "EventsNode", "event": "chat.rate_limited"}],
        "dateRange": {"date_from": "-1d"},
        "interval": "day",
    }
    response = httpx.post(
        f"{server.url}/api/projects/{project}/query/", json={"query": query}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_each_project_stores_its_own_events(two_projects: RunningServer) -> None:
    assert stored_count(two_projects, "alpha") == 40
    assert stored_count(two_projects, "beta") == 7
    assert stored_count(two_projects, "alpha", "verdict = 'invalid'") == 10


@pytest.mark.parametrize("project", ["alpha", "beta"])
def test_a_query_counts_only_its_projects_events(two_projects: RunningServer, project: str) -> None:
    result = trends(two_projects, project)
    assert sum(result["results"][0]["data"]) == stored_count(two_projects, project)


def test_warnings_about_broken_data_come_only_from_the_project_that_sent_it(
    two_projects: RunningServer,
) -> None:
    alpha = [w["code"] for w in trends(two_projects, "alpha")["warnings"]]
    beta = [w["code"] for w in trends(two_projects, "beta")["warnings"]]
    assert "invalid_share" in alpha  # 25% of alpha's events break the plan
    assert "invalid_share" not in beta  # beta's are all valid


def test_alerts_count_only_their_projects_events(two_projects: RunningServer) -> None:
    def invalid_share(project: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{two_projects.url}/api/alerts", params={"project": project}, headers=AUTH
        )
        assert response.status_code == 200, response.text
        (result,) = [r for r in response.json()["results"] if r["name"] == "invalid_share"]
        return list(result["firing"])

    # alpha: 10 of 40 broken, over the 10% line. beta: none of 7. Mixed (10 of 47, over
    # the 20 events an alert needs), beta would fire too.
    assert [f["breakdown_value"] for f in invalid_share("alpha")] == ["chat.rate_limited"]
    assert invalid_share("beta") == []


def test_coverage_is_the_projects_own(two_projects: RunningServer) -> None:
    from click.testing import CliRunner

    from eventplan.cli import cli

    two_projects.stop()  # the CLI reads the store file itself
    try:
        totals = {}
        for project in ("alpha", "beta"):
            result = CliRunner().invoke(
                cli,
                [
                    "coverage",
                    "--db",
                    str(two_projects.db),
                    "--plan",
                    str(OPENCHAT),
                    "--project",
                    project,
                    "--json",
                ],
            )
            assert result.exit_code == 0, result.output
            report = json.loads(result.stdout)
            (row,) = [e for e in report["events"] if e["event"] == "chat.rate_limited"]
            totals[project] = (row["total"], row["invalid_share"])
        assert totals == {"alpha": (40, 0.25), "beta": (7, 0.0)}
    finally:
        two_projects.start()


def test_a_key_of_one_project_finds_nothing_of_the_other(two_projects: RunningServer) -> None:
    mine = {"Authorization": f"Bearer {ALPHA_KEY}"}

    def get(path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{two_projects.url}{path}", params=params, headers=mine)

    query = {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "chat.created"}]}
    own = httpx.post(
        f"{two_projects.url}/api/projects/alpha/query/", json={"query": query}, headers=mine
    )
    assert own.status_code == 200
    other = httpx.post(
        f"{two_projects.url}/api/projects/beta/query/", json={"query": query}, headers=mine
    )
    assert other.status_code == 404 and other.json()["code"] == "unknown_project"
    assert other.json()["detail"].endswith("projects: alpha")  # the others go unnamed
    assert get("/api/dashboards", project="beta").status_code == 404
    assert get("/api/alerts", project="beta").status_code == 404
    assert get("/api/dashboards/chat_health", project="beta").status_code == 404
    assert get("/api/alerts").status_code == 200  # its own project by default

    def sql(body: dict[str, str], headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{two_projects.url}/api/sql", json=body, headers=headers)

    # Raw SQL with a project's key reads that project's rows only.
    count = {"query": "SELECT count(*) FROM events_data"}
    assert sql(count, mine).json()["results"] == [[40]]
    assert sql({**count, "project": "beta"}, mine).status_code == 404
    assert sql({**count, "project": "beta"}, AUTH).json()["results"] == [[7]]
    assert sql(count, AUTH).json()["results"] == [[47]]  # an admin key, no project: all
    refused = sql({"query": "SELECT * FROM meta"}, mine)
    assert refused.status_code == 400 and "reads only its own tables" in refused.json()["detail"]
    assert get("/api/forward").status_code == 403
    admin = httpx.get(f"{two_projects.url}/api/alerts", params={"project": "beta"}, headers=AUTH)
    assert admin.status_code == 200  # the server's own key reads every project


def test_hogql_reads_only_the_projects_own_rows(two_projects: RunningServer) -> None:
    """A project's key may ask HogQL (the scope is part of the translation), and every
    count, distinct id and person is that project's."""
    mine = {"Authorization": f"Bearer {ALPHA_KEY}"}

    def hogql(project: str, text: str, headers: dict[str, str]) -> httpx.Response:
        query = {"kind": "HogQLQuery", "query": text}
        return httpx.post(
            f"{two_projects.url}/api/projects/{project}/query/",
            json={"query": query},
            headers=headers,
        )

    text = "SELECT count(), uniq(distinct_id), countIf(properties.limit IS NULL) FROM events"
    alpha = hogql("alpha", text, mine)
    assert alpha.status_code == 200, alpha.text
    broken = stored_count(two_projects, "alpha", "verdict = 'invalid'")
    assert alpha.json()["results"] == [[40, 5, broken]]
    assert hogql("beta", text, AUTH).json()["results"] == [[7, 5, 0]]
    assert hogql("beta", text, mine).status_code == 404
    ids = hogql("beta", "SELECT DISTINCT distinct_id FROM person_distinct_ids", AUTH).json()
    assert {row[0] for row in ids["results"]} == {f"{BETA}-user-{i}" for i in range(5)}


HASHING_PLAN = """\
plan: shop
version: 1.0.0
events:
  signup.completed:
    properties:
      email: {type: string, privacy: hash}
"""


def test_one_salt_for_every_door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`import` hashes with the salt `serve` would use: the setting, else the variable
    the plan names, else the store's own."""
    from click.testing import CliRunner

    from eventplan.cli import cli
    from eventplan.plan import load_plan
    from eventplan.plan.privacy import PrivacyPolicy
    from eventplan.store import open_store

    plan_file = tmp_path / "shop.yaml"
    plan_file.write_text(HASHING_PLAN)
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event": "signup.completed", "distinct_id": "u1", '
        '"properties": {"email": "ada@example.com"}}\n'
    )

    def imported(name: str, *salt: str) -> str:
        db = tmp_path / f"{name}.duckdb"
        command = ["import", "--db", str(db), "--plan", str(plan_file), *salt, str(events)]
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 0, result.output
        store = open_store(str(db), read_only=True)
        try:
            _, rows = store.sql("SELECT properties->>'email' FROM events")
        finally:
            store.close()
        return str(rows[0][0])

    def hashed(salt: bytes) -> str:
        properties: dict[str, Any] = {"email": "ada@example.com"}
        PrivacyPolicy(load_plan(plan_file), salt).apply("signup.completed", properties)
        return str(properties["email"])

    monkeypatch.delenv("EVENTPLAN_HASH_SALT", raising=False)
    assert imported("flag", "--hash-salt", "s1") == hashed(b"s1")
    monkeypatch.setenv("EVENTPLAN_HASH_SALT", "s2")  # the variable the plan names
    assert imported("variable") == hashed(b"s2") != hashed(b"s1")
