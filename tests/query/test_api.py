"""The query API speaks PostHog's query schema; dashboards and alerts as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from tests.conftest import OPENCHAT
from tests.servers import API_KEY, RunningServer, openchat_server, simulated_server


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = simulated_server(tmp_path_factory.mktemp("busy_server"), 300, 10, 3)
    yield server
    server.stop()


def post(server: RunningServer, path: str, body: object, key: str = API_KEY) -> httpx.Response:
    return httpx.post(
        f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def test_trends_query_in_posthog_shape_matches_plain_sql(busy_server: RunningServer) -> None:
    response = post(
        busy_server,
        "/api/projects/1/query/",
        {
            "query": {
                "kind": "TrendsQuery",
                "series": [
                    {
                        "kind": "EventsNode",
                        "event": "chat_message_stream",
                        "properties": [
                            {
                                "key": "status",
                                "value": "error",
                                "operator": "exact",
                                "type": "event",
                            }
                        ],
                    }
                ],
                "interval": "day",
                "dateRange": {"date_from": "-14d"},
            }
        },
    )
    assert response.status_code == 200, response.text
    [series] = response.json()["results"]
    rows = busy_server.sql(
        "SELECT strftime(date_trunc('day', timestamp AT TIME ZONE 'UTC'), '%Y-%m-%dT%H:%M:%S'), "
        "count(*) "
        "FROM events WHERE event = 'chat_message_stream' AND properties->>'status' = 'error' "
        "AND timestamp >= date_trunc('day', now() - INTERVAL 14 DAY) GROUP BY 1"
    )
    by_day = dict(zip(series["days"], series["data"], strict=True))
    assert {day: count for day, count in rows} == {d: v for d, v in by_day.items() if v}
    assert series["count"] == sum(count for _, count in rows)


def test_funnel_and_hogql_queries(busy_server: RunningServer) -> None:
    funnel = post(
        busy_server,
        "/api/projects/openchat/query/",
        {
            "query": {
                "kind": "FunnelsQuery",
                "series": [
                    {"kind": "EventsNode", "event": "marketing.visit_landing"},
                    {"kind": "EventsNode", "event": "dashboard.entered"},
                ],
                "dateRange": {"date_from": "-30d"},
                "funnelsFilter": {"funnelWindowInterval": 14, "funnelWindowIntervalUnit": "day"},
            }
        },
    ).json()
    [[visitors]] = busy_server.sql(  # people: the simulated crawlers are left out
        "SELECT count(DISTINCT person_id) FROM events WHERE event = 'marketing.visit_landing' "
        """AND properties->>'$."$eventplan_bot"' IS NULL"""
    )
    assert funnel["results"][0]["count"] == visitors
    assert 0 < funnel["results"][1]["count"] < visitors
    hogql = post(
        busy_server,
        "/api/projects/1/query/",
        {"query": {"kind": "HogQLQuery", "query": "SELECT count(*) FROM events"}},
    ).json()
    assert hogql["columns"] and hogql["results"][0][0] > 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"kind": "TrendsQuery", "series": [], "lifecycleFilter": {}}, "lifecycleFilter"),
        ({"kind": "RetentionQuery"}, "RetentionQuery"),
        (
            {"kind": "TrendsQuery", "series": [{"kind": "EventsNode", "event": "x", "fancy": 1}]},
            "fancy",
        ),
        (
            {
                "kind": "FunnelsQuery",
                "series": [{"kind": "EventsNode", "event": "x"}],
                "funnelsFilter": {"funnelOrderType": "unordered"},
            },
            "unordered",
        ),
        ({"kind": "HogQLQuery", "query": "DROP TABLE events_data"}, "only SELECT"),
        (
            {"kind": "HogQLQuery", "query": "SELECT getenv('HOME')"},
            "Unsupported function call 'getenv(...)'",
        ),
        ({"kind": "HogQLQuery", "query": "SELECT * FROM events_data"}, "Unknown table"),
        ({"kind": "HogQLQuery", "query": "SELECT nosuch FROM events"}, "Unable to resolve field"),
        # Wrong types and values name the field rather than fail inside (a 500).
        ({"kind": "TrendsQuery", "series": 5}, "series must be a list"),
        (
            {"kind": "TrendsQuery", "series": [{"event": "x", "properties": [{"key": None}]}]},
            "series[0] filter key must be a string",
        ),
        ({"kind": "TrendsQuery", "series": [], "trendsFilter": [1]}, "trendsFilter must be an"),
        (
            {"kind": "TrendsQuery", "series": [{"event": "x", "math": "weekly_active"}]},
            "series[0].math 'weekly_active' is not one of",
        ),
        (
            {"kind": "TrendsQuery", "series": [], "breakdownFilter": {"breakdown_limit": "ten"}},
            "breakdown_limit must be an integer",
        ),
        (
            {"kind": "FunnelsQuery", "series": [], "funnelsFilter": {"exclusions": [{}]}},
            "exclusions[0] needs an `event`",
        ),
    ],
)
def test_unsupported_queries_are_refused_by_name(
    busy_server: RunningServer, query: dict[str, object], message: str
) -> None:
    response = post(busy_server, "/api/projects/1/query/", {"query": query})
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert response.json()["code"] == "query_invalid"  # from the error's class, not its status


def test_an_unknown_project_is_a_404_that_says_so(busy_server: RunningServer) -> None:
    response = post(busy_server, "/api/projects/nope/query/", {"query": {"kind": "TrendsQuery"}})
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_project"
    assert "no project 'nope'" in response.json()["detail"]


def test_a_sql_answer_holds_at_most_100k_rows_and_says_there_were_more(
    busy_server: RunningServer,
) -> None:
    from eventplan.runtime import MAX_API_ROWS

    many = post(busy_server, "/api/sql", {"query": f"SELECT * FROM range({MAX_API_ROWS + 5})"})
    assert many.status_code == 200
    assert len(many.json()["results"]) == MAX_API_ROWS and many.json()["hasMore"] is True
    hogql = {"kind": "HogQLQuery", "query": "SELECT count(*) FROM events"}
    few = post(busy_server, "/api/projects/1/query/", {"query": hogql})
    assert few.json()["hasMore"] is False and len(few.json()["results"]) == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/api/dashboards/model_performance?date_from=-999999999999d", "out of range"),
        ("/api/dashboards/model_performance?date_to=0001-01-01", "out of range"),
        ("/api/dashboards/model_performance?date_from=yesterday", "neither"),
        ("/api/alerts?since=-99999999999999999999m", "out of range"),
    ],
)
def test_a_date_out_of_range_or_unreadable_is_a_400(
    busy_server: RunningServer, path: str, message: str
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    response = httpx.get(f"{busy_server.url}{path}", headers=headers, timeout=60)
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]


def test_dashboards_and_alerts_as_json(busy_server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    listing = httpx.get(f"{busy_server.url}/api/dashboards", headers=headers, timeout=30).json()
    assert len(listing["results"]) == 5
    board = httpx.get(
        f"{busy_server.url}/api/dashboards/model_performance?date_from=-10d",
        headers=headers,
        timeout=60,
    ).json()
    assert [i["name"] for i in board["insights"]] == [
        "success_rate_by_model",
        "error_rate_by_model",
        "median_duration_by_model",
        "characters_by_model",
        "tokens_by_model",  # the AI lane's $ai_generation, beside the seed's stream numbers
        "ai_latency_by_model",
    ]
    tokens = board["insights"][4]["result"]["results"]
    assert {r["label"].split(" - ")[0] for r in tokens} == {"input tokens", "output tokens"}
    assert sum(sum(r["data"]) for r in tokens) > 0
    assert board["insights"][0]["query"]["kind"] == "TrendsQuery"
    assert board["insights"][0]["result"]["results"]
    missing = httpx.get(f"{busy_server.url}/api/dashboards/nope", headers=headers, timeout=30)
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    alerts = httpx.get(f"{busy_server.url}/api/alerts", headers=headers, timeout=60).json()
    assert {a["name"] for a in alerts["results"]} >= {"fallback_storage_share", "invalid_share"}


def test_an_interval_the_engine_does_not_compute_is_a_400(busy_server: RunningServer) -> None:
    response = httpx.get(
        f"{busy_server.url}/api/dashboards/chat_health/insights/streams_by_status",
        params={"interval": "minute"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["code"] == "query_invalid"
    assert "interval 'minute' is not one of hour, day, week, month" in response.json()["detail"]


def test_the_api_needs_the_personal_key(busy_server: RunningServer) -> None:
    assert httpx.get(f"{busy_server.url}/api/dashboards", timeout=10).status_code == 401
    assert (
        post(busy_server, "/api/projects/1/query/", {}, key="phc_openchat_test").status_code == 401
    )


def test_report_and_query_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    events, db = tmp_path / "e.jsonl", tmp_path / "e.duckdb"
    runner.invoke(cli, ["simulate", "--users", "200", "--days", "5", "--out", str(events)])
    runner.invoke(cli, ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)])
    report = runner.invoke(
        cli,
        ["report", "reliability", "--db", str(db), "--plan", str(OPENCHAT)],
        env={"COLUMNS": "200"},
    )
    assert report.exit_code == 0 and "Reliability Board" in report.output
    # The terminal shows the engine's numbers: the same histogram the API gives.
    board = ["report", "attachment_demand", "--db", str(db), "--plan", str(OPENCHAT)]
    as_json = json.loads(runner.invoke(cli, [*board, "--json"]).output)
    (sizes,) = [i for i in as_json["insights"] if i["name"] == "attachment_sizes"]
    text = runner.invoke(cli, board, env={"COLUMNS": "200"}).output
    assert "histogram" in text and sizes["histogram"]
    for bucket in sizes["histogram"]:
        assert f"≥ {bucket['low']:,.0f} " in text
    trends = runner.invoke(
        cli,
        [
            "query",
            "trends",
            "chat.created",
            "--db",
            str(db),
            "--plan",
            str(OPENCHAT),
            "--where",
            "app=openchat-server",
            "--json",
        ],
    )
    assert trends.exit_code == 0, trends.output
    funnel = runner.invoke(
        cli,
        [
            "query",
            "funnel",
            "marketing.visit_landing",
            "dashboard.entered",
            "--db",
            str(db),
            "--plan",
            str(OPENCHAT),
            "--from",
            "-10d",
        ],
        env={"COLUMNS": "200"},
    )
    assert funnel.exit_code == 0 and "dashboard.entered" in funnel.output
    # The acquisition report prints the engine's time to convert and its counted warnings.
    acquisition = ["report", "acquisition_to_activation", "--db", str(db), "--plan", str(OPENCHAT)]
    shown = json.loads(runner.invoke(cli, [*acquisition, "--json", "--top", "3"]).output)
    printed = runner.invoke(cli, [*acquisition, "--top", "3"], env={"COLUMNS": "200"}).output
    ttc = shown["insights"][0]["result"]["time_to_convert"]
    assert f"time to convert: {ttc['converted']} finished" in printed and ttc["bins"]
    assert all(r["breakdown_label"] for r in shown["insights"][1]["result"]["results"])
    assert len({r["breakdown_label"] for r in shown["insights"][1]["result"]["results"]}) <= 4
    hogql = runner.invoke(
        cli,
        [
            *["query", "hogql", "SELECT event, count() FROM events GROUP BY event"],
            *["--db", str(db), "--plan", str(OPENCHAT), "--json"],
        ],
    )
    assert hogql.exit_code == 0, hogql.output
    answer = json.loads(hogql.output)
    raw = runner.invoke(
        cli, ["sql", "SELECT event, count(*) FROM events GROUP BY event", "--db", str(db), "--json"]
    )
    assert answer["columns"] == ["event", "count()"] and answer["hasMore"] is False
    assert dict(answer["results"]) == dict(json.loads(raw.output)["results"])
    assert dict(answer["results"])["chat.created"] > 0
    unknown = runner.invoke(cli, ["report", "nope", "--db", str(db), "--plan", str(OPENCHAT)])
    assert unknown.exit_code == 1 and "nope" in unknown.output


def test_coverage_command(tmp_path: Path) -> None:
    runner = CliRunner()
    events, db = tmp_path / "e.jsonl", tmp_path / "e.duckdb"
    runner.invoke(cli, ["simulate", "--users", "50", "--days", "3", "--out", str(events)])
    runner.invoke(cli, ["import", "--db", str(db), "--plan", str(OPENCHAT), str(events)])
    result = runner.invoke(cli, ["coverage", "--db", str(db), "--plan", str(OPENCHAT), "--json"])
    report = json.loads(result.output)
    seen = {e["event"]: e for e in report["events"]}
    assert seen["marketing.visit_landing"]["total"] > 0
    assert set(report["planned_never_seen"]) == {n for n, e in seen.items() if not e["total"]}


def test_a_sql_query_past_the_timeout_is_a_400_that_says_so(tmp_path: Path) -> None:
    server = openchat_server(tmp_path, "--alert-interval", "0", "--query-timeout", "1")
    try:
        endless = post(server, "/api/sql", {"query": "SELECT count(*) FROM range(1000000000000)"})
        assert endless.status_code == 400
        assert "ran longer than 1 s and was stopped" in endless.json()["detail"]
        assert post(server, "/api/sql", {"query": "SELECT 42"}).json()["results"] == [[42]]
    finally:
        server.stop()


def test_top_n_keeps_the_largest_values_and_folds_the_rest_into_other(
    busy_server: RunningServer,
) -> None:
    path = "/api/dashboards/model_performance/insights/characters_by_model"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answer = httpx.get(
        f"{busy_server.url}{path}?date_from=-30d&top=2&interval=month", headers=headers, timeout=60
    ).json()
    series = {r["breakdown_label"]: r["count"] for r in answer["result"]["results"]}
    assert answer["breakdown_limit"] == 2 and len(series) == 3  # the top two, and Other
    # By hand: characters per model over the same range, people only.
    rows = busy_server.sql(
        "SELECT properties->>'model_id', sum(CAST(properties->>'characters' AS DOUBLE)) "
        "FROM events WHERE event = 'chat_message_stream' "
        "AND timestamp >= date_trunc('day', now() - INTERVAL 30 DAY) "
        """AND properties->>'$."$eventplan_bot"' IS NULL AND properties->>'model_id' IS NOT NULL """
        "GROUP BY 1 ORDER BY count(*) DESC, 1"
    )
    totals = {model: total or 0 for model, total in rows}
    top = [model for model, _ in rows[:2]]
    assert {k: v for k, v in series.items() if k != "Other"} == pytest.approx(
        {model: totals[model] for model in top}
    )
    assert series["Other"] == pytest.approx(sum(v for k, v in totals.items() if k not in top))
    for bad in ("0", "abc", "1001"):
        refused = httpx.get(f"{busy_server.url}{path}?top={bad}", headers=headers, timeout=30)
        assert refused.status_code == 400 and "top" in refused.json()["detail"]
