"""PostHog's query schema (`TrendsQuery`, `FunnelsQuery`, `HogQLQuery`) to ours and back.

Only the part eventplan computes is accepted; any other field is refused with a
400 that names it, so a script never silently gets an answer to another question.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast, get_args

from eventplan.query.model import (
    DEFAULT_TOP,
    Attribution,
    DateRange,
    Exclusion,
    FunnelOrder,
    FunnelsQuery,
    Interval,
    Math,
    Operator,
    PropertyFilter,
    Query,
    Series,
    TrendsQuery,
)
from eventplan.store.base import QueryError

SERIES_KEYS = {
    "kind",
    "event",
    "name",
    "custom_name",
    "math",
    "math_property",
    "math_group_type_index",
    "properties",
}
TRENDS_KEYS = {
    "kind",
    "series",
    "interval",
    "dateRange",
    "breakdownFilter",
    "trendsFilter",
    "compareFilter",
    "properties",
    "filterTestAccounts",
}
FUNNELS_KEYS = {
    "kind",
    "series",
    "dateRange",
    "breakdownFilter",
    "funnelsFilter",
    "properties",
    "aggregation_group_type_index",
    "filterTestAccounts",
}
FUNNEL_FILTER_KEYS = {
    "funnelWindowInterval",
    "funnelWindowIntervalUnit",
    "funnelOrderType",
    "exclusions",
    "breakdownAttributionType",
    "breakdownAttributionValue",
    "funnelVizType",
}
UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800, "month": 2592000}


def _object(raw: Any, where: str) -> dict[str, Any]:
    """`raw` as an object; absent (None) is empty. A wrong type is a QueryError
    naming the field, rather than a 500 from whatever reads it next."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise QueryError(f"{where} must be an object")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise QueryError(f"{where} must be a list")
    return raw


def _text(raw: Any, where: str, default: str | None = None) -> str | None:
    if raw is None:
        return default
    if not isinstance(raw, str):
        raise QueryError(f"{where} must be a string")
    return raw


def _key(raw: Any, where: str) -> str:
    """A filter's property name: required, so null is no name rather than "None"."""
    if not isinstance(raw, str):
        raise QueryError(f"{where} filter key must be a string")
    return raw


def _integer(raw: Any, where: str, default: int) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise QueryError(f"{where} must be an integer")
    return raw


Choice = TypeVar("Choice", bound=str)


def choice(raw: Any, where: str, choices: Any, default: Choice) -> Choice:
    """One of the `Literal` type `choices`' values: they go into SQL as they are."""
    allowed: tuple[str, ...] = get_args(choices)
    if raw is None:
        return default
    if raw not in allowed:
        raise QueryError(f"{where} {raw!r} is not one of {', '.join(allowed)}")
    return cast(Choice, raw)


def _refuse_unknown(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise QueryError(f"{where}: eventplan does not support {', '.join(unknown)}")


def _filters(raw: Any, where: str) -> tuple[PropertyFilter, ...]:
    result = []
    for item in _list(raw, f"{where}.properties"):
        if not isinstance(item, dict) or "key" not in item:
            raise QueryError(f"{where}.properties: each filter needs a `key`")
        _refuse_unknown(item, {"key", "value", "operator", "type", "label"}, f"{where} filter")
        if item.get("type", "event") != "event":
            raise QueryError(f"{where}: only event property filters are supported")
        result.append(
            PropertyFilter(
                key=_key(item["key"], where),
                operator=choice(
                    item.get("operator"), f"{where} filter operator", Operator, "exact"
                ),
                value=item.get("value"),
            )
        )
    return tuple(result)


def _series(raw: Any, index: int, global_filters: tuple[PropertyFilter, ...]) -> Series:
    where = f"series[{index}]"
    if not isinstance(raw, dict) or raw.get("kind", "EventsNode") != "EventsNode":
        raise QueryError(f"{where} must be an EventsNode")
    _refuse_unknown(raw, SERIES_KEYS, where)
    if not isinstance(raw.get("event"), str):
        raise QueryError(f"{where} needs an `event`")
    math: Math = choice(raw.get("math"), f"{where}.math", Math, "total")
    group_index = _integer(raw.get("math_group_type_index"), f"{where}.math_group_type_index", 0)
    if math in ("unique_group",) and group_index != 0:
        raise QueryError(f"{where}: only group type index 0 (workspace) is supported")
    return Series(
        event=raw["event"],
        filters=_filters(raw.get("properties"), where) + global_filters,
        math=math,
        math_property=_text(raw.get("math_property"), f"{where}.math_property"),
        name=_text(raw.get("custom_name"), f"{where}.custom_name") or "",
    )


def _date_range(raw: Any, default_from: str) -> DateRange:
    if raw is None:
        return DateRange(date_from=default_from)
    raw = _object(raw, "dateRange")
    _refuse_unknown(raw, {"date_from", "date_to", "explicitDate"}, "dateRange")
    return DateRange(
        date_from=_text(raw.get("date_from"), "dateRange.date_from") or default_from,
        date_to=_text(raw.get("date_to"), "dateRange.date_to"),
    )


def _breakdown(raw: Any) -> tuple[str | None, int]:
    if not raw:
        return None, 25
    raw = _object(raw, "breakdownFilter")
    _refuse_unknown(raw, {"breakdown", "breakdown_type", "breakdown_limit"}, "breakdownFilter")
    if raw.get("breakdown_type", "event") != "event":
        raise QueryError("breakdownFilter: only event property breakdowns are supported")
    breakdown = raw.get("breakdown")
    if breakdown is not None and not isinstance(breakdown, str):
        raise QueryError("breakdownFilter.breakdown must be one property name")
    limit = _integer(raw.get("breakdown_limit"), "breakdownFilter.breakdown_limit", DEFAULT_TOP)
    return breakdown, limit


def _all_series(
    body: dict[str, Any], global_filters: tuple[PropertyFilter, ...]
) -> tuple[Series, ...]:
    return tuple(
        _series(s, i, global_filters) for i, s in enumerate(_list(body.get("series"), "series"))
    )


def from_posthog(body: Any) -> Query | str:
    """Our query for a PostHog query object; a HogQLQuery comes back as its SQL text."""
    if not isinstance(body, dict):
        raise QueryError("the query must be a JSON object")
    kind = body.get("kind")
    if kind == "HogQLQuery":
        _refuse_unknown(body, {"kind", "query"}, "HogQLQuery")
        if not isinstance(body.get("query"), str):
            raise QueryError("HogQLQuery needs a `query` string")
        return str(body["query"])
    if kind == "TrendsQuery":
        return _trends(body)
    if kind == "FunnelsQuery":
        return _funnels(body)
    raise QueryError(
        f"query kind {kind!r} is not supported (TrendsQuery, FunnelsQuery, HogQLQuery are)"
    )


def _trends(body: dict[str, Any]) -> TrendsQuery:
    _refuse_unknown(body, TRENDS_KEYS, "TrendsQuery")
    global_filters = _filters(body.get("properties"), "query")
    breakdown, limit = _breakdown(body.get("breakdownFilter"))
    trends_filter = _object(body.get("trendsFilter"), "trendsFilter")
    _refuse_unknown(trends_filter, {"formula", "display"}, "trendsFilter")
    compare = _object(body.get("compareFilter"), "compareFilter")
    _refuse_unknown(compare, {"compare"}, "compareFilter")
    return TrendsQuery(
        series=_all_series(body, global_filters),
        interval=choice(body.get("interval"), "interval", Interval, "day"),
        date_range=_date_range(body.get("dateRange"), "-7d"),
        breakdown=breakdown,
        breakdown_limit=limit,
        formula=_text(trends_filter.get("formula"), "trendsFilter.formula"),
        compare=bool(compare.get("compare", False)),
    )


def _funnels(body: dict[str, Any]) -> FunnelsQuery:
    _refuse_unknown(body, FUNNELS_KEYS, "FunnelsQuery")
    global_filters = _filters(body.get("properties"), "query")
    funnels_filter, unit, order = _funnels_filter(body)
    breakdown, limit = _breakdown(body.get("breakdownFilter"))
    window = _integer(funnels_filter.get("funnelWindowInterval"), "funnelWindowInterval", 14)
    return FunnelsQuery(
        steps=_all_series(body, global_filters),
        date_range=_date_range(body.get("dateRange"), "-30d"),
        window_seconds=window * UNITS[unit],
        order=order,
        breakdown=breakdown,
        breakdown_limit=limit,
        breakdown_attribution=choice(
            funnels_filter.get("breakdownAttributionType"),
            "funnelsFilter.breakdownAttributionType",
            Attribution,
            "first_touch",
        ),
        attribution_step=_integer(
            funnels_filter.get("breakdownAttributionValue"), "breakdownAttributionValue", 0
        ),
        exclusions=_exclusions(funnels_filter.get("exclusions")),
        aggregate_by="group" if body.get("aggregation_group_type_index") is not None else "person",
    )


def _funnels_filter(body: dict[str, Any]) -> tuple[dict[str, Any], str, FunnelOrder]:
    """`funnelsFilter`, its window's unit and its order, each one we support."""
    funnels_filter = _object(body.get("funnelsFilter"), "funnelsFilter")
    _refuse_unknown(funnels_filter, FUNNEL_FILTER_KEYS, "funnelsFilter")
    if funnels_filter.get("funnelVizType", "steps") != "steps":
        raise QueryError("funnelsFilter.funnelVizType: only `steps` is supported")
    unit = funnels_filter.get("funnelWindowIntervalUnit", "day")
    if not isinstance(unit, str) or unit not in UNITS:
        raise QueryError(f"funnelWindowIntervalUnit {unit!r} is not one of {', '.join(UNITS)}")
    order: FunnelOrder = choice(
        funnels_filter.get("funnelOrderType"), "funnelOrderType", FunnelOrder, "ordered"
    )
    return funnels_filter, unit, order


def _exclusions(raw: Any) -> tuple[Exclusion, ...]:
    result = []
    for index, item in enumerate(_list(raw, "funnelsFilter.exclusions")):
        where = f"funnelsFilter.exclusions[{index}]"
        item = _object(item, where)
        event = item.get("event")
        if not isinstance(event, str):
            raise QueryError(f"{where} needs an `event`")
        result.append(
            Exclusion(
                event=event,
                filters=_filters(item.get("properties"), where),
                from_step=_integer(item.get("funnelFromStep"), f"{where}.funnelFromStep", 0),
                to_step=_integer(item.get("funnelToStep"), f"{where}.funnelToStep", 1),
            )
        )
    return tuple(result)


def to_posthog(query: Query) -> dict[str, Any]:
    def series(item: Series) -> dict[str, Any]:
        node: dict[str, Any] = {"kind": "EventsNode", "event": item.event, "math": item.math}
        if item.math_property:
            node["math_property"] = item.math_property
        if item.name:
            node["custom_name"] = item.name
        if item.filters:
            node["properties"] = [
                {"key": f.key, "value": f.value, "operator": f.operator, "type": "event"}
                for f in item.filters
            ]
        return node

    date_range = {"date_from": query.date_range.date_from, "date_to": query.date_range.date_to}
    breakdown = (
        {
            "breakdownFilter": {
                "breakdown": query.breakdown,
                "breakdown_type": "event",
                "breakdown_limit": query.breakdown_limit,
            }
        }
        if query.breakdown
        else {}
    )
    if isinstance(query, TrendsQuery):
        body: dict[str, Any] = {
            "kind": "TrendsQuery",
            "series": [series(s) for s in query.series],
            "interval": query.interval,
            "dateRange": date_range,
            **breakdown,
        }
        if query.formula:
            body["trendsFilter"] = {"formula": query.formula}
        if query.compare:
            body["compareFilter"] = {"compare": True}
        return body
    return {
        "kind": "FunnelsQuery",
        "series": [series(s) for s in query.steps],
        "dateRange": date_range,
        "funnelsFilter": {
            "funnelWindowInterval": query.window_seconds // 86400 or 1,
            "funnelWindowIntervalUnit": "day" if query.window_seconds >= 86400 else "second",
            "funnelOrderType": query.order,
            "breakdownAttributionType": query.breakdown_attribution,
        },
        **breakdown,
    }
