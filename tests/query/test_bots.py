"""Bots labelled at capture are left out of trends, funnels and coverage unless asked
for, cross-checked against the pure-Python reference over the same events with the
bots' ones removed by the agents this test knows to be bots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.query.engine import run_query
from eventplan.query.model import FunnelsQuery, PropertyFilter, Series, TrendsQuery
from tests.conftest import BACKENDS, examples
from tests.query import reference
from tests.query.conftest import loaded_store
from tests.query.test_funnels import END, RANGE, START, STEPS, event

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
# Who sends an event: a person's browser, a search crawler, an uptime check in a real
# Chrome that posthog-js does not know, or posthog-js's own verdict (`$browser_type`).
SENDERS: dict[str, dict[str, Any]] = {
    "person": {"$raw_user_agent": CHROME},
    "googlebot": {
        "$raw_user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    },
    "checkly": {"$raw_user_agent": CHROME + " Checkly/1.0 (https://www.checklyhq.com)"},
    "said_bot": {"$raw_user_agent": CHROME, "$browser_type": "bot"},
    "no_agent": {},
}
PEOPLE = {"person", "no_agent"}


@st.composite
def traffic(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = []
    for visitor in range(draw(st.integers(min_value=1, max_value=10))):
        sender = draw(st.sampled_from(sorted(SENDERS)))
        for _ in range(draw(st.integers(min_value=0, max_value=6))):
            name = draw(st.sampled_from(STEPS))
            offset = draw(st.integers(min_value=0, max_value=19 * 86400))
            extra = {**SENDERS[sender], "_sender": sender}
            events.append(
                event(name, f"{sender}-{visitor}", START + timedelta(seconds=offset), **extra)
            )
    return events


def people_only(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["properties"]["_sender"] in PEOPLE]


@pytest.mark.parametrize("backend", BACKENDS)
def test_trends_funnels_and_coverage_leave_bots_out_unless_asked(
    backend: str, openchat_plan: Plan
) -> None:
    @settings(
        max_examples=examples(backend, 25),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(traffic())
    def check(events: list[dict[str, Any]]) -> None:
        steps = [(STEPS[0], []), (STEPS[1], [("cta_id", "exact", "hero_try_openchat")])]
        with loaded_store(openchat_plan, events, backend) as store:
            for include_bots, counted in ((False, people_only(events)), (True, events)):
                trends = TrendsQuery(
                    series=(Series(STEPS[1]), Series(STEPS[1], math="dau")),
                    date_range=RANGE,
                    include_bots=include_bots,
                )
                got = [r["data"] for r in run_query(store, openchat_plan, trends, END)["results"]]
                want = [
                    reference.trend(counted, STEPS[1], [], math, None, START, 20)[None]
                    for math in ("total", "dau")
                ]
                assert got == want, include_bots
                funnel = FunnelsQuery(
                    steps=(
                        Series(STEPS[0]),
                        Series(
                            STEPS[1],
                            filters=(PropertyFilter("cta_id", "exact", "hero_try_openchat"),),
                        ),
                    ),
                    date_range=RANGE,
                    include_bots=include_bots,
                )
                result = run_query(store, openchat_plan, funnel, END)
                expected, _ = reference.funnel_counts(
                    counted, steps, timedelta(days=14), START, END
                )
                assert [s["count"] for s in result["results"]] == expected, include_bots
                project = Project(openchat_plan.name, openchat_plan, store, salt=b"salt")
                totals = {
                    e["event"]: e["total"]
                    for e in project.coverage(END, include_bots=include_bots)["events"]
                }
                assert totals == {
                    name: sum(1 for e in counted if e["event"] == name)
                    for name in openchat_plan.events
                }

    check()


def test_each_bot_is_named_and_a_person_is_not_labelled(openchat_plan: Plan) -> None:
    events = [
        event(STEPS[1], f"{sender}-1", START, **agent, _sender=sender)
        for sender, agent in SENDERS.items()
    ]
    with loaded_store(openchat_plan, events, "duckdb") as store:
        _, rows = store.sql(
            """SELECT distinct_id, properties->>'$."$eventplan_bot"', """
            """properties->>'$."$eventplan_bot_name"', verdict FROM events ORDER BY 1"""
        )
    assert [tuple(r) for r in rows] == [
        ("checkly-1", "true", "Checkly", "valid"),
        ("googlebot-1", "true", "Googlebot", "valid"),
        ("no_agent-1", None, None, "valid"),
        ("person-1", None, None, "valid"),
        ("said_bot-1", "true", "bot", "valid"),
    ]
