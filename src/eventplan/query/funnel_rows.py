"""A funnel walked over the store: its rows read in sort order, a batch at a time.

One statement gives every row in the date range that fills a step or an exclusion,
sorted by actor, then time, then step (the lowest step bit first, so a page that fires
two steps at once converts, as in PostHog). The rows of a funnel over 10 M events are
millions, so the sort key is kept to two 64-bit numbers, which DuckDB sorts several
times faster than wider keys: a hash of the actor, and the time (from the range's
start) with the step's number in its low bits. Rows equal in both are rare; they are
put in the order of their step bits, then of their breakdown label, here, after the
sort (rows equal in all of those give the same counts, times and groups in either
order). A second hash tells whether two actors shared the first, and then the rows
are sorted on the actor itself.

The sorted rows are read a batch at a time, and each batch's whole actors are walked
at once (an actor whose rows go on in the next batch waits for it). What is kept is
one entry per actor, so the server never holds the millions of rows itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from eventplan.query import funnels
from eventplan.query.model import BREAKDOWN_NULL, FunnelsQuery, Series
from eventplan.query.sql import Compiler
from eventplan.store import Store
from eventplan.store.base import QueryError, epoch_us

Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]

MAX_FLAGS = 60  # steps and exclusions together: one bit each in a 64-bit mask


@dataclass(frozen=True)
class Journeys:
    """One entry per actor who entered the funnel (in no particular order)."""

    levels: Ints  # steps reached, 1..steps
    times: Ints  # (actors, steps): when each step was filled (epoch µs), 0 past the level
    labels: list[str]  # the breakdown's labels
    label_of_actor: Ints  # the label at the attributed step; -1 when it was not reached


def walk_funnel(
    store: Store,
    compiler: Compiler,
    query: FunnelsQuery,
    shape: funnels.FunnelShape,
    start: datetime,
    end: datetime,
) -> Journeys:
    flags = len(query.steps) + len(query.exclusions)
    if flags > MAX_FLAGS:
        raise QueryError(f"a funnel takes at most {MAX_FLAGS} steps and exclusions together")
    shift = flags.bit_length()  # the step numbers 0..flags-1, and `flags` for no step
    start_us = epoch_us(start)
    select, params = _statement(compiler, query, start_us, shift)
    params += [start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)]
    walker = _Walker(shape, _attribution(query), start_us, shift, hash_is_actor=True)
    try:
        walker.all(store.arrow_batches(select + "h1, k", params))
    except _SharedHash:
        walker = _Walker(shape, _attribution(query), start_us, shift, hash_is_actor=False)
        walker.all(store.arrow_batches(select + "actor, k", params))
    return walker.journeys()


def _attribution(query: FunnelsQuery) -> int | None:
    """The step whose row gives an actor's breakdown label: 0 for the first touch, the
    attribution step, or -1 for the last step reached; None without a breakdown."""
    if query.breakdown is None:
        return None
    return {"first_touch": 0, "last_touch": -1}.get(
        query.breakdown_attribution, query.attribution_step
    )


def _statement(
    compiler: Compiler, query: FunnelsQuery, start_us: int, shift: int
) -> tuple[str, list[Any]]:
    """The statement up to its ORDER BY's list, and its parameters before the time
    range's two."""
    dialect = compiler.dialect
    params: list[Any] = []
    steps = [*query.steps, *(Series(event=x.event, filters=x.filters) for x in query.exclusions)]
    flags = [f"({compiler.series_condition(step, query, params)})" for step in steps]
    actor = dialect.person if query.aggregate_by == "person" else compiler.group(query.group_type)
    breakdown = compiler.text(query.breakdown) if query.breakdown else "NULL"
    # A strict funnel must see every event of the actor (any other event resets it).
    if query.order == "strict":
        scope, scope_params = "1 = 1", []
        if query.project is not None:
            scope, scope_params = "e.project = ?", [query.project]
    else:
        scope, scope_params = " OR ".join(flags), list(params)
    # One bit per step (then per exclusion): the flags are computed once, in SQL.
    mask = " + ".join(
        f"(CASE WHEN {flag} THEN {1 << i} ELSE 0 END)" for i, flag in enumerate(flags)
    )
    step_number = (
        f"CASE WHEN mask = 0 THEN {len(flags)} ELSE {dialect.lowest_bit_index('mask')} END"
    )
    first_hash, second_hash = dialect.hashes("actor")
    select = (
        f"SELECT {first_hash} AS h1, {second_hash} AS h2, "
        f"(ts - {start_us}) * {1 << shift} + {step_number} AS k, bv, mask FROM (SELECT "
        f"{actor} AS actor, {dialect.epoch_us('e.timestamp')} AS ts, {breakdown} AS bv, "
        f"{mask} AS mask FROM {dialect.events_with_person} "
        f"WHERE ({scope}) AND e.timestamp >= ? AND e.timestamp < ? "
        + (f"AND {actor} IS NOT NULL" if query.aggregate_by == "group" else "")
        + ") ORDER BY "
    )
    return select, params + scope_params


class _SharedHash(Exception):
    """Two actors share the first hash: their rows may be mixed in its order."""


@dataclass
class _Rows:
    """Sorted rows: where an actor starts, the sort key, step bits, label numbers."""

    starts: Flags
    keys: Ints
    masks: Ints
    codes: Ints

    def __len__(self) -> int:
        return len(self.keys)

    def cut(self, at: int) -> tuple[_Rows, _Rows]:
        return (
            _Rows(self.starts[:at], self.keys[:at], self.masks[:at], self.codes[:at]),
            _Rows(self.starts[at:], self.keys[at:], self.masks[at:], self.codes[at:]),
        )

    def then(self, more: _Rows) -> _Rows:
        if not len(self):
            return more
        return _Rows(
            np.concatenate([self.starts, more.starts]),
            np.concatenate([self.keys, more.keys]),
            np.concatenate([self.masks, more.masks]),
            np.concatenate([self.codes, more.codes]),
        )


@dataclass
class _Walker:
    """Walks the sorted rows a batch of whole actors at a time; keeps one entry per
    actor."""

    shape: funnels.FunnelShape
    attribution: int | None  # see `_attribution`; None without a breakdown
    start_us: int
    shift: int
    hash_is_actor: bool  # False when rows come sorted on the actor itself
    labels: dict[str, int] = field(default_factory=dict)
    waiting: _Rows | None = None  # the last actor's rows so far: more may follow
    last: tuple[int, int] | None = None  # the previous batch's last two hashes
    levels: list[Ints] = field(default_factory=list)
    times: list[Ints] = field(default_factory=list)
    label_of_actor: list[Ints] = field(default_factory=list)

    def all(self, batches: Iterable[pa.RecordBatch]) -> None:
        for batch in batches:
            if batch.num_rows:
                self.add(batch)
        if self.waiting is not None:
            self._walk(self.waiting)

    def add(self, batch: pa.RecordBatch) -> None:
        first = _integers(batch.column("h1")).astype(np.uint64, copy=False)
        second = _integers(batch.column("h2")).astype(np.uint64, copy=False)
        before = self.last or (None, None)
        first_changes, second_changes = _changes(first, before[0]), _changes(second, before[1])
        if self.hash_is_actor and np.any(second_changes & ~first_changes):
            raise _SharedHash
        self.last = (int(first[-1]), int(second[-1]))
        rows = _Rows(
            first_changes | second_changes,
            _integers(batch.column("k")).astype(np.int64, copy=False),
            _integers(batch.column("mask")).astype(np.int64, copy=False),
            self._label_codes(batch.column("bv")),
        )
        if self.waiting is not None:
            rows = self.waiting.then(rows)
        whole, self.waiting = rows.cut(int(np.flatnonzero(rows.starts)[-1]))
        if len(whole):
            self._walk(whole)

    def _label_codes(self, values: pa.Array) -> Ints:
        """Each value's label number. Labels, not values, make the breakdown's groups:
        two values may read the same as text; NULL reads as PostHog's null label."""
        null = self.labels.setdefault(BREAKDOWN_NULL, len(self.labels))
        if self.attribution is None or values.null_count == len(values):
            return np.full(len(values), null, dtype=np.int64)
        encoded = pc.dictionary_encode(values, null_encoding="encode")  # NULL: an entry
        numbers = [
            null if value is None else self.labels.setdefault(str(value), len(self.labels))
            for value in encoded.dictionary.to_pylist()
        ]
        codes: Ints = np.asarray(numbers, dtype=np.int64)[_integers(encoded.indices)]
        return codes

    def _walk(self, rows: _Rows) -> None:
        """Walk whole actors' rows; keep each entering actor's level, step times and
        attributed label."""
        order = _settled_ties(rows, list(self.labels))
        if order is not None:
            rows = _Rows(rows.starts, rows.keys[order], rows.masks[order], rows.codes[order])
        times = (rows.keys >> self.shift) + self.start_us
        actors = np.cumsum(rows.starts, dtype=np.int64)  # dense numbers, from where each starts
        reached = funnels.walk(self.shape, actors, times, rows.masks)
        filled = reached.rows
        self.levels.append(reached.levels)
        self.times.append(np.where(filled >= 0, times[np.maximum(filled, 0)], 0))
        self.label_of_actor.append(self._attributed(reached, rows.codes))

    def _attributed(self, reached: funnels.Reached, codes: Ints) -> Ints:
        if self.attribution is None:
            return np.zeros(len(reached.levels), dtype=np.int64)
        if self.attribution == -1:  # the last step reached
            value_rows = reached.rows[np.arange(len(reached.levels)), reached.levels - 1]
        else:
            value_rows = reached.rows[:, self.attribution]
        # Never reached the attribution step: PostHog leaves them out.
        return np.where(value_rows >= 0, codes[np.maximum(value_rows, 0)], -1)

    def journeys(self) -> Journeys:
        steps = self.shape.steps
        return Journeys(
            levels=_joined(self.levels, np.int64),
            times=_joined(self.times, np.int64).reshape(-1, steps),
            labels=list(self.labels),
            label_of_actor=_joined(self.label_of_actor, np.int64),
        )


def _integers(column: pa.Array) -> npt.NDArray[np.integer[Any]]:
    """An Arrow column of integers without nulls as numpy, on the same memory. Not
    `to_numpy`: where pandas is installed, pyarrow imports it for that, and pandas
    holds 34 MB of a server's memory for as long as it runs."""
    if not pa.types.is_integer(column.type) or column.null_count:
        raise TypeError(f"expected integers without nulls, not {column.type}")
    signed = "i" if pa.types.is_signed_integer(column.type) else "u"
    dtype = np.dtype(f"{signed}{column.type.bit_width // 8}")
    return np.frombuffer(column.buffers()[1], dtype, len(column), column.offset * dtype.itemsize)


def _changes(values: npt.NDArray[np.uint64], before: int | None) -> Flags:
    """True where a value differs from the one before it (the batch's first value is
    compared with the previous batch's last)."""
    changes = np.empty(len(values), dtype=bool)
    changes[0] = before is None or int(values[0]) != before
    changes[1:] = values[1:] != values[:-1]
    return changes


def _joined(parts: list[Ints], dtype: type) -> Ints:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _settled_ties(rows: _Rows, labels: list[str]) -> Ints | None:
    """The order that puts rows equal in actor, time and step by their step bits, then
    their breakdown label; None when no rows are equal."""
    keys = rows.keys
    tied = np.flatnonzero(~rows.starts[1:] & (keys[1:] == keys[:-1]))  # row i+1 ties row i
    if not len(tied):
        return None
    starts = np.ones(len(keys), dtype=bool)
    starts[tied + 1] = False
    run = np.cumsum(starts)
    members = np.union1d(tied, tied + 1)
    rank = np.empty(len(labels), dtype=np.int64)
    rank[np.argsort(np.array(labels, dtype=object), kind="stable")] = np.arange(len(labels))
    within = np.lexsort((rank[rows.codes[members]], rows.masks[members], run[members]))
    order = np.arange(len(keys))
    order[members] = members[within]
    return order
