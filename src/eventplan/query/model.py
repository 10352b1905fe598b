"""The query model: what the CLI, the HTTP API, dashboards and alerts ask for.

Named after PostHog's query schema (`TrendsQuery`, `FunnelsQuery`) so a PostHog
user recognises it; `query/posthog.py` translates PostHog's own JSON into these.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import msgspec

Operator = Literal[
    "exact", "is_not", "contains", "not_contains", "regex", "not_regex",
    "gt", "gte", "lt", "lte", "is_set", "is_not_set",
]  # fmt: skip
Math = Literal[
    "total", "dau", "unique_group", "sum", "avg", "min", "max", "median",
    "p75", "p90", "p95", "p99",
]  # fmt: skip
Interval = Literal["hour", "day", "week", "month"]
FunnelOrder = Literal["ordered", "strict"]
Attribution = Literal["first_touch", "last_touch", "step"]
Verdict = Literal["valid", "invalid", "unplanned"]
ALL_VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
DEFAULT_TOP = 25  # breakdown values shown before the rest is one `Other`, as PostHog
BREAKDOWN_OTHER = "$$_posthog_breakdown_other_$$"
BREAKDOWN_NULL = "$$_posthog_breakdown_null_$$"


class PropertyFilter(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str
    operator: Operator = "exact"
    value: Any = None


class Series(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: str
    filters: tuple[PropertyFilter, ...] = ()
    math: Math = "total"
    math_property: str | None = None
    math_group_type: str = "workspace"
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.event


class DateRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    date_from: str = "-7d"  # -Nh, -Nd, -Nw, -Nm, or an ISO date/time
    date_to: str | None = None  # default: now


class View(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a dashboard or one of its insights is looked at: the period, the interval
    and breakdown when not the insight's own, how many breakdown values to show, and
    whether bots' events count."""

    date_range: DateRange = DateRange(date_from="-30d")
    interval: str | None = None
    breakdown: str | None = None
    breakdown_limit: int = DEFAULT_TOP  # the top values by volume; the rest is `Other`
    include_bots: bool = False


class TrendsQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="trends"):
    series: tuple[Series, ...]
    interval: Interval = "day"
    date_range: DateRange = DateRange()
    breakdown: str | None = None
    breakdown_limit: int = DEFAULT_TOP
    formula: str | None = None
    compare: bool = False
    verdicts: tuple[Verdict, ...] = ALL_VERDICTS
    include_bots: bool = False  # bots' events (capture labels them) are left out by default
    project: str | None = None


class Exclusion(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    event: str
    filters: tuple[PropertyFilter, ...] = ()
    from_step: int = 0
    to_step: int = 1


class FunnelsQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="funnel"):
    steps: tuple[Series, ...]
    date_range: DateRange = DateRange(date_from="-30d")
    window_seconds: int = 14 * 24 * 3600
    order: FunnelOrder = "ordered"
    breakdown: str | None = None
    breakdown_limit: int = DEFAULT_TOP
    breakdown_attribution: Attribution = "first_touch"
    attribution_step: int = 0
    exclusions: tuple[Exclusion, ...] = ()
    aggregate_by: Literal["person", "group"] = "person"
    group_type: str = "workspace"
    verdicts: tuple[Verdict, ...] = ALL_VERDICTS
    include_bots: bool = False  # bots' events (capture labels them) are left out by default
    project: str | None = None


Query = TrendsQuery | FunnelsQuery


class Warning(msgspec.Struct, frozen=True):
    """A reason to distrust a number: the plan-aware part of every result."""

    code: Literal["unplanned_event", "invalid_share", "unplanned_property", "invalid_breakdown"]
    event: str
    message: str
    property: str | None = None
    share: float | None = None
