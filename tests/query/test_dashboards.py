"""Every number a dashboard panel shows comes from the query engine, and each is
checked here against a count made in plain Python over the same events: the size
histogram (every event, not only a breakdown's top values), the per-interval average
and the flag above a threshold, the funnel's steps over every breakdown value."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from eventplan.plan import Plan
from eventplan.query.dashboards import find_dashboard, find_insight, insight_data, insight_query
from eventplan.query.engine import run_query
from eventplan.query.model import (
    BREAKDOWN_NULL,
    DateRange,
    FunnelsQuery,
    Series,
    TrendsQuery,
    View,
)
from eventplan.store import Store
from tests.conftest import BACKENDS
from tests.query.conftest import loaded_store

START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 4
RANGE = DateRange(date_from=START.isoformat(), date_to=(START + timedelta(days=DAYS)).isoformat())
SIZES: list[Any] = [0, 1, 2, 3, 1023, 1024, 1500, 2047, 2048, 5_000_000, "big", None]
# Per day, per model: (streams, errors). gpt's error rate is 10% some days, 0% others.
STREAMS = {
    "openai/gpt-4o-mini": [(10, 1), (20, 2), (10, 0), (5, 0)],
    "anthropic/claude-3.5-sonnet": [(10, 0), (4, 1), (8, 0), (10, 0)],
}
LANDINGS = {"news.example": 6, "direct": 3, "blog.example": 2}


def event(name: str, day: int, second: int, who: str, **props: Any) -> dict[str, Any]:
    return {
        "event": name,
        "distinct_id": who,
        "uuid": str(uuid.uuid4()),
        "timestamp": (START + timedelta(days=day, seconds=second)).isoformat(),
        "properties": {"app": "openchat-web", **props},
    }


def events() -> list[dict[str, Any]]:
    made = []
    for i, size in enumerate(SIZES):
        props = {"chat_id": "c", "result": "accepted", "file_mime": "image/png"}
        if size is not None:
            props["file_size_bytes"] = size
        made.append(event("chat.attachment_event", i % DAYS, 60 + i, f"a{i}", **props))
    made.append(event("chat.attachment_event", DAYS + 1, 60, "late", file_size_bytes=4))
    for model, days in STREAMS.items():
        for day, (streams, errors) in enumerate(days):
            for i in range(streams):
                status = "error" if i < errors else "completed"
                made.append(
                    event(
                        "chat_message_stream",
                        day,
                        100 + i,
                        f"s{i}",
                        app="openchat-server",
                        chat_id="c",
                        model_id=model,
                        status=status,
                        duration_ms=100,
                    )
                )
    for domain, people in LANDINGS.items():
        for i in range(people):
            who = f"{domain}-{i}"
            landing = {"referrer_url": domain, "referrer_domain": domain, "entry_path": "/"}
            made.append(event("marketing.visit_landing", 0, 10 + i, who, **landing))
            if i % 2 == 0:
                made.append(
                    event(
                        "marketing.cta_clicked",
                        0,
                        500 + i,
                        who,
                        cta_id="hero_try_openchat",
                        section="hero",
                        cta_copy="Try",
                    )
                )
    return made


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, openchat_plan: Plan) -> Iterator[Store]:
    with loaded_store(openchat_plan, events(), request.param) as loaded:
        yield loaded


def panel(store: Store, plan: Plan, dashboard: str, name: str, **kw: Any) -> dict[str, Any]:
    insight = find_insight(find_dashboard(plan, dashboard), name)
    return insight_data(store, plan, plan.name, insight, View(RANGE, **kw))


def test_the_histogram_counts_every_sized_event_by_power_of_two(
    store: Store, openchat_plan: Plan
) -> None:
    data = panel(store, openchat_plan, "attachment_demand", "attachment_sizes")
    numbers = [s for s in SIZES if isinstance(s, int)]  # "big" and a missing size: no number
    expected = Counter(0.0 if s <= 0 else float(2 ** math.floor(math.log2(s))) for s in numbers)
    assert {b["low"]: b["count"] for b in data["histogram"]} == expected
    assert [b["low"] for b in data["histogram"]] == sorted(expected)


def test_the_average_is_per_interval_and_flags_what_is_above_the_line(
    store: Store, openchat_plan: Plan
) -> None:
    data = panel(store, openchat_plan, "model_performance", "error_rate_by_model", interval="day")
    results = {r["breakdown_value"]: r for r in data["result"]["results"]}
    for model, days in STREAMS.items():
        rates = [errors / streams * 100 for streams, errors in days]
        average = sum(rates) / len(rates)
        assert results[model]["average"] == pytest.approx(average)
        assert results[model]["flagged"] is (average > 5)
    # gpt: (10 + 10 + 0 + 0) / 4 = 5.0, on the line (not above); claude: 25 / 4 = 6.25.
    assert {m: r["flagged"] for m, r in results.items()} == {
        "openai/gpt-4o-mini": False,
        "anthropic/claude-3.5-sonnet": True,
    }


def test_a_funnels_totals_are_every_breakdown_value_together(
    store: Store, openchat_plan: Plan
) -> None:
    data = panel(
        store,
        openchat_plan,
        "acquisition_to_activation",
        "activation_funnel",
        breakdown="referrer_domain",
    )
    totals = data["result"]["totals"]
    assert [s["count"] for s in totals[:2]] == [
        sum(LANDINGS.values()),
        sum((people + 1) // 2 for people in LANDINGS.values()),
    ]
    landed, clicked = sum(LANDINGS.values()), sum((p + 1) // 2 for p in LANDINGS.values())
    assert totals[1]["drop_off_from_previous"] == pytest.approx(1 - clicked / landed, abs=1e-6)
    assert totals[1]["step_filter"] == "cta_id = hero_try_openchat"  # shown on the chart
    assert totals[0]["step_filter"] == ""
    per_value = data["result"]["results"]
    assert [s["count"] for s in totals] == [
        sum(steps[i]["count"] for steps in per_value) for i in range(len(totals))
    ]
    insight = find_insight(
        find_dashboard(openchat_plan, "acquisition_to_activation"), "activation_funnel"
    )
    query = insight_query(insight, View(RANGE, breakdown="referrer_domain"), openchat_plan.name)
    whole = run_query(store, openchat_plan, msgspec.structs.replace(query, breakdown=None))
    assert [s["count"] for s in whole["results"]] == [s["count"] for s in totals]


def streams_of(statuses: list[Any]) -> list[dict[str, Any]]:
    """One chat_message_stream per status, by one person each (None: no status)."""
    return [
        event(
            "chat_message_stream",
            0,
            i,
            f"p{i}",
            app="openchat-server",
            chat_id="c",
            model_id="m",
            duration_ms=1,
            **({"status": status} if status is not None else {}),
        )
        for i, status in enumerate(statuses)
    ]


def test_a_breakdown_reads_as_a_person_reads_it(openchat_plan: Plan) -> None:
    """`(none)` for no value, `invalid: …` for what the plan's enum or type refuses
    (an array where the plan has one value too); PostHog's own value kept beside."""
    streams = streams_of(["completed", "completed", "completex", ["completed"], None])
    with loaded_store(openchat_plan, streams, "duckdb") as store:
        query = TrendsQuery(
            series=(Series("chat_message_stream"),),
            date_range=RANGE,
            breakdown="status",
            project=openchat_plan.name,
        )
        result = run_query(store, openchat_plan, query)
    labels = {
        r["breakdown_value"]: (r["breakdown_label"], r["breakdown_kind"], r["display_label"])
        for r in result["results"]
    }
    assert labels == {
        "completed": ("completed", "value", "chat_message_stream - completed"),
        "completex": ("invalid: completex", "invalid", "chat_message_stream - invalid: completex"),
        '["completed"]': (
            'invalid: ["completed"]',
            "invalid",
            'chat_message_stream - invalid: ["completed"]',
        ),
        BREAKDOWN_NULL: ("(none)", "none", "chat_message_stream - (none)"),
    }


@pytest.mark.parametrize("limit", [1, 25], ids=["invalid-folded-into-other", "all-shown"])
def test_values_the_plan_forbids_are_counted_in_a_warning_that_links_to_them(
    openchat_plan: Plan, limit: int
) -> None:
    statuses: list[Any] = ["completed"] * 4 + ["completex"] * 3 + [["completed"]] * 2 + ["errox"]
    streams = streams_of(statuses)
    landings = [
        event(
            "marketing.visit_landing",
            0,
            i,
            f"v{i}",
            referrer_url="direct",
            referrer_domain="direct",
            entry_path="/",
            session_is_guest=guest,
        )
        for i, guest in enumerate([True, True, "yes", "yes", "yes"])
    ]
    with loaded_store(openchat_plan, streams + landings, "duckdb") as store:
        trend = TrendsQuery(
            series=(Series("chat_message_stream"),),
            date_range=RANGE,
            breakdown="status",
            breakdown_limit=limit,
            project=openchat_plan.name,
        )
        [warning] = [
            w
            for w in run_query(store, openchat_plan, trend)["warnings"]
            if w["code"] == "invalid_breakdown"
        ]
        funnel = FunnelsQuery(
            steps=(Series("marketing.visit_landing"), Series("marketing.cta_clicked")),
            date_range=RANGE,
            breakdown="session_is_guest",
            project=openchat_plan.name,
        )
        funnel_warnings = run_query(store, openchat_plan, funnel)["warnings"]
    # By hand: the statuses outside the plan's enum, or not one text value.
    forbidden = [s for s in statuses if s not in ("completed", "error", "aborted")]
    assert warning["message"] == (
        f"{len(forbidden)} events have a status the plan forbids on chat_message_stream: "
        'completex, ["completed"], errox'
    )
    assert warning["live"] == "/live?event=chat_message_stream&verdict=problems&project=openchat"
    [people] = [w for w in funnel_warnings if w["code"] == "invalid_breakdown"]
    assert people["message"].startswith("3 people have a session_is_guest the plan forbids")
