"""Whatever a script posts as a PostHog query, the answer is a result or a 400 that
names what was wrong, never a 500: wrong types anywhere, values no
insight knows, names that are not in the plan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.errors import EventplanError
from eventplan.plan import Plan
from eventplan.query.engine import run_query
from eventplan.query.posthog import from_posthog
from eventplan.store import Store
from tests.conftest import BACKENDS, examples
from tests.query.conftest import loaded_store

WORDS = [
    "day", "hour", "week", "month", "minute", "total", "dau", "sum", "p90", "weekly_active",
    "exact", "regex", "gt", "is_set", "icontains", "-7d", "-30d", "all", "mStart", "2026-11-01",
    "chat.created", "chat.message_sent", "model_id", "latency_ms", "$browser", "A+B", "A/B",
    "ordered", "strict", "unordered", "first_touch", "step", "EventsNode", "event", "person",
]  # fmt: skip
ANY = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**20),
        st.floats(allow_nan=False),
        st.text(max_size=6),
        st.sampled_from(WORDS),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["key", "value", "kind", "event", "x"]), inner, max_size=3),
    ),
    max_leaves=5,
)


def field(likely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly what the field takes, sometimes anything at all."""
    return st.one_of(likely, likely, ANY)


def words(*chosen: str) -> st.SearchStrategy[str]:
    return st.sampled_from(chosen)


FILTER = st.fixed_dictionaries(
    {"key": field(words("model_id", "latency_ms", "$browser"))},
    optional={
        "value": ANY,
        "operator": field(words("exact", "is_not", "regex", "gt", "lt", "is_set", "icontains")),
        "type": field(st.just("event")),
    },
)
SERIES = st.fixed_dictionaries(
    {
        "kind": field(st.just("EventsNode")),
        "event": field(words("chat.created", "chat.message_sent", "$pageview")),
    },
    optional={
        "math": field(words("total", "dau", "sum", "avg", "median", "p90", "unique_group")),
        "math_property": field(words("latency_ms", "model_id")),
        "properties": field(st.lists(FILTER, max_size=2)),
        "custom_name": ANY,
        "math_group_type_index": ANY,
    },
)
DATE_RANGE = st.fixed_dictionaries(
    {},
    optional={
        "date_from": field(words("-7d", "-30d", "-1h", "all", "2026-11-01", "mStart")),
        "date_to": field(words("2026-12-01", "-1d")),
    },
)
BREAKDOWN = st.fixed_dictionaries(
    {},
    optional={
        "breakdown": field(words("model_id", "latency_ms")),
        "breakdown_type": field(st.just("event")),
        "breakdown_limit": field(st.integers(-5, 50)),
    },
)
COMMON = {
    "dateRange": field(DATE_RANGE),
    "breakdownFilter": field(BREAKDOWN),
    "properties": field(st.lists(FILTER, max_size=2)),
}
TRENDS = st.fixed_dictionaries(
    {"kind": st.just("TrendsQuery"), "series": field(st.lists(SERIES, max_size=3))},
    optional={
        **COMMON,
        "interval": field(words("hour", "day", "week", "month")),
        "trendsFilter": field(
            st.fixed_dictionaries({}, optional={"formula": field(words("A+B", "A/B", "A-"))})
        ),
        "compareFilter": field(st.fixed_dictionaries({}, optional={"compare": ANY})),
    },
)
EXCLUSION = st.fixed_dictionaries(
    {"event": field(words("chat.created", "$pageview"))},
    optional={
        "funnelFromStep": field(st.integers(-2, 4)),
        "funnelToStep": field(st.integers(-2, 4)),
    },
)
FUNNELS = st.fixed_dictionaries(
    {"kind": st.just("FunnelsQuery"), "series": field(st.lists(SERIES, max_size=4))},
    optional={
        **COMMON,
        "aggregation_group_type_index": field(st.just(0)),
        "funnelsFilter": field(
            st.fixed_dictionaries(
                {},
                optional={
                    "funnelWindowInterval": field(st.integers(-3, 100)),
                    "funnelWindowIntervalUnit": field(words("day", "hour", "minute")),
                    "funnelOrderType": field(words("ordered", "strict")),
                    "exclusions": field(st.lists(EXCLUSION, max_size=2)),
                    "breakdownAttributionType": field(words("first_touch", "last_touch", "step")),
                    "breakdownAttributionValue": field(st.integers(-2, 4)),
                },
            )
        ),
    },
)


@pytest.fixture(params=BACKENDS, scope="module")
def store(request: pytest.FixtureRequest, openchat_plan: Plan) -> Iterator[Store]:
    now = datetime.now(UTC)
    events = [
        {
            "event": name,
            "distinct_id": f"p{i % 7}",
            "timestamp": (now - timedelta(hours=i)).isoformat(),
            "properties": {"model_id": f"m{i % 3}", "latency_ms": i * 10},
        }
        for i in range(40)
        for name in ("chat.created", "chat.message_sent")
    ]
    with loaded_store(openchat_plan, events, request.param) as loaded:
        yield loaded


def test_any_posthog_query_is_answered_or_refused_with_a_4xx_error(
    store: Store, openchat_plan: Plan
) -> None:
    @settings(
        max_examples=examples(store.dialect, 400),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(st.one_of(TRENDS, FUNNELS))
    def check(body: dict[str, Any]) -> None:
        try:
            query = from_posthog(body)
            assert not isinstance(query, str)
            run_query(store, openchat_plan, query)
        except EventplanError as refused:  # the API answers its status with its message
            assert 400 <= refused.status < 500 and str(refused)

    check()
