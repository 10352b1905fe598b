"""The plan's dashboards, computed: each insight becomes a query for the engine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from eventplan.errors import EventplanError
from eventplan.plan.model import Dashboard, EventRef, Insight, Plan
from eventplan.query.model import (
    FunnelsQuery,
    Interval,
    PropertyFilter,
    Query,
    Series,
    TrendsQuery,
    View,
)
from eventplan.query.posthog import choice
from eventplan.store import Store


class NotFound(EventplanError):
    status = 404


def _series(ref: EventRef) -> Series:
    return Series(
        event=ref.event,
        filters=tuple(
            PropertyFilter(
                key=f.property,
                operator=f.operator,
                value=list(f.value) if isinstance(f.value, tuple) else f.value,
            )
            for f in ref.filters
        ),
        math=ref.math,
        math_property=ref.math_property,
        name=ref.name,
    )


def insight_query(insight: Insight, view: View, project: str | None = None) -> Query:
    """The engine's query for a plan insight over `project`'s events as `view` looks
    at it; its breakdown is one of the insight's."""
    chosen = (
        view.breakdown
        if view.breakdown is not None
        else (insight.breakdowns[0] if insight.breakdowns else None)
    )
    series = tuple(_series(ref) for ref in insight.series)
    if insight.kind == "funnel":
        return FunnelsQuery(
            steps=series,
            date_range=view.date_range,
            breakdown=chosen,
            breakdown_limit=view.breakdown_limit,
            include_bots=view.include_bots,
            project=project,
        )
    return TrendsQuery(
        series=series,
        interval=choice(view.interval, "interval", Interval, insight.interval),
        date_range=view.date_range,
        breakdown=chosen,
        breakdown_limit=view.breakdown_limit,
        formula=insight.formula,
        include_bots=view.include_bots,
        project=project,
    )


def find_dashboard(plan: Plan, name: str) -> Dashboard:
    for dashboard in plan.dashboards:
        if dashboard.name == name:
            return dashboard
    names = ", ".join(d.name for d in plan.dashboards)
    raise NotFound(f"no dashboard `{name}` in the plan (dashboards: {names})")


def insight_data(
    store: Store,
    plan: Plan,
    project: str,
    insight: Insight,
    view: View,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One insight of a dashboard over `project`'s events: what a chart panel shows,
    every number computed here (the UI, the API and `eventplan report` only show them)."""
    from eventplan.query.engine import histogram, run_query

    chosen = view.breakdown if view.breakdown in insight.breakdowns else None
    query = insight_query(insight, msgspec.structs.replace(view, breakdown=chosen), project)
    display = insight.display or ("funnel" if insight.kind == "funnel" else "line")
    drawn = query
    if display == "histogram" and isinstance(query, TrendsQuery):
        # The histogram is the breakdown: the series itself is counted without one, not
        # by every distinct size (millions of values, to draw none of them).
        drawn = msgspec.structs.replace(query, breakdown=None)
    result = run_query(store, plan, drawn, now)
    if isinstance(query, TrendsQuery):
        _flag(result, insight.options.get("flag_above"))
    data: dict[str, Any] = {
        "name": insight.name,
        "title": insight.title,
        "kind": insight.kind,
        "display": display,
        "breakdowns": list(insight.breakdowns),
        "breakdown": query.breakdown,
        "breakdown_limit": view.breakdown_limit,
        "include_bots": view.include_bots,
        "options": insight.options,
        "query": query_json(query),
        "result": result,
    }
    if data["display"] == "histogram" and isinstance(query, TrendsQuery):
        data["histogram"] = histogram(store, plan, query, now)
    return data


def _flag(result: dict[str, Any], flag_above: object) -> None:
    """Each series flagged when its average per interval is above the insight's line."""
    if isinstance(flag_above, int | float):
        for series in result["results"]:
            series["flagged"] = series["average"] > flag_above


def find_insight(dashboard: Dashboard, name: str) -> Insight:
    for insight in dashboard.insights:
        if insight.name == name:
            return insight
    raise NotFound(f"dashboard `{dashboard.name}` has no insight `{name}`")


def dashboard_data(
    store: Store,
    plan: Plan,
    project: str,
    name: str,
    view: View,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every insight of a dashboard, computed once: the JSON API, the CLI and the UI render it."""
    dashboard = find_dashboard(plan, name)
    return {
        "name": dashboard.name,
        "title": dashboard.title,
        "description": dashboard.description,
        "date_range": {"date_from": view.date_range.date_from, "date_to": view.date_range.date_to},
        "include_bots": view.include_bots,
        "insights": [
            insight_data(store, plan, project, insight, view, now) for insight in dashboard.insights
        ],
    }


def query_json(query: Query) -> dict[str, Any]:
    """The query in PostHog's query-API shape (for "copy query as JSON")."""
    from eventplan.query.posthog import to_posthog

    return to_posthog(query)
