"""Trends, cross-checked against the pure-Python reference on generated event streams."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from eventplan.capture.importer import import_events
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.query.engine import run_query
from eventplan.query.model import DateRange, Interval, PropertyFilter, Series, TrendsQuery
from eventplan.store import open_store
from eventplan.store.base import StoreBusy
from tests.conftest import BACKENDS, examples
from tests.query import reference
from tests.query.conftest import loaded_store

START = datetime(2026, 11, 10, tzinfo=UTC)
DAYS = 6
RANGE = DateRange(date_from=START.isoformat(), date_to=(START + timedelta(days=DAYS)).isoformat())
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "google/gemini-2.0-flash"]

# Times on and around day boundaries and duplicates, plus anywhere in the range.
boundary_seconds = st.sampled_from([0, 1, 86_399, 86_400, 86_401, 3 * 86_400, DAYS * 86_400 - 1])
seconds = st.one_of(boundary_seconds, st.integers(min_value=-3600, max_value=DAYS * 86_400 + 3600))
maybe = st.one_of(st.just("missing"), st.none())


@st.composite
def stream_event(draw: st.DrawFn) -> dict[str, Any]:
    person = draw(st.integers(min_value=0, max_value=5))
    props: dict[str, Any] = {"app": "openchat-server", "chat_id": "c"}
    status = draw(st.sampled_from(["completed", "error", "aborted", "eror", "missing"]))
    if status != "missing":
        props["status"] = status
    duration = draw(
        st.one_of(
            st.integers(min_value=0, max_value=10_000), maybe, st.sampled_from(["1200", "slow"])
        )
    )
    if duration != "missing":
        props["duration_ms"] = duration
    model = draw(st.sampled_from([*MODELS, "missing", None, 7]))
    if model != "missing":
        props["model_id"] = model
    if draw(st.booleans()):
        props["$groups"] = {"workspace": f"ws-{draw(st.integers(min_value=0, max_value=3))}"}
    return {
        "event": "chat_message_stream",
        "distinct_id": draw(st.sampled_from([f"user-{person}", f"anon-{person}"])),
        "uuid": str(uuid.UUID(int=draw(st.integers(min_value=1, max_value=2**120)), version=4)),
        "timestamp": (START + timedelta(seconds=draw(seconds))).isoformat(),
        "properties": props,
    }


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    events = draw(st.lists(stream_event(), min_size=1, max_size=60, unique_by=lambda e: e["uuid"]))
    for person in draw(st.sets(st.integers(min_value=0, max_value=5), max_size=4)):
        events.append(
            {
                "event": "$identify",
                "distinct_id": f"user-{person}",
                "uuid": str(uuid.uuid4()),
                "timestamp": (START + timedelta(seconds=draw(seconds))).isoformat(),
                "properties": {"$anon_distinct_id": f"anon-{person}"},
            }
        )
    return events


MATHS = [
    ("total", None),
    ("dau", None),
    ("unique_group", None),
    ("sum", "duration_ms"),
    ("avg", "duration_ms"),
    ("min", "duration_ms"),
    ("max", "duration_ms"),
    ("median", "duration_ms"),
    ("p90", "duration_ms"),
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_math_with_and_without_breakdown_matches_the_reference(
    backend: str, openchat_plan: Plan
) -> None:
    @settings(
        max_examples=examples(backend, 40),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(streams())
    def check(events: list[dict[str, Any]]) -> None:
        now = START + timedelta(days=DAYS)
        with loaded_store(openchat_plan, events, backend) as store:
            for math, prop in MATHS:
                # No breakdown; every value shown; the top two and the rest as `Other`.
                for breakdown, limit in ((None, 25), ("model_id", 25), ("model_id", 2)):
                    query = TrendsQuery(
                        series=(Series("chat_message_stream", math=math, math_property=prop),),  # type: ignore[arg-type]
                        date_range=RANGE,
                        breakdown=breakdown,
                        breakdown_limit=limit,
                    )
                    got = {
                        item.get("breakdown_value"): item["data"]
                        for item in run_query(store, openchat_plan, query, now)["results"]
                    }
                    want = reference.trend(
                        events, "chat_message_stream", [], math, prop, START, DAYS, breakdown, limit
                    )
                    assert set(got) == set(want), (math, breakdown)
                    for key, values in want.items():
                        assert got[key] == [round(v, 6) for v in values], (math, breakdown, key)
            # Every math at once, every other one only over completed streams: one
            # statement, each series' aggregate over its own events.
            completed = [("status", "exact", "completed")]
            together = TrendsQuery(
                series=tuple(
                    Series(
                        "chat_message_stream",
                        filters=(PropertyFilter(*completed[0]),) if i % 2 else (),
                        math=m,  # type: ignore[arg-type]
                        math_property=p,
                    )
                    for i, (m, p) in enumerate(MATHS)
                ),
                date_range=RANGE,
                breakdown="model_id",
            )
            results = run_query(store, openchat_plan, together, now)["results"]
            for i, (math, prop) in enumerate(MATHS):
                got = {
                    r["breakdown_value"]: r["data"]
                    for r in results
                    if (r["action"]["math"], r["action"]["math_property"]) == (math, prop)
                }
                want = reference.trend(
                    events,
                    "chat_message_stream",
                    completed if i % 2 else [],
                    math,
                    prop,
                    START,
                    DAYS,
                    "model_id",
                )
                # A value of the other series' events only is drawn as zeros here.
                want = {k: [round(v, 6) for v in vs] for k, vs in want.items()}
                assert got == {k: want.get(k, [0.0] * DAYS) for k in got}, math
                assert set(want) <= set(got), math

    check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_filters_and_formulas_match_the_reference(backend: str, openchat_plan: Plan) -> None:
    @settings(
        max_examples=examples(backend, 30),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(streams())
    def check(events: list[dict[str, Any]]) -> None:
        now = START + timedelta(days=DAYS)
        error = [("status", "exact", "error")]
        with loaded_store(openchat_plan, events, backend) as store:
            query = TrendsQuery(
                series=(
                    Series("chat_message_stream"),
                    Series(
                        "chat_message_stream", filters=(PropertyFilter("status", "exact", "error"),)
                    ),
                ),
                date_range=RANGE,
                formula="B / A * 100",
            )
            [result] = run_query(store, openchat_plan, query, now)["results"]
            totals = reference.trend(events, "chat_message_stream", [], "total", None, START, DAYS)[
                None
            ]
            errors = reference.trend(
                events, "chat_message_stream", error, "total", None, START, DAYS
            )[None]
            assert result["data"] == [
                round(e / t * 100, 6) if t else 0.0 for e, t in zip(errors, totals, strict=True)
            ]
            for flt in [
                ("status", "is_not", "error"),
                ("duration_ms", "gt", 5000),
                ("model_id", "is_set", None),
            ]:
                query = TrendsQuery(
                    series=(Series("chat_message_stream", filters=(PropertyFilter(*flt),)),),  # type: ignore[arg-type]
                    date_range=RANGE,
                )
                [item] = run_query(store, openchat_plan, query, now)["results"]
                assert (
                    item["data"]
                    == reference.trend(
                        events, "chat_message_stream", [flt], "total", None, START, DAYS
                    )[None]
                ), flt

    check()


@pytest.mark.parametrize("backend", BACKENDS)
def test_breakdown_keeps_the_top_values_and_folds_the_rest(
    backend: str, openchat_plan: Plan
) -> None:
    events = []
    for index, model in enumerate(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] + [None]):
        props = {"app": "openchat-server", "chat_id": "c", "status": "completed", "duration_ms": 1}
        if model:
            props["model_id"] = model
        events.append(
            {
                "event": "chat_message_stream",
                "distinct_id": "u",
                "uuid": str(uuid.uuid4()),
                "timestamp": (START + timedelta(hours=index)).isoformat(),
                "properties": props,
            }
        )
    with loaded_store(openchat_plan, events, backend) as store:
        query = TrendsQuery(
            series=(Series("chat_message_stream"),),
            date_range=RANGE,
            breakdown="model_id",
            breakdown_limit=2,
        )
        counts = {
            item["breakdown_value"]: item["count"]
            for item in run_query(store, openchat_plan, query, START + timedelta(days=DAYS))[
                "results"
            ]
        }
        # When every value fits, they come most frequent first, then the "none" bucket.
        everything = replace(query, breakdown_limit=10)
        ordered = [
            (item["breakdown_value"], item["count"])
            for item in run_query(store, openchat_plan, everything, START + timedelta(days=DAYS))[
                "results"
            ]
        ]
    assert counts == {
        "a": 5,
        "b": 3,
        "$$_posthog_breakdown_other_$$": 3,
        "$$_posthog_breakdown_null_$$": 1,
    }
    assert ordered == [("a", 5), ("b", 3), ("c", 2), ("d", 1), ("$$_posthog_breakdown_null_$$", 1)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_is_the_rest_of_the_values_together_for_every_math(
    backend: str, openchat_plan: Plan
) -> None:
    """Sums, counts, minimums and maximums of `Other` are folded from its values' own;
    averages, medians and distinct persons are computed over its events again. Both
    give what the reference computes over the events themselves."""
    models = ["a", "a", "a", "b", "b", "c", "d", "e", "d", "e", "c"]
    durations = [5, 6, 7, 9, 2, 1, 50, 3, 8, 40, 4]
    events = [
        {
            "event": "chat_message_stream",
            "distinct_id": f"user-{index % 4}",
            "uuid": str(uuid.UUID(int=index + 1, version=4)),
            "timestamp": (START + timedelta(hours=index % 3, days=index % 2)).isoformat(),
            "properties": {
                "app": "openchat-server",
                "chat_id": "c",
                "duration_ms": duration,
                "model_id": model,
            },
        }
        for index, (model, duration) in enumerate(zip(models, durations, strict=True))
    ]
    with loaded_store(openchat_plan, events, backend) as store:
        for math, prop in MATHS:
            series = Series("chat_message_stream", math=math, math_property=prop)  # type: ignore[arg-type]
            query = TrendsQuery(
                (series,), date_range=RANGE, breakdown="model_id", breakdown_limit=2
            )
            got = {
                item["breakdown_value"]: item["data"]
                for item in run_query(store, openchat_plan, query, START + timedelta(days=DAYS))[
                    "results"
                ]
            }
            want = reference.trend(
                events, "chat_message_stream", [], math, prop, START, DAYS, "model_id", 2
            )
            assert got == {k: [round(v, 6) for v in values] for k, values in want.items()}, math


@pytest.mark.parametrize("backend", BACKENDS)
def test_compare_gives_the_previous_period_and_warnings_flag_broken_data(
    backend: str,
    openchat_plan: Plan,
) -> None:
    events = [
        {
            "event": "chat_message_stream",
            "distinct_id": "u",
            "uuid": str(uuid.uuid4()),
            "timestamp": (START + timedelta(days=d, hours=1)).isoformat(),
            "properties": {
                "app": "openchat-server",
                "chat_id": "c",
                "status": status,
                "duration_ms": 5,
                "model_id": "m",
            },
        }
        for d, status in [(-5, "completed"), (-4, "completed"), (1, "completed"), (2, "eror")]
    ]
    events.append(
        {
            "event": "chat.reaction",
            "distinct_id": "u",
            "uuid": str(uuid.uuid4()),
            "timestamp": (START + timedelta(days=1)).isoformat(),
            "properties": {},
        }
    )
    with loaded_store(openchat_plan, events, backend) as store:
        query = TrendsQuery(
            series=(
                Series("chat_message_stream", filters=(PropertyFilter("colour", "is_set"),)),
                Series("chat.reaction"),
            ),
            date_range=RANGE,
            compare=True,
        )
        result = run_query(store, openchat_plan, query, START + timedelta(days=DAYS))
        plain = TrendsQuery(series=(Series("chat_message_stream"),), date_range=RANGE, compare=True)
        compared = run_query(store, openchat_plan, plain, START + timedelta(days=DAYS))
    labels = {(r["label"], r["compare_label"]): r["count"] for r in compared["results"]}
    assert labels == {("chat_message_stream", "current"): 2, ("chat_message_stream", "previous"): 2}
    codes = {(w["code"], w["event"]) for w in result["warnings"]}
    assert ("invalid_share", "chat_message_stream") in codes
    assert ("unplanned_event", "chat.reaction") in codes
    assert ("unplanned_property", "chat_message_stream") in codes


def test_a_median_too_big_for_the_stores_memory_is_taken_part_of_the_range_at_a_time(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    """An exact median holds every value of a group in memory, which DuckDB cannot
    spill. At the smallest memory limit at which the daily trend of 300,000 streams over
    28 days runs, split into halves of its days until each fits, it gives every day's
    median as the reference computes it, while the month's one bucket does not fit (a
    503: there is nothing to split)."""
    first = datetime(2026, 11, 1, tzinfo=UTC)
    days = 28
    end = first + timedelta(days=days)
    events = [
        {
            "event": "chat_message_stream",
            "distinct_id": f"user-{i % 500}",
            "uuid": str(uuid.UUID(int=i + 1, version=4)),
            "timestamp": (first + timedelta(seconds=i * days * 86_400 // 300_000)).isoformat(),
            "properties": {
                "app": "openchat-server",
                "chat_id": "c",
                "status": "completed",
                "duration_ms": i * 7919 % 100_003,
                "model_id": MODELS[i % 3],
            },
        }
        for i in range(300_000)
    ]
    path = tmp_path / "events.duckdb"
    store = open_store(str(path), [openchat_plan])
    import_events(
        store, Project("openchat", openchat_plan, store, salt=b"s"), iter(events), lambda n: None
    )
    store.close()
    median = Series("chat_message_stream", math="median", math_property="duration_ms")

    def over(interval: Interval) -> TrendsQuery:
        month = DateRange(first.isoformat(), end.isoformat())
        return TrendsQuery((median,), interval, month, "model_id")

    # What a query needs varies from run to run with the engine's threads: the limit is
    # the smallest at which the daily trend runs.
    for megabytes in range(6, 33, 2):
        small = open_store(str(path), [openchat_plan], memory_limit=f"{megabytes}MB")
        try:
            got = run_query(small, openchat_plan, over("day"), end)["results"]
            with pytest.raises(StoreBusy):
                run_query(small, openchat_plan, over("month"), end)
            break
        except StoreBusy:
            continue
        finally:
            small.close()
    else:
        pytest.fail("no limit up to 32 MB has the memory for the daily trend")
    want = reference.trend(
        events, "chat_message_stream", [], "median", "duration_ms", first, days, "model_id"
    )
    assert {r["breakdown_value"]: r["data"] for r in got} == {
        key: [round(v, 6) for v in values] for key, values in want.items()
    }
