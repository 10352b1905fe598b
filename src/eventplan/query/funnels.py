"""The funnel walk: which steps each actor reached, and with which events.

Both walks take the funnel's rows sorted by actor, then time, then step (the lowest
step bit first, so a page that fires two steps at once converts), and give the same
answer: for every actor who entered the funnel, the first attempt to reach the
furthest step, as the row that filled each of its steps. That is PostHog's rule:
each step is measured from the attempt's step-1 time (the conversion window), a
later step may share a timestamp with the one before, and one event fills at most
one step of an attempt.

`walk_exact` follows every event through a small state machine, in Python, and
handles every feature (strict order, exclusions, events matching several steps).
`walk_vectorized` gets the same answer with array operations, one pass per step,
for the common funnel: ordered, no exclusions, each row matching exactly one step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FunnelShape:
    """What the walk needs to know about the funnel."""

    steps: int
    window_us: int
    strict: bool = False
    # Per exclusion: its bit in the row mask and the steps it guards [from, to).
    exclusions: tuple[tuple[int, int, int], ...] = ()


@dataclass(frozen=True)
class Reached:
    """One entry per actor who entered the funnel, in actor order."""

    levels: Ints  # steps reached, 1..steps
    rows: Ints  # (actors, steps): the row that filled each step, -1 past the level


def can_vectorize(shape: FunnelShape, masks: Ints) -> bool:
    if shape.strict or shape.exclusions or not len(masks):
        return False
    # Every row matches exactly one step: one bit set, within the steps' bits.
    return bool(np.all((masks > 0) & (masks < 1 << shape.steps) & ((masks & (masks - 1)) == 0)))


def walk(shape: FunnelShape, actors: Ints, times: Ints, masks: Ints) -> Reached:
    if can_vectorize(shape, masks):
        return walk_vectorized(shape, actors, times, masks)
    return walk_exact(shape, actors, times, masks)


def walk_vectorized(shape: FunnelShape, actors: Ints, times: Ints, masks: Ints) -> Reached:
    """One pass per step. The walk's state for step i is "the latest attempt to have
    reached it", which only changes at rows that fill step i; so row r fills step i
    exactly when the latest fill of step i-1 before r belongs to the same actor and
    started within the window. Fills of step i are then a subset of its rows, found
    with one binary search into the fills of step i-1."""
    fills: list[Ints] = []  # per step: rows that filled it, ascending
    parents: list[Ints] = []  # per step: index of the fill of the step before it extended
    starts: list[Ints] = []  # per step: the attempt's step-1 time
    first = np.flatnonzero(masks == 1)
    fills.append(first)
    parents.append(np.full(len(first), -1, dtype=np.int64))
    starts.append(times[first])
    for step in range(1, shape.steps):
        candidates = np.flatnonzero(masks == 1 << step)
        previous = fills[-1]
        before = np.searchsorted(previous, candidates) - 1
        found = before >= 0
        safe = np.where(found, before, 0)
        if len(previous):
            found &= actors[previous[safe]] == actors[candidates]
            found &= times[candidates] - starts[-1][safe] <= shape.window_us
        else:
            found[:] = False
        fills.append(candidates[found])
        parents.append(before[found])
        starts.append(starts[-1][safe[found]])
    return _furthest(shape.steps, actors, fills, parents)


def _furthest(steps: int, actors: Ints, fills: list[Ints], parents: list[Ints]) -> Reached:
    """Each actor's first fill of its furthest step, traced back to step 1."""
    chosen_actor: list[Ints] = []
    chosen_level: list[Ints] = []
    chosen_rows: list[Ints] = []
    seen = np.zeros(int(actors[-1]) + 1 if len(actors) else 0, dtype=bool)
    for step in range(steps - 1, -1, -1):
        filled = fills[step]
        owners = actors[filled]
        # The first fill per actor (fills ascend, so actors come grouped).
        firsts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]]) if len(owners) else owners
        firsts = firsts[~seen[owners[firsts]]]
        seen[owners[firsts]] = True
        rows = np.full((len(firsts), steps), -1, dtype=np.int64)
        index = firsts
        for back in range(step, -1, -1):
            rows[:, back] = fills[back][index]
            index = parents[back][index]
        chosen_actor.append(owners[firsts])
        chosen_level.append(np.full(len(firsts), step + 1, dtype=np.int64))
        chosen_rows.append(rows)
    order = np.argsort(np.concatenate(chosen_actor), kind="stable")
    return Reached(
        np.concatenate(chosen_level)[order],
        np.concatenate(chosen_rows)[order].reshape(-1, steps),
    )


@dataclass
class _Attempt:
    start: int  # the step-1 time, microseconds
    rows: list[int] = field(default_factory=list)
    excluded: bool = False


def walk_exact(shape: FunnelShape, actors: Ints, times: Ints, masks: Ints) -> Reached:
    """Every row through PostHog's state machine, one actor at a time."""
    levels: list[int] = []
    rows: list[list[int]] = []
    actor_list, time_list, mask_list = actors.tolist(), times.tolist(), masks.tolist()
    begin = 0
    total = len(actor_list)
    while begin < total:
        end = begin + 1
        while end < total and actor_list[end] == actor_list[begin]:
            end += 1
        attempt = _furthest_attempt(shape, time_list, mask_list, begin, end)
        if attempt is not None and not attempt.excluded:
            levels.append(len(attempt.rows))
            rows.append(attempt.rows + [-1] * (shape.steps - len(attempt.rows)))
        begin = end
    return Reached(
        np.array(levels, dtype=np.int64),
        np.array(rows, dtype=np.int64).reshape(-1, shape.steps),
    )


def _furthest_attempt(
    shape: FunnelShape, times: list[int], masks: list[int], begin: int, end: int
) -> _Attempt | None:
    steps, window = shape.steps, shape.window_us
    later_steps = ((1 << steps) - 1) & ~1  # the bits of steps 2 and on
    downward = range(steps - 1, 0, -1)
    entered: list[_Attempt | None] = [None] * steps
    result: _Attempt | None = None
    for row in range(begin, end):
        ts, bits = times[row], masks[row]
        for bit, from_step, to_step in shape.exclusions:
            if not bits >> bit & 1:
                continue
            for i in range(from_step, min(to_step, steps)):
                partial = entered[i]
                if partial is not None and ts - partial.start <= window:
                    partial.excluded = True
        advanced = False
        for i in downward if bits & later_steps else ():
            previous = entered[i - 1]
            if bits >> i & 1 and previous is not None and ts - previous.start <= window:
                entered[i] = _Attempt(previous.start, [*previous.rows, row], previous.excluded)
                if result is None or i + 1 > len(result.rows):
                    result = entered[i]
                advanced = True
                break
        if shape.strict and not advanced:
            entered = [None] * steps
        if not advanced and bits & 1:
            entered[0] = _Attempt(ts, [row])
            if result is None:
                result = entered[0]
    return result
