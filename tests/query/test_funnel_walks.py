"""The two funnel walks agree: the array walk picks the same attempt, row for row,
as the state machine (which the funnel tests check against the brute-force reference)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from eventplan.query import funnels


@st.composite
def funnel_rows(draw: st.DrawFn) -> tuple[funnels.FunnelShape, list[tuple[int, int, int]]]:
    steps = draw(st.integers(min_value=2, max_value=5))
    rows = []
    for actor in range(draw(st.integers(min_value=0, max_value=12))):
        for _ in range(draw(st.integers(min_value=1, max_value=10))):
            # Few distinct times, so equal timestamps and window edges are common.
            moment = draw(st.integers(min_value=0, max_value=12)) * 10
            rows.append((actor, moment, 1 << draw(st.integers(min_value=0, max_value=steps - 1))))
    window = draw(st.sampled_from([0, 10, 30, 1000]))
    rows.sort(key=lambda row: (row[0], row[1], row[2]))
    return funnels.FunnelShape(steps, window), rows


def arrays(rows: list[tuple[int, int, int]]) -> tuple[funnels.Ints, ...]:
    table = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return table[:, 0], table[:, 1], table[:, 2]


@settings(max_examples=400, deadline=None)
@given(funnel_rows())
def test_the_array_walk_reaches_what_the_state_machine_reaches(
    case: tuple[funnels.FunnelShape, list[tuple[int, int, int]]],
) -> None:
    shape, rows = case
    actors, times, masks = arrays(rows)
    assert funnels.can_vectorize(shape, masks) == bool(rows)
    exact = funnels.walk_exact(shape, actors, times, masks)
    fast = funnels.walk_vectorized(shape, actors, times, masks) if rows else exact
    assert fast.levels.tolist() == exact.levels.tolist()
    assert fast.rows.tolist() == exact.rows.tolist()


def test_the_first_attempt_to_reach_the_furthest_step_is_kept() -> None:
    # One actor: two attempts reach step 2; only the later one reaches step 3.
    rows = [(0, 0, 1), (0, 5, 2), (0, 10, 1), (0, 12, 2), (0, 14, 4), (0, 20, 4)]
    actors, times, masks = arrays(rows)
    for reached in (
        funnels.walk_exact(funnels.FunnelShape(3, 100), actors, times, masks),
        funnels.walk_vectorized(funnels.FunnelShape(3, 100), actors, times, masks),
    ):
        assert reached.levels.tolist() == [3]
        assert reached.rows.tolist() == [[2, 3, 4]]


def test_rows_matching_several_steps_or_strict_order_take_the_state_machine() -> None:
    _, _, masks = arrays([(0, 0, 1), (0, 1, 3)])
    assert not funnels.can_vectorize(funnels.FunnelShape(2, 100), masks)
    _, _, single = arrays([(0, 0, 1), (0, 1, 2)])
    assert funnels.can_vectorize(funnels.FunnelShape(2, 100), single)
    assert not funnels.can_vectorize(funnels.FunnelShape(2, 100, strict=True), single)
    assert not funnels.can_vectorize(funnels.FunnelShape(2, 100, exclusions=((2, 0, 1),)), single)
