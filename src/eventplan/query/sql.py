"""SQL pieces for queries over the event store, per dialect (DuckDB and ClickHouse).

Planned properties live in typed columns, everything else (and a value that did
not fit its column) in `properties_rest`; a property expression reads both, so a
query never has to know where a value was stored. Every place where the two
engines spell a thing differently is a method of `Dialect`; the engine, alerts and
coverage build their SQL only from these pieces, never by naming an engine.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventplan.plan.model import Plan
from eventplan.plan.posthog import BOT_NAME
from eventplan.query.model import (
    DateRange,
    FunnelsQuery,
    Interval,
    PropertyFilter,
    Series,
    TrendsQuery,
    Verdict,
)
from eventplan.store.base import QueryError
from eventplan.store.clickhouse import value_sql
from eventplan.store.columns import Column, quote

QUANTILES = {"median": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
EVENTS = "events_data e"  # enough when no query part needs the person
_RELATIVE = re.compile(r"^-(\d+)([hdwmy])$")
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)  # a year short of the end, for buckets and lookbacks


class Dialect:
    """DuckDB's spelling; `ClickHouseDialect` overrides what ClickHouse says otherwise."""

    name = "duckdb"
    # The events with the current person of each distinct id (identity merges).
    events_with_person = (
        "events_data e LEFT JOIN person_overrides o "
        "ON o.project = e.project AND o.old_person_id = e.person_id"
    )
    person = "COALESCE(o.person_id, e.person_id)"

    def json_text(self, column: str, keys: Sequence[str]) -> str:
        path = (
            "'$."
            + ".".join('"' + k.replace("'", "''").replace('"', '\\"') + '"' for k in keys)
            + "'"
        )
        return f"json_extract_string({column}, {path})"

    def first_of(self, parts: Sequence[str]) -> str:
        """The first non-NULL of `parts` (a typed column before the JSON rest)."""
        return parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS VARCHAR)"

    def as_double(self, expr: str) -> str:
        return f"CAST({expr} AS DOUBLE)"

    def try_double(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS DOUBLE)"

    def try_boolean(self, expr: str) -> str:
        return f"TRY_CAST({expr} AS BOOLEAN)"

    def as_boolean(self, condition: str) -> str:
        return f"({condition})"

    def value_at(self, which: str, value: str, by: str) -> str:
        """The `value` of the row with the least (`which` = "min") or most `by`."""
        return f"arg_{which}({value}, {by})"

    def seconds_between(self, start: str, end: str) -> str:
        return f"date_diff('second', {start}, {end})"

    def regex(self, expr: str, pattern: str) -> str:
        return f"regexp_matches({expr}, {pattern})"

    def quantile(self, expr: str, level: float) -> str:
        return f"quantile_cont({expr}, {level})"

    def count_if(self, condition: str) -> str:
        return f"count(*) FILTER (WHERE {condition})"

    def epoch_us(self, expr: str) -> str:
        return f"epoch_us({expr})"

    def text_literal(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    def lowest_bit_index(self, expr: str) -> str:
        """The number of the lowest bit set in a positive integer (0 for 1)."""
        return f"bit_count(({expr} & -{expr}) - 1)"

    def hashes(self, expr: str) -> tuple[str, str]:
        """Two independent 64-bit hashes of a value (never NULL)."""
        return f"hash({expr})", f"hash({expr}, 'eventplan')"

    def bucket(self, interval: Interval) -> str:
        # Whole units of epoch microseconds, floored (also before 1970): date_trunc on a
        # TIMESTAMPTZ goes through the time zone library row by row, which was most of
        # a trend's time. Weeks (from Monday) and months truncate a plain DATE.
        micros = "epoch_us(e.timestamp)"
        unit = 3_600_000_000 if interval == "hour" else 86_400_000_000
        floored = f"({micros} - (({micros} % {unit}) + {unit}) % {unit})"
        if interval in ("hour", "day"):
            return f"make_timestamp({floored})"
        day = f"CAST({floored} // {unit} AS INTEGER)"
        return f"CAST(date_trunc('{interval}', DATE '1970-01-01' + {day}) AS TIMESTAMP)"


class ClickHouseDialect(Dialect):
    name = "clickhouse"
    # Persons are versioned rows (ReplacingMergeTree): the newest version wins.
    events_with_person = (
        "events_data e LEFT JOIN (SELECT project, old_person_id, "
        "argMax(person_id, version) AS person_id FROM person_overrides_rows "
        "GROUP BY project, old_person_id) o "
        "ON o.project = e.project AND o.old_person_id = e.person_id"
    )

    def json_text(self, column: str, keys: Sequence[str]) -> str:
        args = ", ".join(value_sql(k) for k in keys)
        # DuckDB's json_extract_string: NULL when missing or null, strings unquoted,
        # anything else as its JSON text.
        return (
            f"multiIf(JSONType({column}, {args}) = 'Null', NULL, "
            f"JSONType({column}, {args}) = 'String', JSONExtractString({column}, {args}), "
            f"JSONExtractRaw({column}, {args}))"
        )

    def first_of(self, parts: Sequence[str]) -> str:
        # multiIf short-circuits: the JSON rest is parsed only where no typed column has
        # the value (COALESCE would evaluate every argument on every row).
        if len(parts) == 1:
            return parts[0]
        tests = ", ".join(f"isNotNull({part}), {part}" for part in parts[:-1])
        return f"multiIf({tests}, {parts[-1]})"

    def as_text(self, expr: str) -> str:
        return f"toString({expr})"

    def as_double(self, expr: str) -> str:
        return f"toFloat64({expr})"

    def try_double(self, expr: str) -> str:
        return f"toFloat64OrNull({expr})"

    def try_boolean(self, expr: str) -> str:
        return f"toBoolOrNull({expr})"

    def as_boolean(self, condition: str) -> str:
        return f"toBool({condition})"  # a comparison is a UInt8 in ClickHouse

    def value_at(self, which: str, value: str, by: str) -> str:
        return f"arg{which.title()}({value}, {by})"

    def seconds_between(self, start: str, end: str) -> str:
        return f"dateDiff('second', {start}, {end})"

    def regex(self, expr: str, pattern: str) -> str:
        return f"match({expr}, {pattern})"

    def quantile(self, expr: str, level: float) -> str:
        return f"quantileExactInclusive({level})({expr})"  # linear, as quantile_cont

    def count_if(self, condition: str) -> str:
        return f"countIf({condition})"

    def epoch_us(self, expr: str) -> str:
        return f"toUnixTimestamp64Micro({expr})"

    def text_literal(self, value: str) -> str:
        return value_sql(value)

    def lowest_bit_index(self, expr: str) -> str:
        return f"bitCount(bitAnd({expr}, -{expr}) - 1)"

    def hashes(self, expr: str) -> tuple[str, str]:
        return f"ifNull(cityHash64({expr}), 0)", f"ifNull(sipHash64({expr}), 0)"

    def bucket(self, interval: Interval) -> str:
        start = {
            "hour": "toStartOfHour(e.timestamp)",
            "day": "toStartOfDay(e.timestamp)",
            "week": "toMonday(e.timestamp)",
            "month": "toStartOfMonth(e.timestamp)",
        }[interval]
        return f"toDateTime64({start}, 6, 'UTC')"


DIALECTS: dict[str, Dialect] = {"duckdb": Dialect(), "clickhouse": ClickHouseDialect()}


@dataclass(frozen=True)
class Aliases:
    """The names a plan renamed (`renamed_from`): events stored before the rename keep
    their old names, and every query counts them under the new ones."""

    events: dict[str, tuple[str, ...]] = field(default_factory=dict)  # planned → old
    properties: dict[str, tuple[str, ...]] = field(default_factory=dict)  # planned → old
    _planned_of: dict[str, str] = field(init=False, repr=False, compare=False)  # old → planned

    def __post_init__(self) -> None:  # frozen: set once, as the dataclass itself would
        planned_of = {old: name for name, olds in self.events.items() for old in olds}
        object.__setattr__(self, "_planned_of", planned_of)

    @classmethod
    def of(cls, plan: Plan | None) -> Aliases:
        if plan is None:
            return cls()
        properties: dict[str, set[str]] = {}
        for name in plan.events:
            for old, new in plan.property_renames(name).items():
                properties.setdefault(new, set()).add(old)
        return cls(
            {name: e.renamed_from for name, e in plan.events.items() if e.renamed_from},
            {key: tuple(sorted(olds)) for key, olds in properties.items()},
        )

    def __hash__(self) -> int:  # HogQL keeps a translation per set of renames
        return hash((tuple(self.events.items()), tuple(self.properties.items())))

    def stored_names(self, key: str) -> tuple[str, ...]:
        """A property's planned name, then the names it was renamed from."""
        return (key, *self.properties.get(key, ()))

    def planned(self, event: str) -> str:
        """The planned name of an event name as stored (itself when not renamed)."""
        return self._planned_of.get(event, event)

    def planned_sql(self, column: str, dialect: Dialect) -> str:
        """`planned` in SQL: the event name in `column` as the plan has it now."""
        if not self._planned_of:
            return column
        literal = dialect.text_literal
        cases = " ".join(
            f"WHEN {literal(old)} THEN {literal(new)}" for old, new in self._planned_of.items()
        )
        return f"CASE {column} {cases} ELSE {column} END"


class Compiler:
    """Turns query parts into SQL text plus parameters, knowing the store's columns
    (and the plan's renames, to count old names as the new)."""

    def __init__(
        self,
        columns: Sequence[Column],
        dialect: str = "duckdb",
        table: str = "e",
        aliases: Aliases | None = None,
    ) -> None:
        self.dialect = DIALECTS[dialect]
        self.aliases = aliases or Aliases()
        self.table = table  # the alias of `events_data` the expressions read
        self._by_key: dict[str, list[Column]] = {}
        for column in columns:
            self._by_key.setdefault(column.key, []).append(column)

    def text(self, key: str) -> str:
        """A property as text: its typed columns, then the JSON rest; then the same of
        each name it was renamed from (events stored before the rename)."""
        d = self.dialect
        parts = []
        for name in (key, *self.aliases.properties.get(key, ())):
            parts += [
                d.as_text(f"{self.table}.{quote(c.name)}") for c in self._by_key.get(name, [])
            ]
            parts.append(self.rest(name))
        return d.first_of(parts)

    def number(self, key: str) -> str:
        d = self.dialect
        parts = []
        for name in (key, *self.aliases.properties.get(key, ())):
            parts += [
                d.as_double(f"{self.table}.{quote(c.name)}")
                for c in self._by_key.get(name, [])
                if c.type in ("integer", "number")
            ]
            parts.append(d.try_double(self.rest(name)))
        return d.first_of(parts)

    def rest(self, *keys: str) -> str:
        """A value from the JSON rest only, as text (a nested one by its path)."""
        return self.dialect.json_text(f"{self.table}.properties_rest", keys)

    def typed(self, key: str) -> str:
        """A property the way PostHog types it: numeric where the plan says it is a
        number, boolean where a boolean, else text."""
        types = {c.type for c in self._by_key.get(key, [])}
        if types and types <= {"integer", "number"}:
            return self.number(key)
        if types == {"boolean"}:
            d = self.dialect
            parts = [f"{self.table}.{quote(c.name)}" for c in self._by_key[key]]
            return d.first_of([*parts, d.try_boolean(self.rest(key))])
        return self.text(key)

    def group(self, group_type: str) -> str:
        return self.rest("$groups", group_type)

    def condition(self, flt: PropertyFilter, params: list[Any]) -> str:
        op, value = flt.operator, flt.value
        if op == "is_set":
            return f"({self.text(flt.key)} IS NOT NULL)"
        if op == "is_not_set":
            return f"({self.text(flt.key)} IS NULL)"
        if op in ("gt", "gte", "lt", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise QueryError(f"filter {flt.key} {op} needs a number, got {value!r}")
            params.append(float(value))
            symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
            return f"({self.number(flt.key)} {symbol} ?)"
        if op in ("contains", "not_contains", "regex", "not_regex"):
            if not isinstance(value, str):
                raise QueryError(f"filter {flt.key} {op} needs text, got {value!r}")
            expr = self.text(flt.key)
            if op in ("contains", "not_contains"):
                params.append(f"%{value}%")
                test = f"{expr} ILIKE ?"
            else:
                params.append(value)
                test = self.dialect.regex(expr, "?")
            return f"({test})" if not op.startswith("not") else f"({expr} IS NULL OR NOT {test})"
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            raise QueryError(f"filter {flt.key} {op} needs a value")
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            expr = self.number(flt.key)
            params.extend(float(v) for v in values)
        else:
            expr = self.text(flt.key)
            params.extend(_as_text(v) for v in values)
        marks = ", ".join("?" for _ in values)
        if op == "exact":
            return f"({expr} IN ({marks}))"
        if op == "is_not":
            return f"({expr} IS NULL OR {expr} NOT IN ({marks}))"
        raise QueryError(f"unknown filter operator {op!r}")

    def series_condition(
        self, series: Series, query: TrendsQuery | FunnelsQuery, params: list[Any]
    ) -> str:
        """The events of one series (or funnel step) that `query` counts: of its
        verdicts and project, and people's only unless it includes bots."""
        names = (series.event, *self.aliases.events.get(series.event, ()))
        parts = [f"e.event IN ({', '.join('?' for _ in names)})"]
        params.extend(names)
        parts.extend(self.condition(flt, params) for flt in series.filters)
        parts.append(self.verdicts(query.verdicts, params))
        if query.project is not None:
            parts.append("e.project = ?")
            params.append(query.project)
        if not query.include_bots:
            parts.append(self.people_only())
        return " AND ".join(parts)

    def people_only(self) -> str:
        """The condition that leaves bots' events out (capture labels them)."""
        typed = self._by_key.get(BOT_NAME)
        label = f"{self.table}.{quote(typed[0].name)}" if typed else self.rest(BOT_NAME)
        return f"{label} IS NULL"

    @staticmethod
    def verdicts(verdicts: Sequence[Verdict], params: list[Any]) -> str:
        params.extend(verdicts)
        return f"e.verdict IN ({', '.join('?' for _ in verdicts)})"

    def aggregate(self, series: Series, only: str | None = None) -> str:
        """The series' math over the events of the group, or over those of them where
        `only` holds (every aggregate leaves NULLs out)."""

        def of(value: str) -> str:
            return value if only is None else f"CASE WHEN {only} THEN {value} END"

        math = series.math
        if math == "total":
            return "count(*)" if only is None else f"count({of('1')})"
        if math == "dau":
            return f"count(DISTINCT {of(self.dialect.person)})"
        if math == "unique_group":
            return f"count(DISTINCT {of(self.group(series.math_group_type))})"
        if series.math_property is None:
            raise QueryError(f"math {math} needs a math_property")
        value = of(self.number(series.math_property))
        if math in QUANTILES:
            return self.dialect.quantile(value, QUANTILES[math])
        return f"{math}({value})"


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def truncate(moment: datetime, interval: Interval) -> datetime:
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    if interval == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day
    if interval == "week":
        return day - timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.replace(day=1)


def step(moment: datetime, interval: Interval) -> datetime:
    if interval == "hour":
        return moment + timedelta(hours=1)
    if interval == "day":
        return moment + timedelta(days=1)
    if interval == "week":
        return moment + timedelta(days=7)
    return (moment.replace(day=28) + timedelta(days=4)).replace(day=1)


def parse_moment(text: str, now: datetime) -> datetime:
    """A relative (-Nh, -Nd, -Nw, -Nm, -Ny) or ISO date; QueryError for anything else,
    and for a moment before 1900 or in the year 9999 (capture stores none there, and
    arithmetic near the ends of `datetime` overflows)."""
    relative = _RELATIVE.match(text.strip())
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2)
        days = {"d": 1, "w": 7, "m": 30, "y": 365}.get(unit)
        try:
            delta = timedelta(hours=amount) if unit == "h" else timedelta(days=amount * (days or 1))
            moment = now - delta
        except OverflowError:
            moment = datetime.min.replace(tzinfo=UTC)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise QueryError(f"date {text!r} is neither -Nh/-Nd/-Nw/-Nm nor an ISO date") from exc
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment < LATEST:
        raise QueryError(f"date {text!r} is out of range: before 1900 or past 9998")
    return moment


def resolve_range(
    date_range: DateRange, interval: Interval, now: datetime
) -> tuple[datetime, datetime, list[datetime]]:
    """Start (inclusive), end (exclusive) and the interval buckets, all naive UTC."""
    end_moment = parse_moment(date_range.date_to, now) if date_range.date_to else now
    start = truncate(parse_moment(date_range.date_from, now), interval)
    end = end_moment.astimezone(UTC).replace(tzinfo=None)
    if end <= start:
        raise QueryError("the date range is empty: date_from must come before date_to")
    buckets = []
    cursor = start
    while cursor < end:
        buckets.append(cursor)
        cursor = step(cursor, interval)
        if len(buckets) > 20_000:
            raise QueryError("the range has too many intervals; use a larger interval")
    return start, end, buckets
