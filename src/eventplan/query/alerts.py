"""Alerts: the plan's metric alerts and the data-quality alerts every plan gets.

Each alert's insight is computed by the query engine once over the range, then
every completed interval is checked (PostHog checks the last completed one,
`data[-2]`; `check_alerts(..., since=...)` checks every one since, for backfills).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventplan.plan.model import Alert, Plan
from eventplan.query.dashboards import insight_query
from eventplan.query.engine import invalid_counts, run_query
from eventplan.query.model import DateRange, Query, Series, TrendsQuery, View
from eventplan.query.sql import Aliases, Compiler
from eventplan.store import Store
from eventplan.store.base import epoch_us

INTERVAL = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7)}
INVALID_SHARE_ALERT = 0.10  # data quality: more than 10% of an event's last 24 h is invalid
INVALID_SHARE_MIN_EVENTS = 20
SILENCE_HOURS = 24  # data quality: a planned event gone quiet this long...
VOLUME_DROP_SHARE = 0.5  # data quality: an app_version's last 24 h below half its median day
VOLUME_DROP_MIN_DAILY = 100  # ...for versions with at least this many events on a median day
SILENCE_MIN_DAILY = 20  # ...after a median day of at least this many in the week before


@dataclass
class Firing:
    """One interval (and breakdown value) where an alert's condition held."""

    alert: str
    at: str
    value: float
    threshold: str
    breakdown_value: str | None = None
    owner: str = ""
    message: str = ""


@dataclass
class AlertResult:
    name: str
    kind: str  # "metric" or "data_quality"
    description: str
    owner: str
    firing: list[Firing] = field(default_factory=list)

    @property
    def fired(self) -> bool:
        return bool(self.firing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "owner": self.owner,
            "fired": self.fired,
            "firing": [vars(f) for f in self.firing],
        }


def check_alerts(
    store: Store,
    plan: Plan,
    project: str,
    now: datetime | None = None,
    since: str | None = None,
) -> list[AlertResult]:
    """Every alert over `project`'s events, checked at the last completed interval or at
    each one since `since`."""
    now = now or datetime.now(UTC)
    results = [check_metric_alert(store, plan, project, alert, now, since) for alert in plan.alerts]
    results.extend(check_data_quality(store, plan, project, now, since))
    return results


def check_metric_alert(
    store: Store, plan: Plan, project: str, alert: Alert, now: datetime, since: str | None
) -> AlertResult:
    result = AlertResult(alert.name, "metric", alert.description, alert.owner)
    interval = alert.insight.interval if alert.insight.interval in INTERVAL else "hour"
    step = INTERVAL[interval]
    lookback = step * (alert.baseline_intervals + 3 if alert.condition == "above_baseline" else 3)
    start = _start(since, now) - lookback if since else now - lookback
    query = insight_query(
        alert.insight, View(DateRange(date_from=start.isoformat()), interval), project
    )
    data = run_query(store, plan, query, now)
    counts = _counts(store, plan, query, now)
    checked_from = _start(since, now) if since else None
    for item in data["results"]:
        values: list[float] = item["data"]
        days: list[str] = item["days"]
        breakdown = item.get("breakdown_value")
        last = len(values) - 1  # the current, incomplete interval is never checked
        indexes = range(last) if checked_from else range(max(last - 1, 0), last)
        for i in indexes:
            moment = datetime.fromisoformat(days[i]).replace(tzinfo=UTC)
            if checked_from and moment < checked_from:
                continue
            count = counts.get((breakdown, days[i]), 0)
            if count < alert.min_count:
                continue
            fired, threshold = _breached(alert, values, i)
            if fired:
                result.firing.append(
                    Firing(
                        alert.name, days[i], round(values[i], 4), threshold, breakdown, alert.owner
                    )
                )
    return result


def _breached(alert: Alert, values: list[float], i: int) -> tuple[bool, str]:
    value = values[i]
    bounds = alert.threshold
    if alert.condition == "above_baseline":
        window = values[max(0, i - alert.baseline_intervals) : i]
        baseline = statistics.median(window) if window else 0.0
        return value > alert.factor * baseline, f"> {alert.factor:g} × median {baseline:g}"
    if alert.condition in ("relative_increase", "relative_decrease"):
        if i == 0:
            return False, ""
        previous = values[i - 1]
        change = (value - previous) / previous if previous else (float("inf") if value else 0.0)
        if alert.condition == "relative_decrease":
            change = -change
        value = change
    upper_hit = bounds.upper is not None and value > bounds.upper
    lower_hit = bounds.lower is not None and value < bounds.lower
    text = " or ".join(
        part
        for part in (
            f"> {bounds.upper:g}" if bounds.upper is not None else "",
            f"< {bounds.lower:g}" if bounds.lower is not None else "",
        )
        if part
    )
    return upper_hit or lower_hit, text


def _counts(
    store: Store, plan: Plan, query: Query, now: datetime
) -> dict[tuple[str | None, str], float]:
    """Events per interval (and breakdown value) across the alert's series: for min_count."""
    assert isinstance(query, TrendsQuery)
    plain = TrendsQuery(
        series=tuple(Series(event=s.event, filters=s.filters) for s in query.series),
        interval=query.interval,
        date_range=query.date_range,
        breakdown=query.breakdown,
        breakdown_limit=query.breakdown_limit,
        project=query.project,
    )
    totals: dict[tuple[str | None, str], float] = {}
    for item in run_query(store, plan, plain, now)["results"]:
        for day, value in zip(item["days"], item["data"], strict=True):
            key = (item.get("breakdown_value"), day)
            totals[key] = totals.get(key, 0.0) + value
    return totals


def _start(since: str | None, now: datetime) -> datetime:
    from eventplan.query.sql import parse_moment

    return parse_moment(since or "-1h", now)


def check_data_quality(
    store: Store, plan: Plan, project: str, now: datetime, since: str | None
) -> list[AlertResult]:
    """Invalid share per event, planned events that went quiet and app versions whose
    volume dropped, checked at `now` or daily since `since`; each names its owner."""
    invalid = AlertResult(
        "invalid_share",
        "data_quality",
        f"more than {INVALID_SHARE_ALERT:.0%} of an event's last 24 h breaks the plan",
        "",
    )
    quiet = AlertResult(
        "event_went_quiet",
        "data_quality",
        f"a planned event seen before has not arrived for {SILENCE_HOURS} h",
        "",
    )
    drop = AlertResult(
        "volume_drop",
        "data_quality",
        f"an app_version sent less than {VOLUME_DROP_SHARE:.0%} of its median daily volume",
        "",
    )
    at = _start(since, now) if since else now
    while at <= now:
        _invalid_share(store, plan, project, at, invalid)
        _went_quiet(store, plan, project, at, quiet)
        _volume_drop(store, project, at, drop)
        at += timedelta(days=1)
    return [invalid, quiet, drop]


def _invalid_share(
    store: Store, plan: Plan, project: str, at: datetime, result: AlertResult
) -> None:
    """Planned events of which more than the alert's share broke the plan in 24 h."""
    day = invalid_counts(store, project, at - timedelta(days=1), at, plan=plan)
    for event, (total, bad) in day.items():
        if event not in plan.events or total < INVALID_SHARE_MIN_EVENTS:
            continue
        if bad / total > INVALID_SHARE_ALERT:
            owner = plan.events[event].owner
            result.firing.append(
                Firing(
                    "invalid_share",
                    at.isoformat(),
                    round(bad / total, 4),
                    f"> {INVALID_SHARE_ALERT:g}",
                    event,
                    owner,
                    f"{bad}/{total} {event} events break the plan; owner: {owner}",
                )
            )


def _went_quiet(store: Store, plan: Plan, project: str, at: datetime, result: AlertResult) -> None:
    """Planned events, regular the week before, not seen for SILENCE_HOURS. Typical volume
    is the median day of that week, so one burst (an incident) does not make an event
    look regular."""
    compiler = Compiler(store.columns, store.dialect)
    quiet_from = at - timedelta(hours=SILENCE_HOURS)
    day = (
        f"CASE WHEN e.timestamp < ? THEN floor((? - {compiler.dialect.epoch_us('e.timestamp')}) "
        "/ 86400000000) ELSE -1 END"
    )
    _, rows = store.sql(
        f"SELECT e.event, {day} AS day, count(*), max(e.timestamp) FROM events_data e "
        "WHERE e.project = ? AND e.timestamp >= ? AND e.timestamp < ? "
        f"AND {compiler.people_only()} GROUP BY ALL ORDER BY 1, 2",
        [quiet_from, epoch_us(quiet_from), project, quiet_from - timedelta(days=7), at],
    )
    seen: dict[str, tuple[datetime, list[int]]] = {}
    aliases = Aliases.of(plan)
    for stored, day_number, count, latest in rows:
        event = aliases.planned(stored)  # an old name counts as the new one
        last, per_day = seen.get(event, (latest, [0] * 7))
        if day_number >= 0:
            per_day[min(int(day_number), 6)] += int(count)
        seen[event] = (max(last, latest), per_day)
    for event, (last_seen, per_day) in seen.items():
        before = statistics.median(per_day)
        if event not in plan.events or before < SILENCE_MIN_DAILY or last_seen >= quiet_from:
            continue
        owner = plan.events[event].owner
        result.firing.append(
            Firing(
                "event_went_quiet",
                at.isoformat(),
                float(before),
                f"{SILENCE_HOURS} h",
                event,
                owner,
                f"{event} last seen {last_seen.isoformat()}; owner: {owner}",
            )
        )


def _volume_drop(store: Store, project: str, at: datetime, result: AlertResult) -> None:
    """Per app_version: the last 24 h against the median of the 7 days before it."""
    compiler = Compiler(store.columns, store.dialect)
    version = compiler.text("app_version")
    stamp = compiler.dialect.epoch_us("e.timestamp")
    _, rows = store.sql(
        "SELECT version, day, count(*) FROM ("
        f"  SELECT {version} AS version, floor((? - {stamp}) / 86400000000) AS day"
        "  FROM events_data e WHERE e.project = ? AND e.timestamp > ? AND e.timestamp <= ?"
        f"  AND {compiler.people_only()}) WHERE version IS NOT NULL GROUP BY ALL ORDER BY 1, 2",
        [epoch_us(at), project, at - timedelta(days=8), at],
    )
    days: dict[str, list[int]] = {}
    for name, day, count in rows:
        days.setdefault(name, [0] * 8)[min(int(day), 7)] += count
    for name, counts in days.items():
        typical = statistics.median(counts[1:])
        if typical >= VOLUME_DROP_MIN_DAILY and counts[0] < VOLUME_DROP_SHARE * typical:
            result.firing.append(
                Firing(
                    "volume_drop",
                    at.isoformat(),
                    float(counts[0]),
                    f"< {VOLUME_DROP_SHARE:g} × median {typical:g}",
                    name,
                    "",
                    f"app_version {name}: {counts[0]} events in 24 h, median day {typical:g}",
                )
            )
