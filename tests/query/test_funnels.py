"""Funnels, cross-checked against the brute-force reference, plus PostHog's rules by example."""

from __future__ import annotations

import math
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.plan import Plan
from eventplan.query.engine import run_query
from eventplan.query.model import DateRange, Exclusion, FunnelsQuery, PropertyFilter, Series
from eventplan.query.sql import Compiler
from eventplan.store import duckdb as duckdb_store
from eventplan.store.base import QueryError
from tests.conftest import BACKENDS, examples
from tests.query import reference
from tests.query.conftest import loaded_store

START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=20)
RANGE = DateRange(date_from=START.isoformat(), date_to=END.isoformat())
STEPS = [
    "marketing.visit_landing",
    "marketing.cta_clicked",
    "dashboard.entered",
    "openrouter.key_saved",
]
PROPS = {
    "marketing.visit_landing": {
        "referrer_url": "direct",
        "referrer_domain": "direct",
        "entry_path": "/",
        "session_is_guest": True,
    },
    "marketing.cta_clicked": {"cta_id": "hero_try_openchat", "section": "hero"},
    "dashboard.entered": {"chat_total": 0, "has_api_key": False},
    "openrouter.key_saved": {"source": "modal"},
}


def event(name: str, who: str, at: datetime, **extra: Any) -> dict[str, Any]:
    props = {"app": "openchat-web", **PROPS.get(name, {}), **extra}
    return {
        "event": name,
        "distinct_id": who,
        "uuid": str(uuid.uuid4()),
        "timestamp": at.isoformat(),
        "properties": props,
    }


@st.composite
def journeys(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = []
    for person in range(draw(st.integers(min_value=1, max_value=8))):
        who = [f"anon-{person}", f"user-{person}"]
        for _ in range(draw(st.integers(min_value=0, max_value=7))):
            name = draw(st.sampled_from([*STEPS, "sync.connection_state"]))
            offset = draw(
                st.one_of(
                    st.sampled_from([0, 60, 14 * 86400, 14 * 86400 + 1]),
                    st.integers(min_value=0, max_value=19 * 86400),
                )
            )
            extra = {}
            if name == "marketing.cta_clicked":
                extra["cta_id"] = draw(st.sampled_from(["hero_try_openchat", "hero_request_demo"]))
            events.append(
                event(name, draw(st.sampled_from(who)), START + timedelta(seconds=offset), **extra)
            )
        if draw(st.booleans()):
            events.append(
                event(
                    "$identify",
                    who[1],
                    START + timedelta(seconds=draw(st.integers(0, 19 * 86400))),
                    **{"$anon_distinct_id": who[0]},
                )
            )
    return events


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_counts_match_the_brute_force_reference(backend: str, openchat_plan: Plan) -> None:
    @settings(
        max_examples=examples(backend, 60),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(journeys(), st.sampled_from([1, 14]))
    def check(events: list[dict[str, Any]], window_days: int) -> None:
        cta = [("cta_id", "exact", "hero_try_openchat")]
        steps = [(STEPS[0], []), (STEPS[1], cta), (STEPS[2], []), (STEPS[3], [])]
        want, _ = reference.funnel_counts(events, steps, timedelta(days=window_days), START, END)
        query = FunnelsQuery(
            steps=(
                Series(STEPS[0]),
                Series(STEPS[1], filters=(PropertyFilter("cta_id", "exact", "hero_try_openchat"),)),
                Series(STEPS[2]),
                Series(STEPS[3]),
            ),
            date_range=RANGE,
            window_seconds=window_days * 86400,
        )
        with loaded_store(openchat_plan, events, backend) as store:
            result = run_query(store, openchat_plan, query, END)
        assert [step["count"] for step in result["results"]] == want
        bins = result["time_to_convert"]["bins"]
        assert result["time_to_convert"]["converted"] == want[-1] == sum(b["count"] for b in bins)

    check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_conversion_rates_and_times(backend: str, openchat_plan: Plan) -> None:
    events = []
    for person, gaps in enumerate([(60, 120, 300), (30, 90), (600,), ()]):
        at = START + timedelta(hours=person)
        events.append(event(STEPS[0], f"p{person}", at))
        for step, gap in enumerate(gaps, start=1):
            at += timedelta(seconds=gap)
            events.append(event(STEPS[step], f"p{person}", at))
    query = FunnelsQuery(steps=tuple(Series(s) for s in STEPS), date_range=RANGE)
    with loaded_store(openchat_plan, events, backend) as store:
        steps = run_query(store, openchat_plan, query, END)["results"]
    assert [s["count"] for s in steps] == [4, 3, 2, 1]
    assert [s["conversion_from_first"] for s in steps] == [1.0, 0.75, 0.5, 0.25]
    assert [s["conversion_from_previous"] for s in steps] == [
        1.0,
        0.75,
        round(2 / 3, 6),
        0.5,
    ]
    assert steps[1]["median_conversion_time"] == statistics.median([60, 30, 600])
    assert steps[1]["average_conversion_time"] == statistics.fmean([60, 30, 600])
    assert steps[2]["median_conversion_time"] == statistics.median([120, 90])
    assert steps[3]["average_conversion_time"] == 300


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_to_convert_bins_those_who_finished_by_doubling_times(
    backend: str, openchat_plan: Plan
) -> None:
    totals = [0.5, 3, 3.9, 70, 70, 86_000]  # seconds from the first step to the last
    events = []
    for person, total in enumerate(totals):
        at = START + timedelta(hours=person)
        events.append(event(STEPS[0], f"p{person}", at))
        events.append(event(STEPS[1], f"p{person}", at + timedelta(seconds=total)))
    events.append(event(STEPS[0], "never-converts", START))
    query = FunnelsQuery(steps=(Series(STEPS[0]), Series(STEPS[1])), date_range=RANGE)
    with loaded_store(openchat_plan, events, backend) as store:
        answer = run_query(store, openchat_plan, query, END)["time_to_convert"]
    # The bins by hand: [0, 1) s, then each power of two up to the next.
    expected: dict[float, int] = {}
    for total in totals:
        low = 0.0 if total < 1 else float(2 ** int(math.log2(total)))
        expected[low] = expected.get(low, 0) + 1
    assert {b["from_seconds"]: b["count"] for b in answer["bins"]} == expected
    assert all(b["to_seconds"] == max(b["from_seconds"] * 2, 1) for b in answer["bins"])
    assert answer["converted"] == len(totals)
    assert answer["median_seconds"] == statistics.median(totals)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_guest_who_identifies_mid_funnel_counts_once(backend: str, openchat_plan: Plan) -> None:
    events = [
        event(STEPS[0], "anon-1", START),
        event(STEPS[1], "anon-1", START + timedelta(minutes=1)),
        event(
            "$identify", "user-1", START + timedelta(minutes=2), **{"$anon_distinct_id": "anon-1"}
        ),
        event(STEPS[2], "user-1", START + timedelta(minutes=3)),
        event(STEPS[3], "user-1", START + timedelta(minutes=4)),
    ]
    query = FunnelsQuery(steps=tuple(Series(s) for s in STEPS), date_range=RANGE)
    with loaded_store(openchat_plan, events, backend) as store:
        steps = run_query(store, openchat_plan, query, END)["results"]
    assert [s["count"] for s in steps] == [1, 1, 1, 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_repeated_steps_need_distinct_events_and_equal_timestamps_may_convert(
    backend: str,
    openchat_plan: Plan,
) -> None:
    same = START + timedelta(hours=1)
    events = [event(STEPS[0], "a", same), event(STEPS[0], "b", same), event(STEPS[1], "b", same)]
    query = FunnelsQuery(steps=(Series(STEPS[0]), Series(STEPS[0])), date_range=RANGE)
    mixed = FunnelsQuery(steps=(Series(STEPS[0]), Series(STEPS[1])), date_range=RANGE)
    with loaded_store(openchat_plan, events, backend) as store:
        repeated = run_query(store, openchat_plan, query, END)["results"]
        converted = run_query(store, openchat_plan, mixed, END)["results"]
    assert [s["count"] for s in repeated] == [2, 0]  # one landing event cannot be two steps
    assert [s["count"] for s in converted] == [2, 1]  # same timestamp still converts


@pytest.mark.parametrize("backend", BACKENDS)
def test_strict_order_exclusions_and_breakdown_attribution(
    backend: str, openchat_plan: Plan
) -> None:
    events = [
        event(STEPS[0], "strict", START, referrer_domain="google.com"),
        event("sync.connection_state", "strict", START + timedelta(minutes=1), state="connected"),
        event(STEPS[1], "strict", START + timedelta(minutes=2)),
        event(STEPS[0], "excluded", START, referrer_domain="news.ycombinator.com"),
        event(
            "openrouter.key_prompt_shown",
            "excluded",
            START + timedelta(minutes=1),
            reason="missing",
        ),
        event(STEPS[1], "excluded", START + timedelta(minutes=2)),
    ]
    steps = (Series(STEPS[0]), Series(STEPS[1]))
    with loaded_store(openchat_plan, events, backend) as store:
        ordered = run_query(store, openchat_plan, FunnelsQuery(steps=steps, date_range=RANGE), END)
        strict = run_query(
            store, openchat_plan, FunnelsQuery(steps=steps, date_range=RANGE, order="strict"), END
        )
        excluded = run_query(
            store,
            openchat_plan,
            FunnelsQuery(
                steps=steps,
                date_range=RANGE,
                exclusions=(Exclusion("openrouter.key_prompt_shown", from_step=0, to_step=1),),
            ),
            END,
        )
        broken_down = run_query(
            store,
            openchat_plan,
            FunnelsQuery(steps=steps, date_range=RANGE, breakdown="referrer_domain"),
            END,
        )
    assert [s["count"] for s in ordered["results"]] == [2, 2]
    assert [s["count"] for s in strict["results"]] == [2, 0]  # an event in between resets both
    assert [s["count"] for s in excluded["results"]] == [1, 1]  # the excluded person is removed
    by_value = {
        group[0]["breakdown_value"]: [s["count"] for s in group] for group in broken_down["results"]
    }
    assert by_value == {"google.com": [1, 1], "news.ycombinator.com": [1, 1]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_actors_that_share_a_sort_hash_are_still_told_apart(
    backend: str, openchat_plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows are sorted on a 64-bit hash of the actor. Here every actor is made to share
    it: the funnel notices from the second hash, sorts on the actor, and counts the same."""
    events = []
    for person in range(6):  # interleaved in time, so a shared hash would mix them up
        for step, name in enumerate(STEPS[: 1 + person % 4]):
            events.append(event(name, f"p{person}", START + timedelta(minutes=step * 10 + person)))
    query = FunnelsQuery(steps=tuple(Series(s) for s in STEPS), date_range=RANGE)
    with loaded_store(openchat_plan, events, backend) as store:
        apart = run_query(store, openchat_plan, query, END)["results"]
        dialect = type(Compiler(store.columns, store.dialect).dialect)
        second = dialect.hashes
        monkeypatch.setattr(dialect, "hashes", lambda self, expr: ("0", second(self, expr)[1]))
        shared = run_query(store, openchat_plan, query, END)["results"]
    assert [s["count"] for s in apart] == [6, 4, 2, 1]
    assert shared == apart


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_at_one_moment_and_step_are_attributed_by_their_label_across_read_batches(
    backend: str, openchat_plan: Plan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two landings of one person at the same microsecond go in the order of their
    referrers, whichever the store gives first; the conversion starts from the later
    (the latest landing before the click), so both people count under `b.example`.
    A person's rows still make one person when the store's answer splits them
    between read batches."""
    monkeypatch.setattr(duckdb_store, "READ_BATCH_ROWS", 2)
    events = []
    for who, domains in (("p", ["b.example", "a.example"]), ("q", ["a.example", "b.example"])):
        events += [event(STEPS[0], who, START, referrer_domain=domain) for domain in domains]
        events.append(event(STEPS[1], who, START + timedelta(minutes=1)))
    events.append(event(STEPS[0], "r", START + timedelta(minutes=2), referrer_domain="b.example"))
    query = FunnelsQuery(
        steps=(Series(STEPS[0]), Series(STEPS[1])), date_range=RANGE, breakdown="referrer_domain"
    )
    with loaded_store(openchat_plan, events, backend) as store:
        groups = run_query(store, openchat_plan, query, END)["results"]
    by_value = {group[0]["breakdown_value"]: [s["count"] for s in group] for group in groups}
    assert by_value == {"b.example": [3, 2]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_breakdown_attribution_first_last_or_a_step_and_the_other_bucket(
    backend: str, openchat_plan: Plan
) -> None:
    web, extension = "openchat-web", "openchat-extension"
    events = [
        event(STEPS[0], "p1", START, app=web),
        event(STEPS[1], "p1", START + timedelta(minutes=1), app=extension),
        event(STEPS[0], "p2", START, app=extension),
        event(STEPS[1], "p2", START + timedelta(minutes=1), app=extension),
        event(STEPS[0], "p3", START, app=web),
    ]
    steps = (Series(STEPS[0]), Series(STEPS[1]))

    def by_value(**options: Any) -> dict[str, list[int]]:
        query = FunnelsQuery(steps=steps, date_range=RANGE, breakdown="app", **options)
        groups = run_query(store, openchat_plan, query, END)["results"]
        return {group[0]["breakdown_value"]: [s["count"] for s in group] for group in groups}

    with loaded_store(openchat_plan, events, backend) as store:
        first = by_value()
        last = by_value(breakdown_attribution="last_touch")
        at_step = by_value(breakdown_attribution="step", attribution_step=1)
        folded = by_value(breakdown_limit=1)
        for outside in (-1, 2):  # a step the funnel does not have
            with pytest.raises(QueryError, match=f"0 to 1, not {outside}"):
                by_value(breakdown_attribution="step", attribution_step=outside)
    assert first == {web: [2, 1], extension: [1, 1]}
    assert last == {extension: [2, 2], web: [1, 0]}
    assert at_step == {extension: [2, 2]}  # p3 never reached step 2: left out
    assert folded == {web: [2, 1], "$$_posthog_breakdown_other_$$": [1, 1]}
