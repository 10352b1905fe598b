"""What a chart says in words: a breakdown value (PostHog's markers in words, a value
the plan forbids shown as such) and a step's filters.

The API keeps PostHog's `breakdown_value` (with its `$$_posthog_breakdown_…$$`
markers) for PostHog's clients; `breakdown_label` and `breakdown_kind` are what a
person reads: `(none)`, `Other`, or `invalid: completex` for a value the breakdown
property's rules refuse (outside the enum, of the wrong type, an array where the plan
has one value).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from eventplan.plan.model import Plan, Property
from eventplan.plan.validator import check_value
from eventplan.query.model import BREAKDOWN_NULL, BREAKDOWN_OTHER, PropertyFilter

Kind = Literal["value", "other", "none", "invalid"]
_UNREADABLE = object()


def breakdown_label(value: str, prop: Property | None) -> tuple[str, Kind]:
    if value == BREAKDOWN_NULL:
        return "(none)", "none"
    if value == BREAKDOWN_OTHER:
        return "Other", "other"
    if prop is not None and not _allowed(prop, value):
        return f"invalid: {value}", "invalid"
    return value, "value"


def breakdown_property(plan: Plan | None, event: str, key: str | None) -> Property | None:
    """The rules the plan gives `key` on `event`, if it plans it there."""
    if plan is None or key is None or event not in plan.events:
        return None
    return plan.properties_of(event).get(key)


def label_results(
    results: list[dict[str, Any]], plan: Plan | None, key: str | None, event: str
) -> None:
    """Each result with a breakdown value gets its label and kind, and a display
    label; judged by the rules of its own series' event (else `event`'s)."""
    for item in results:
        value = item.get("breakdown_value")
        if value is None:
            continue
        own = (item.get("action") or {}).get("id", event)
        label, kind = breakdown_label(str(value), breakdown_property(plan, own, key))
        item["breakdown_label"], item["breakdown_kind"] = label, kind
        if "label" in item:
            item["display_label"] = str(item["label"]).removesuffix(str(value)) + label


SYMBOLS = {
    "exact": "=",
    "is_not": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "contains": "contains",
    "not_contains": "does not contain",
    "regex": "matches",
    "not_regex": "does not match",
}


def filter_text(filters: Iterable[PropertyFilter]) -> str:
    """A step's or series' filters as a chart shows them: `cta_id = hero_try_openchat`."""
    parts = []
    for flt in filters:
        if flt.operator in ("is_set", "is_not_set"):
            parts.append(f"{flt.key} {'is set' if flt.operator == 'is_set' else 'is not set'}")
            continue
        values = flt.value if isinstance(flt.value, list | tuple) else [flt.value]
        shown = " or ".join(str(v) for v in values)
        parts.append(f"{flt.key} {SYMBOLS.get(flt.operator, flt.operator)} {shown}")
    return ", ".join(parts)


def _allowed(prop: Property, text: str) -> bool:
    value = _typed(prop, text)
    return value is not _UNREADABLE and check_value(prop, value) is None


def _typed(prop: Property, text: str) -> Any:
    """The breakdown's text (SQL reads every value as text) as the plan's type."""
    if text[:1] in ("[", "{"):
        return _UNREADABLE  # an array or object where the plan has one value
    if prop.type in ("integer", "number"):
        try:
            number = float(text)
        except ValueError:
            return _UNREADABLE
        return int(number) if prop.type == "integer" and number.is_integer() else number
    if prop.type == "boolean":
        return {"true": True, "false": False}.get(text, _UNREADABLE)
    return text
