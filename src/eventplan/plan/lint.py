"""The plan's rules: naming, consistency, and references from dashboards and alerts.

Each rule is a function from the plan to findings; `RULES` lists them so the docs,
the tests (one broken plan per rule) and the CLI all see the same set.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import combinations
from pathlib import Path

from eventplan.plan.loader import Diagnostic, Severity, read_plan
from eventplan.plan.model import EventRef, Insight, Plan, Property
from eventplan.plan.validator import check_value

Rule = Callable[[Plan], Iterator[Diagnostic]]
NUMERIC_MATHS = ("sum", "avg", "min", "max", "median", "p75", "p90", "p95", "p99")
ENUM_OPERATORS = ("exact", "is_not")


def _finding(
    plan: Plan, line: int, code: str, message: str, severity: Severity = "error"
) -> Diagnostic:
    return Diagnostic(plan.path, line, code, message, severity)


def naming_rules(plan: Plan) -> Iterator[Diagnostic]:
    """Events are `scope.action`, properties snake_case; legacy names must be listed."""
    event_pattern = re.compile(plan.naming.event_pattern)
    property_pattern = re.compile(plan.naming.property_pattern)
    for event in plan.events.values():
        if event.name.startswith("$"):
            continue  # PostHog's own events keep PostHog's names
        conforms = bool(event_pattern.search(event.name))
        if not conforms and event.name not in plan.naming.legacy_events:
            yield _finding(
                plan,
                event.line,
                "bad_event_name",
                f"event `{event.name}` does not match the naming convention "
                f"{plan.naming.event_pattern}; rename it or list it under naming.legacy_events",
            )
    for name in plan.naming.legacy_events:
        if name not in plan.events:
            yield _finding(
                plan, 0, "stale_legacy_name", f"legacy event `{name}` is not in the plan", "warning"
            )
        elif event_pattern.search(name):
            yield _finding(
                plan,
                plan.events[name].line,
                "stale_legacy_name",
                f"legacy event `{name}` already follows the convention; remove it from the list",
                "warning",
            )
    for prop in _all_properties(plan):
        if prop.name.startswith("$"):
            continue
        if (
            not property_pattern.search(prop.name)
            and prop.name not in plan.naming.legacy_properties
        ):
            yield _finding(
                plan,
                prop.line,
                "bad_property_name",
                f"property `{prop.name}` ({prop.owner}) is not snake_case "
                f"({plan.naming.property_pattern}); rename it or list it under "
                "naming.legacy_properties",
            )


def type_conflicts(plan: Plan) -> Iterator[Diagnostic]:
    """A super-property defined again (in another group or on an event) with another type."""
    group_types: dict[str, Property] = {}
    for group in plan.groups.values():
        for prop in group.properties.values():
            first = group_types.setdefault(prop.name, prop)
            if first.type != prop.type:
                yield _conflict(plan, prop, first)
    for event in plan.events.values():
        for group in plan.groups_for(event):
            for name, prop in event.properties.items():
                shared = group.properties.get(name)
                if shared is not None and shared.type != prop.type:
                    yield _conflict(plan, prop, shared)


def _conflict(plan: Plan, prop: Property, first: Property) -> Diagnostic:
    return _finding(
        plan,
        prop.line,
        "super_property_conflict",
        f"property `{prop.name}` is a {prop.type} in {prop.owner} but a {first.type} in "
        f"{first.owner} (line {first.line}); one name must have one type",
    )


def group_targets(plan: Plan) -> Iterator[Diagnostic]:
    for group in plan.groups.values():
        for name in group.applies_to.events:
            if name not in plan.events:
                yield _finding(
                    plan,
                    group.line,
                    "unknown_event",
                    f"property group `{group.name}` applies to `{name}`, which is not in the plan",
                )


def references(plan: Plan) -> Iterator[Diagnostic]:
    """Dashboards and alerts may only use planned events, properties and enum values."""
    for dashboard in plan.dashboards:
        for insight in dashboard.insights:
            yield from _insight_references(plan, insight, f"dashboard `{dashboard.name}`")
    for alert in plan.alerts:
        yield from _insight_references(plan, alert.insight, f"alert `{alert.name}`")


def _insight_references(plan: Plan, insight: Insight, where: str) -> Iterator[Diagnostic]:
    known: dict[str, Property] = {}
    for ref in insight.series:
        if ref.event not in plan.events:
            suggestion = _suggest(ref.event, list(plan.events))
            yield _finding(
                plan,
                ref.line,
                "unknown_event",
                f"{where} insight `{insight.name}` uses event `{ref.event}`, "
                f"which is not in the plan{suggestion}",
            )
            continue
        properties = plan.properties_of(ref.event)
        known.update(properties)
        yield from _ref_properties(plan, ref, properties, f"{where} insight `{insight.name}`")
    for name in insight.breakdowns:
        if known and not name.startswith("$") and name not in known:
            yield _finding(
                plan,
                insight.line,
                "unknown_property",
                f"{where} insight `{insight.name}` breaks down by `{name}`, which none of its "
                f"events carries{_suggest(name, list(known))}",
            )


def _ref_properties(
    plan: Plan, ref: EventRef, properties: dict[str, Property], where: str
) -> Iterator[Diagnostic]:
    for flt in ref.filters:
        prop = properties.get(flt.property)
        if prop is None:
            if not flt.property.startswith("$"):
                yield _finding(
                    plan,
                    flt.line,
                    "unknown_property",
                    f"{where} filters `{ref.event}` on `{flt.property}`, which that event does "
                    f"not carry{_suggest(flt.property, list(properties))}",
                )
            continue
        if prop.enum is None or flt.operator not in ENUM_OPERATORS:
            continue
        values = flt.value if isinstance(flt.value, tuple) else (flt.value,)
        for value in values:
            if value not in prop.enum:
                yield _finding(
                    plan,
                    flt.line,
                    "unknown_enum_value",
                    f"{where} filters `{ref.event}` on {flt.property} = {value!r}, which is not "
                    f"one of {list(prop.enum)}",
                )
    if ref.math_property is not None:
        prop = properties.get(ref.math_property)
        if prop is None:
            yield _finding(
                plan,
                ref.line,
                "unknown_property",
                f"{where} aggregates `{ref.math_property}`, which `{ref.event}` does not carry",
            )
        elif ref.math in NUMERIC_MATHS and prop.type not in ("integer", "number"):
            yield _finding(
                plan,
                ref.line,
                "non_numeric_math",
                f"{where} takes the {ref.math} of `{ref.math_property}`, a {prop.type}",
            )


def near_duplicates(plan: Plan) -> Iterator[Diagnostic]:
    """Two property names that probably mean the same thing (drift between teams).

    Flags names of one type that share their first and last words (`has_api_key`,
    `has_openrouter_key`), where one is contained in the other (`ip_hash`,
    `client_ip_hash_trunc`), or that differ by a typo (`utm_source`, `utm_sources`).
    """
    by_name: dict[str, Property] = {}
    for prop in _all_properties(plan):
        by_name.setdefault(prop.name, prop)
    for a, b in combinations(sorted(by_name), 2):
        first, second = by_name[a], by_name[b]
        if first.type != second.type or a.startswith("$") or b.startswith("$"):
            continue
        if _alike(a, b):
            yield _finding(
                plan,
                max(first.line, second.line),
                "near_duplicate_property",
                f"`{a}` ({first.owner}) and `{b}` ({second.owner}) look like the same "
                "property under two names; keep one, or acknowledge the pair with a reason",
                "warning",
            )


def _alike(a: str, b: str) -> bool:
    words_a, words_b = a.split("_"), b.split("_")
    if len(words_a) >= 2 and len(words_b) >= 2:
        if words_a[0] == words_b[0] and words_a[-1] == words_b[-1]:
            return True
        shorter, longer = sorted((words_a, words_b), key=len)
        if len(shorter) < len(longer) and any(
            longer[i : i + len(shorter)] == shorter for i in range(len(longer) - len(shorter) + 1)
        ):
            return True
    return len(a) >= 6 and difflib.SequenceMatcher(None, a, b).ratio() >= 0.9


def examples_fit(plan: Plan) -> Iterator[Diagnostic]:
    """A property's examples must pass its own rules (codegen and samples use them)."""
    for prop in _all_properties(plan):
        for example in prop.examples:
            problem = check_value(prop, example)
            if problem is not None:
                yield _finding(
                    plan, prop.line, "bad_example", f"example of `{prop.name}`: {problem.message}"
                )


def _all_properties(plan: Plan) -> Iterator[Property]:
    for group in plan.groups.values():
        yield from group.properties.values()
    for event in plan.events.values():
        yield from event.properties.values()


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def rename_rules(plan: Plan) -> Iterator[Diagnostic]:
    """An old name (`renamed_from`) must not be a name the plan still plans: events
    sent under it would be stored as the other."""
    owners: dict[str, str] = {}
    for event in plan.events.values():
        for old in event.renamed_from:
            if old in plan.events:
                yield _finding(
                    plan,
                    event.line,
                    "rename_conflict",
                    f"event `{event.name}` is renamed from `{old}`, which the plan still plans",
                )
            elif old in owners:
                yield _finding(
                    plan,
                    event.line,
                    "rename_conflict",
                    f"`{old}` is the old name of both `{owners[old]}` and `{event.name}`",
                )
            owners[old] = event.name


RULES: tuple[Rule, ...] = (
    naming_rules,
    rename_rules,
    type_conflicts,
    group_targets,
    references,
    near_duplicates,
    examples_fit,
)


def lint_plan(plan: Plan) -> list[Diagnostic]:
    """Every rule's findings, with acknowledged warnings marked by their reason."""
    findings = [finding for rule in RULES for finding in rule(plan)]
    used: set[int] = set()
    marked = []
    for finding in findings:
        for index, ack in enumerate(plan.acknowledged):
            if (
                finding.severity == "warning"
                and ack.code == finding.code
                and all(f"`{subject}`" in finding.message for subject in ack.subjects)
            ):
                finding = replace(finding, acknowledged=ack.reason)
                used.add(index)
                break
        marked.append(finding)
    for index, ack in enumerate(plan.acknowledged):
        if index not in used:
            marked.append(
                _finding(
                    plan,
                    ack.line,
                    "stale_acknowledgement",
                    f"acknowledgement of {ack.code} for {', '.join(ack.subjects)} matches no "
                    "warning; remove it",
                    "warning",
                )
            )
    return marked


def lint_file(path: str | Path) -> list[Diagnostic]:
    """All findings for a plan file, structural and rule-based, in line order."""
    plan, diagnostics = read_plan(path)
    if plan is not None:
        diagnostics = diagnostics + lint_plan(plan)
    return sorted(diagnostics, key=lambda d: (d.line, d.code))
