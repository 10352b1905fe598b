"""The one query engine: trends and funnels over the store, with plan-aware warnings.

The CLI, the HTTP API, dashboards and alerts all call `run_query`; none of them
computes a number on its own.
"""

from __future__ import annotations

import ast
import operator
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt

from eventplan.plan.model import Plan
from eventplan.query import funnels
from eventplan.query.funnel_rows import Journeys, walk_funnel
from eventplan.query.labels import (
    breakdown_label,
    breakdown_property,
    filter_text,
    label_results,
)
from eventplan.query.model import (
    BREAKDOWN_NULL,
    BREAKDOWN_OTHER,
    FunnelsQuery,
    Query,
    Series,
    TrendsQuery,
    Warning,
)
from eventplan.query.sql import EVENTS, Aliases, Compiler, resolve_range
from eventplan.store import Store
from eventplan.store.base import QueryError, StoreBusy

INVALID_SHARE_WARNING = 0.05  # warn when more than 5% of a series' events break the plan


@dataclass
class Context:
    store: Store
    plan: Plan | None
    now: datetime
    project: str | None = None  # the project whose events count; None: every project

    @property
    def compiler(self) -> Compiler:
        return Compiler(self.store.columns, self.store.dialect, aliases=Aliases.of(self.plan))


def run_query(
    store: Store, plan: Plan | None, query: Query, now: datetime | None = None
) -> dict[str, Any]:
    context = Context(store, plan, now or datetime.now(UTC), query.project)
    if isinstance(query, TrendsQuery):
        return trends(context, query)
    return funnel(context, query)


# -- trends -----------------------------------------------------------------------------


def trends(ctx: Context, query: TrendsQuery) -> dict[str, Any]:
    if not query.series:
        raise QueryError("a trends query needs at least one series")
    start, end, buckets = resolve_range(query.date_range, query.interval, ctx.now)
    counts: dict[str, int] = {}  # events per breakdown value, shown or not
    results = _trend_results(ctx, query, start, end, buckets, counts)
    if query.compare:
        span = end - start
        previous = _trend_results(ctx, query, start - span, start, [b - span for b in buckets], {})
        for item in results:
            item["compare_label"] = "current"
        for item in previous:
            item["compare_label"] = "previous"
            item["labels"] = [_label(b + span) for b in item["days_raw"]]
        results = results + previous
    for item in results:
        item.pop("days_raw", None)
    label_results(results, ctx.plan, query.breakdown, query.series[0].event)
    return {
        "kind": "TrendsQuery",
        "interval": query.interval,
        "date_from": start.isoformat() + "Z",
        "date_to": end.isoformat() + "Z",
        "results": results,
        "warnings": [
            *warnings_for(ctx, list(query.series), query.breakdown, start, end),
            *invalid_breakdown(ctx, query.series[0].event, query.breakdown, counts, "events"),
        ],
    }


def _trend_results(
    ctx: Context,
    query: TrendsQuery,
    start: datetime,
    end: datetime,
    buckets: list[datetime],
    counts: dict[str, int],
) -> list[dict[str, Any]]:
    """The series' results; `counts` gets the events of each breakdown value."""
    top: list[str] | None = None
    rows: list[tuple[Any, ...]] | None = None
    if query.breakdown is not None:
        rows = _value_rows(ctx, query, start, end, buckets, counts)
        top = _top_values(query, counts)
        if BREAKDOWN_OTHER in top:  # the rest of the values are one group
            rows = _folded(rows, top, query.series)
    if rows is None:
        params: list[Any] = []  # in the order the placeholders appear: SELECT, then WHERE
        breakdown = _breakdown_sql(ctx.compiler, query.breakdown, top, params)
        rows = _series_rows(ctx, query, breakdown, params, start, end, buckets)
    per_series = [
        _bucketed([(row[0], row[1], row[2 + number]) for row in rows], top, buckets)
        for number in range(len(query.series))
    ]
    labels, days = [_label(b) for b in buckets], [b.isoformat() for b in buckets]
    if query.formula:
        return _formula_results(query, per_series, top, labels, days, buckets)
    return [
        _result(series.label, series, _key(key, top), labels, days, values[key], buckets)
        for series, values in zip(query.series, per_series, strict=True)
        for key in sorted(values, key=_breakdown_order(top))
    ]


# How two groups' aggregates make the aggregate of both, for the maths where they can.
_FOLDS: dict[str, Callable[[float, float], float]] = {
    "total": operator.add,
    "sum": operator.add,
    "min": min,
    "max": max,
}


def _folded(
    rows: list[tuple[Any, ...]], top: list[str], series: tuple[Series, ...]
) -> list[tuple[Any, ...]] | None:
    """The rows with every value past the top ones folded into `Other`; None when a
    series' math cannot be folded from its groups' aggregates (an average, a median,
    distinct persons): those need the events again."""
    if any(s.math not in _FOLDS for s in series):
        return None
    folds = [_FOLDS[s.math] for s in series]
    shown = set(top)
    kept: list[tuple[Any, ...]] = []
    other: dict[Any, list[Any]] = {}  # per bucket
    for bucket, value, *aggregates in rows:
        if value in shown:
            kept.append((bucket, value, *aggregates))
            continue
        folded = other.setdefault(bucket, [None] * len(aggregates))
        for i, (fold, aggregate) in enumerate(zip(folds, aggregates, strict=True)):
            if aggregate is not None:
                folded[i] = aggregate if folded[i] is None else fold(folded[i], aggregate)
    return kept + [(bucket, BREAKDOWN_OTHER, *values) for bucket, values in other.items()]


def _key(key: str, top: list[str] | None) -> str | None:
    """A result's breakdown value: None when the query has no breakdown."""
    return key if top is not None else None


def _bucketed(
    rows: list[tuple[Any, ...]], top: list[str] | None, buckets: list[datetime]
) -> dict[str, list[float]]:
    """A series' (bucket, breakdown value, value) rows as one list per breakdown value
    ('' without a breakdown), a value per bucket; every top value, even with none."""
    index = {bucket: i for i, bucket in enumerate(buckets)}
    values = {key: [0.0] * len(buckets) for key in (top if top is not None else [""])}
    for bucket, breakdown_value, value in rows:
        slot = index.get(_naive_utc(bucket))
        if slot is None:
            continue
        key = "" if top is None else str(breakdown_value)
        values.setdefault(key, [0.0] * len(buckets))[slot] = float(value or 0)
    return values


def _formula_results(
    query: TrendsQuery,
    per_series: list[dict[str, list[float]]],
    top: list[str] | None,
    labels: list[str],
    days: list[str],
    buckets: list[datetime],
) -> list[dict[str, Any]]:
    """One result per breakdown value: the formula over the series, bucket by bucket."""
    assert query.formula is not None
    formula = compile_formula(query.formula, len(query.series))
    keys = sorted({k for values in per_series for k in values}, key=_breakdown_order(top))
    results = []
    for key in keys:
        columns = [values.get(key, [0.0] * len(buckets)) for values in per_series]
        data = [formula([column[i] for column in columns]) for i in range(len(buckets))]
        results.append(_result(query.formula, None, _key(key, top), labels, days, data, buckets))
    return results


def histogram(
    store: Store, plan: Plan | None, query: TrendsQuery, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The first series' events by their breakdown property's power-of-two bucket
    (`low` ≤ value < 2 × `low`; 0 for values ≤ 0): every event with a number there,
    not only a breakdown's top values."""
    if not query.series or query.breakdown is None:
        raise QueryError("a histogram needs a series and a numeric breakdown property")
    ctx = Context(store, plan, now or datetime.now(UTC), query.project)
    start, end, _ = resolve_range(query.date_range, query.interval, ctx.now)
    compiler = ctx.compiler
    value = compiler.number(query.breakdown)
    params: list[Any] = []
    where = compiler.series_condition(query.series[0], query, params)
    low = f"CASE WHEN {value} <= 0 THEN 0 ELSE pow(2, floor(log2({value}))) END"
    _, rows = store.sql(
        f"SELECT {low} AS low, count(*) FROM {EVENTS} WHERE {where} "
        f"AND {value} IS NOT NULL AND e.timestamp >= ? AND e.timestamp < ? "
        "GROUP BY low ORDER BY low",
        [*params, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)],
    )
    return [{"low": float(low), "count": int(count)} for low, count in rows]


def _series_rows(
    ctx: Context,
    query: TrendsQuery,
    breakdown: str,
    params: list[Any],
    start: datetime,
    end: datetime,
    buckets: list[datetime],
    extra: str = "",
) -> list[tuple[Any, ...]]:
    """(bucket, breakdown value, each series' aggregate[, extra]): one statement reads
    the events of every series once."""
    compiler = ctx.compiler
    conditions: list[tuple[str, list[Any]]] = []
    for series in query.series:
        series_params: list[Any] = []
        conditions.append((compiler.series_condition(series, query, series_params), series_params))
    if len(query.series) == 1:
        aggregates = [compiler.aggregate(query.series[0])]
        where, where_params = conditions[0]
    else:  # each series' aggregate over its own events
        aggregates = []
        for series, (condition, series_params) in zip(query.series, conditions, strict=True):
            aggregates.append(compiler.aggregate(series, condition))
            params = params + series_params
        where = " OR ".join(f"({condition})" for condition, _ in conditions)
        where_params = [value for _, series_params in conditions for value in series_params]
    # The person join only when persons are counted.
    counts_persons = any(series.math == "dau" for series in query.series)
    source = compiler.dialect.events_with_person if counts_persons else EVENTS
    sql = (
        f"SELECT {compiler.dialect.bucket(query.interval)} AS bucket, {breakdown} AS bv, "
        f"{', '.join(aggregates)}{extra} FROM {source} "
        f"WHERE ({where}) AND e.timestamp >= ? AND e.timestamp < ? GROUP BY ALL"
    )
    return _rows_in_parts(ctx.store, sql, params + where_params, start, end, buckets)


def _rows_in_parts(
    store: Store,
    sql: str,
    params: list[Any],
    start: datetime,
    end: datetime,
    buckets: list[datetime],
) -> list[tuple[Any, ...]]:
    """`sql`'s rows over [start, end); when the store has not the memory for them at
    once, over each half of the buckets in turn. Every aggregate is per bucket, so the
    halves' rows are the whole's. An exact median keeps all of a group's values in
    memory: over 10 M events, at a server's memory limit, one month may not fit where
    two fortnights do."""
    try:
        return store.sql(sql, [*params, start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)])[1]
    except StoreBusy:
        inside = [bucket for bucket in buckets if start < bucket < end]
        if not inside:
            raise  # one bucket: nothing to split
        middle = inside[len(inside) // 2]
        return _rows_in_parts(store, sql, params, start, middle, inside) + _rows_in_parts(
            store, sql, params, middle, end, inside
        )


def _value_rows(
    ctx: Context,
    query: TrendsQuery,
    start: datetime,
    end: datetime,
    buckets: list[datetime],
    counts: dict[str, int],
) -> list[tuple[Any, ...]]:
    """The series grouped by the breakdown's value itself, counting the events of each
    value as it goes (into `counts`): the top values come from the same pass, and when
    there are no more values than the limit, these rows are the answer."""
    assert query.breakdown is not None
    breakdown = ctx.compiler.text(query.breakdown)
    rows = _series_rows(ctx, query, breakdown, [], start, end, buckets, extra=", count(*)")
    totals: dict[Any, int] = defaultdict(int)
    for row in rows:
        totals[row[1]] += int(row[-1])
    counts.update({BREAKDOWN_NULL if v is None else str(v): n for v, n in totals.items()})
    return [(row[0], BREAKDOWN_NULL if row[1] is None else str(row[1]), *row[2:-1]) for row in rows]


def _naive_utc(moment: datetime) -> datetime:
    """Buckets compare as naive UTC, whichever way an engine returns them."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _result(
    label: str,
    series: Series | None,
    breakdown: str | None,
    labels: list[str],
    days: list[str],
    data: list[float],
    buckets: list[datetime],
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "label": label if breakdown is None else f"{label} - {breakdown}",
        "labels": labels,
        "days": days,
        "days_raw": buckets,
        "data": [round(value, 6) for value in data],
        "count": round(sum(data), 6),
        "average": round(sum(data) / len(data), 6) if data else 0.0,  # per interval
    }
    if series is not None:
        item["action"] = {
            "id": series.event,
            "math": series.math,
            "math_property": series.math_property,
        }
    if breakdown is not None:
        item["breakdown_value"] = breakdown
    return item


def _label(bucket: datetime) -> str:
    return bucket.strftime("%-d-%b-%Y") if bucket.hour == 0 else bucket.strftime("%-d-%b %H:%M")


def _breakdown_order(top: list[str] | None) -> Callable[[str], tuple[int, str]]:
    order = {value: i for i, value in enumerate(top or [])}
    return lambda key: (order.get(key, len(order)), key)


def _breakdown_sql(
    compiler: Compiler, key: str | None, top: list[str] | None, params: list[Any]
) -> str:
    if key is None or top is None:
        return "NULL"
    expr = compiler.text(key)
    named = [value for value in top if value not in (BREAKDOWN_OTHER, BREAKDOWN_NULL)]
    marks = ", ".join("?" for _ in named) or "NULL"
    params.extend(named)
    return (
        f"CASE WHEN {expr} IS NULL THEN '{BREAKDOWN_NULL}' "
        f"WHEN {expr} IN ({marks}) THEN {expr} ELSE '{BREAKDOWN_OTHER}' END"
    )


def _top_values(query: TrendsQuery, counts: dict[str, int]) -> list[str]:
    """The breakdown values to show, from every value's events: the most frequent, then
    the "other" and "none" groups."""
    named = sorted((v for v in counts if v != BREAKDOWN_NULL), key=lambda v: (-counts[v], v))
    top = named[: query.breakdown_limit]
    if len(named) > len(top):
        top.append(BREAKDOWN_OTHER)
    if BREAKDOWN_NULL in counts:
        top.append(BREAKDOWN_NULL)
    return top


_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: a / b if b else 0.0,  # PostHog shows 0 where it would divide by 0
}


def compile_formula(text: str, series_count: int) -> Callable[[list[float]], float]:
    """`A / B * 100` over series letters, checked once, evaluated per point."""
    try:
        tree = ast.parse(text.upper(), mode="eval")
    except SyntaxError as exc:
        raise QueryError(f"formula {text!r} does not parse: {exc.msg}") from exc
    letters = {chr(ord("A") + i): i for i in range(series_count)}

    def build(node: ast.AST) -> Callable[[list[float]], float]:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            left, right, apply = build(node.left), build(node.right), _OPERATORS[type(node.op)]
            return lambda values: apply(left(values), right(values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = build(node.operand)
            return lambda values: -inner(values)
        if isinstance(node, ast.Name) and node.id in letters:
            slot = letters[node.id]
            return lambda values: values[slot]
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            constant = float(node.value)
            return lambda values: constant
        raise QueryError(
            f"formula {text!r}: only + - * / over series letters "
            f"{', '.join(letters)} and numbers are allowed"
        )

    return build(tree.body)


# -- funnels ------------------------------------------------------------------------------


def funnel(ctx: Context, query: FunnelsQuery) -> dict[str, Any]:
    if len(query.steps) < 2:
        raise QueryError("a funnel needs at least two steps")
    if query.breakdown_attribution == "step" and not 0 <= query.attribution_step < len(query.steps):
        raise QueryError(
            f"the breakdown's attribution step must be a step's number, 0 to "
            f"{len(query.steps) - 1}, not {query.attribution_step}"
        )
    start, end, _ = resolve_range(query.date_range, "day", ctx.now)
    steps = len(query.steps)
    shape = funnels.FunnelShape(
        steps,
        query.window_seconds * 1_000_000,
        strict=query.order == "strict",
        exclusions=tuple(
            (steps + number, exclusion.from_step, exclusion.to_step)
            for number, exclusion in enumerate(query.exclusions)
        ),
    )
    journeys = walk_funnel(ctx.store, ctx.compiler, query, shape, start, end)
    return _funnel_result(ctx, query, journeys, start, end)


def _funnel_result(
    ctx: Context,
    query: FunnelsQuery,
    journeys: Journeys,
    start: datetime,
    end: datetime,
) -> dict[str, Any]:
    levels, step_times = journeys.levels, journeys.times
    groups = _funnel_groups(query, journeys)
    counts = {str(key): len(members) for key, members in groups.items() if key is not None}
    ordered = _top_groups(query, groups)
    results = [
        _funnel_steps(query, levels[groups[key]], step_times[groups[key]], key) for key in ordered
    ]
    if not results:
        results.append(_funnel_steps(query, levels[:0], step_times[:0], None))
    # A funnel's breakdown is read at the attributed step only.
    step = query.attribution_step if query.breakdown_attribution == "step" else 0
    attributed = query.steps[step].event
    for steps in results:
        label_results(steps, ctx.plan, query.breakdown, attributed)
    answer: dict[str, Any] = {
        "kind": "FunnelsQuery",
        "date_from": start.isoformat() + "Z",
        "date_to": end.isoformat() + "Z",
        "results": results[0] if query.breakdown is None else results,
        "warnings": [
            *warnings_for(ctx, list(query.steps), query.breakdown, start, end, breakdown_on=step),
            *invalid_breakdown(ctx, attributed, query.breakdown, counts, "people"),
        ],
    }
    everyone = np.sort(np.concatenate([groups[key] for key in ordered] or [levels[:0]]))
    if query.breakdown is not None:  # every breakdown value together, step by step
        answer["totals"] = _funnel_steps(query, levels[everyone], step_times[everyone], None)
    answer["time_to_convert"] = time_to_convert(
        levels[everyone], step_times[everyone], len(query.steps)
    )
    return answer


def _top_groups(query: FunnelsQuery, groups: dict[str | None, npt.NDArray[np.int64]]) -> list[Any]:
    """The groups shown, the largest first: the top `breakdown_limit` values, and the
    rest folded into one `Other` group (changed in `groups`)."""
    ordered = sorted(groups, key=lambda k: (-len(groups[k]), str(k)))
    if query.breakdown is not None and len(ordered) > query.breakdown_limit:
        keep, rest = ordered[: query.breakdown_limit], ordered[query.breakdown_limit :]
        groups[BREAKDOWN_OTHER] = np.sort(np.concatenate([groups.pop(key) for key in rest]))
        ordered = [*keep, BREAKDOWN_OTHER]
    return ordered


def time_to_convert(
    levels: npt.NDArray[np.int64], times: npt.NDArray[np.int64], steps: int
) -> dict[str, Any]:
    """How long those who finished the funnel took from its first step to its last, in
    bins that double (under 1 s, 1-2 s, 2-4 s, ...): PostHog's time-to-convert view."""
    done = levels >= steps
    seconds = (times[done, steps - 1] - times[done, 0]) / 1_000_000
    lows = np.where(seconds < 1, 0.0, np.exp2(np.floor(np.log2(np.maximum(seconds, 1)))))
    found, counts = np.unique(lows, return_counts=True)
    return {
        "from_step": 0,
        "to_step": steps - 1,
        "converted": int(done.sum()),
        "median_seconds": round(float(np.median(seconds)), 6) if len(seconds) else None,
        "bins": [
            {"from_seconds": float(low), "to_seconds": float(max(low * 2, 1)), "count": int(n)}
            for low, n in zip(found.tolist(), counts.tolist(), strict=True)
        ],
    }


def _funnel_groups(
    query: FunnelsQuery, journeys: Journeys
) -> dict[str | None, npt.NDArray[np.int64]]:
    """The actors (as indexes) of each breakdown value, as the attribution reads it;
    everyone under None without a breakdown."""
    if query.breakdown is None:
        return {None: np.arange(len(journeys.levels))}
    # Those who never reached the attribution step are left out, as PostHog does.
    members = np.flatnonzero(journeys.label_of_actor >= 0)
    member_labels = journeys.label_of_actor[members]
    order = np.argsort(member_labels, kind="stable")
    groups: dict[str | None, npt.NDArray[np.int64]] = {}
    for chunk in np.split(order, np.flatnonzero(np.diff(member_labels[order])) + 1):
        if len(chunk):
            groups[journeys.labels[member_labels[chunk[0]]]] = members[chunk]
    return groups


def _funnel_steps(
    query: FunnelsQuery,
    levels: npt.NDArray[np.int64],
    times: npt.NDArray[np.int64],
    breakdown: str | None,
) -> list[dict[str, Any]]:
    counts = [int(np.count_nonzero(levels > i)) for i in range(len(query.steps))]
    steps = []
    for i, series in enumerate(query.steps):
        durations = np.zeros(0)
        if i > 0:
            converted = levels > i
            durations = (times[converted, i] - times[converted, i - 1]) / 1_000_000
        step: dict[str, Any] = {
            "action_id": series.event,
            "name": series.label,
            "custom_name": series.name or None,
            "order": i,
            "count": counts[i],
            "step_filter": filter_text(series.filters),
            **_conversion(counts, i),
            "average_conversion_time": (
                round(float(np.mean(durations)), 6) if len(durations) else None
            ),
            "median_conversion_time": (
                round(float(np.median(durations)), 6) if len(durations) else None
            ),
        }
        if breakdown is not None:
            step["breakdown_value"] = breakdown
        steps.append(step)
    return steps


def _conversion(counts: list[int], i: int) -> dict[str, float]:
    """Step `i`'s share of the first step's actors, and of the step before's."""
    first = round(counts[i] / counts[0], 6) if counts[0] else 0.0
    if i == 0:
        previous = 1.0 if counts[0] else 0.0
    else:
        previous = round(counts[i] / counts[i - 1], 6) if counts[i - 1] else 0.0
    return {
        "conversion_from_first": first,
        "conversion_from_previous": previous,
        # Who reached the step before and not this one, as a share of the step before.
        "drop_off_from_previous": round(1 - previous, 6) if i and counts[i - 1] else 0.0,
    }


# -- plan-aware warnings ------------------------------------------------------------------


SINGULAR = {"events": "event", "people": "person"}


def invalid_breakdown(
    ctx: Context, event: str, key: str | None, counts: dict[str, int], what: str
) -> list[dict[str, Any]]:
    """A warning when breakdown values the plan forbids (`invalid: completex`) hold
    events (or people): how many, and which values, the largest first."""
    prop = breakdown_property(ctx.plan, event, key)
    bad = {v: n for v, n in counts.items() if breakdown_label(v, prop)[1] == "invalid"}
    if not bad or key is None:
        return []
    shown = sorted(bad, key=lambda v: (-bad[v], v))
    examples = ", ".join(shown[:3]) + (", …" if len(shown) > 3 else "")
    total = sum(bad.values())
    counted = f"{total:,} {what} have" if total != 1 else f"1 {SINGULAR[what]} has"
    message = f"{counted} a {key} the plan forbids on {event}: {examples}"
    return [_warning_dict(ctx, Warning("invalid_breakdown", event, message, property=key))]


def invalid_counts(
    store: Store,
    project: str | None,
    start: datetime,
    end: datetime,
    events: list[str] | None = None,
    plan: Plan | None = None,
) -> dict[str, tuple[int, int]]:
    """Per event name: (events, events that break the plan) received in [start, end),
    of one project (None: every project), of `events` only when given; an event stored
    under a name the plan renamed counts under the new one. The invalid share in
    warnings and in the data-quality alert both come from here. Bots' events are not
    counted, as dashboards and alerts leave them out."""
    aliases = Aliases.of(plan)
    compiler = Compiler(store.columns, store.dialect, aliases=aliases)
    invalid = compiler.dialect.count_if("verdict <> 'valid'")
    where = ["timestamp >= ?", "timestamp < ?", compiler.people_only()]
    params: list[Any] = [start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)]
    if project is not None:
        where.append("project = ?")
        params.append(project)
    if events is not None:
        names = [n for e in events for n in (e, *aliases.events.get(e, ()))]
        where.append(f"event IN ({', '.join('?' for _ in names)})")
        params.extend(names)
    _, rows = store.sql(
        f"SELECT event, count(*), {invalid} FROM events_data e "
        f"WHERE {' AND '.join(where)} GROUP BY event ORDER BY event",
        params,
    )
    counted: dict[str, tuple[int, int]] = {}
    for event, total, bad in rows:
        planned = aliases.planned(event)
        before = counted.get(planned, (0, 0))
        counted[planned] = (before[0] + int(total), before[1] + int(bad))
    return counted


def warnings_for(
    ctx: Context,
    series: list[Series],
    breakdown: str | None,
    start: datetime,
    end: datetime,
    breakdown_on: int | None = None,
) -> list[dict[str, Any]]:
    """Why a number might be wrong: unplanned events, broken data, unplanned properties."""
    plan = ctx.plan
    found: list[Warning] = []
    events = sorted({s.event for s in series})
    if events:
        counts = invalid_counts(ctx.store, ctx.project, start, end, events, ctx.plan)
        for event, (total, bad) in counts.items():
            share = bad / total if total else 0.0
            if share > INVALID_SHARE_WARNING and plan is not None and event in plan.events:
                found.append(
                    Warning(
                        "invalid_share",
                        event,
                        f"{share:.1%} of {event} events in this range break the plan",
                        share=round(share, 4),
                    )
                )
    if plan is not None:
        for index, item in enumerate(series):
            if item.event not in plan.events:
                if not item.event.startswith("$"):
                    found.append(
                        Warning("unplanned_event", item.event, f"{item.event} is not in the plan")
                    )
                continue
            known = plan.properties_of(item.event)
            checks_breakdown = breakdown_on is None or breakdown_on == index
            used = [f.key for f in item.filters] + [item.math_property or ""]
            used.append(breakdown or "" if checks_breakdown else "")
            for key in used:
                if key and not key.startswith("$") and key not in known:
                    found.append(
                        Warning(
                            "unplanned_property",
                            item.event,
                            f"{key} is not a planned property of {item.event}",
                            property=key,
                        )
                    )
    unique = {(w.code, w.event, w.property): w for w in found}
    return [_warning_dict(ctx, w) for w in unique.values()]


def _warning_dict(ctx: Context, warning: Warning) -> dict[str, Any]:
    """A warning as the API gives it, with `live`: the live feed showing the events
    behind it (of its event; those that break the plan, unless the event is unplanned)."""
    params = {"event": warning.event}
    if warning.code != "unplanned_event":
        params["verdict"] = "problems"
    if ctx.project is not None:
        params["project"] = ctx.project
    return {
        "code": warning.code,
        "event": warning.event,
        "message": warning.message,
        "property": warning.property,
        "share": warning.share,
        "live": "/live?" + urlencode(params),
    }
