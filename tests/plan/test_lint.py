"""The linter: one deliberately broken plan per rule, and the OpenChat plan passing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from eventplan.plan.lint import lint_file
from tests.conftest import OPENCHAT

BASE = """\
plan: shop
version: 1.0.0
naming:
  legacy_events: []
property_groups:
  common:
    applies_to: all
    properties:
      app: {type: string, enum: [web, server]}
events:
  cart.item_added:
    properties:
      item_id: {type: string, required: true}
      quantity: {type: integer, minimum: 1}
      source: {type: string, enum: [list, detail]}
"""

# (name, text, expected code, expected line)
BROKEN = [
    (
        "event not scope.action",
        BASE + "  CartCheckout:\n    properties: {}\n",
        "bad_event_name",
        16,
    ),
    (
        "legacy name not listed",
        BASE + "  chat_message_submitted:\n    properties: {}\n",
        "bad_event_name",
        16,
    ),
    (
        "property not snake_case",
        BASE + "      itemPrice: {type: number}\n",
        "bad_property_name",
        16,
    ),
    ("unknown type", BASE + "      price: {type: money}\n", "unknown_type", 16),
    ("empty enum", BASE + "      color: {type: string, enum: []}\n", "empty_enum", 16),
    (
        "duplicate enum value",
        BASE + "      size:\n        type: string\n        enum:\n          - s\n          - s\n",
        "duplicate_enum",
        20,
    ),
    (
        "enum value of the wrong type",
        BASE + "      size: {type: integer, enum: [1, two]}\n",
        "enum_wrong_type",
        16,
    ),
    (
        "duplicate event",
        BASE + "  cart.item_added:\n    properties: {}\n",
        "duplicate_event",
        16,
    ),
    (
        "duplicate property",
        BASE + "      quantity: {type: integer}\n",
        "duplicate_property",
        16,
    ),
    (
        "super-property redefined with another type",
        BASE + "      app: {type: integer}\n",
        "super_property_conflict",
        16,
    ),
    (
        "dashboard uses an unknown event",
        BASE + "dashboards:\n  d:\n    insights:\n      i:\n        series: [cart.item_adde]\n",
        "unknown_event",
        20,
    ),
    (
        "dashboard filters on an unknown property",
        BASE
        + "dashboards:\n  d:\n    insights:\n      i:\n        series:\n"
        + "          - event: cart.item_added\n            where: {colour: red}\n",
        "unknown_property",
        22,
    ),
    (
        "dashboard filters on an unknown enum value",
        BASE
        + "dashboards:\n  d:\n    insights:\n      i:\n        series:\n"
        + "          - event: cart.item_added\n            where: {source: search}\n",
        "unknown_enum_value",
        22,
    ),
    (
        "alert breaks down by an unknown property",
        BASE
        + "alerts:\n  a:\n    insight:\n      series: [cart.item_added]\n"
        + "      breakdowns: [colour]\n    threshold: {upper: 5}\n",
        "unknown_property",
        18,
    ),
    (
        "average of a string",
        BASE
        + "dashboards:\n  d:\n    insights:\n      i:\n        series:\n"
        + "          - {event: cart.item_added, math: avg, property: item_id}\n",
        "non_numeric_math",
        21,
    ),
    (
        "example that breaks its own rule",
        BASE + "      sku: {type: string, pattern: '^SKU-', examples: [ABC]}\n",
        "bad_example",
        16,
    ),
    ("unknown key", BASE + "      note: {type: string, requird: true}\n", "unknown_key", 16),
    ("not YAML", BASE + "  oops: [unclosed\n", "yaml_syntax", 17),
    (
        "naming pattern that is not a regular expression",
        BASE.replace("naming:\n", "naming:\n  events: '???'\n"),
        "bad_pattern",
        4,
    ),
    (
        # every backend's engine computes hour to month; a minute was a month in disguise
        "an interval the engine does not compute",
        BASE
        + "dashboards:\n  d:\n    insights:\n      i:\n        kind: trends\n"
        + "        interval: minute\n        series: [cart.item_added]\n",
        "unknown_interval",
        21,
    ),
    (
        "nested deeper than YAML can read",
        BASE + "  deep.nesting:\n    properties: " + "[" * 3000 + "]" * 3000 + "\n",
        "yaml_syntax",
        0,
    ),
]


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [case[1:] for case in BROKEN],
    ids=[case[0] for case in BROKEN],
)
def test_every_rule_has_a_failing_plan(
    write_plan: Callable[[str], Path], text: str, code: str, line: int
) -> None:
    path = write_plan(text)
    result = CliRunner().invoke(cli, ["lint", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:{line}: {code}: " in result.output


def test_a_plan_that_is_not_utf8_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(BASE.replace("shop", "caf\u00e9").encode("latin-1"))
    result = CliRunner().invoke(cli, ["lint", str(path)])
    assert result.exit_code == 1
    assert f"{path}:0: unreadable: the plan is not UTF-8 text" in result.output


def test_the_base_plan_is_clean(write_plan: Callable[[str], Path]) -> None:
    assert lint_file(write_plan(BASE)) == []


def test_near_duplicate_property_names_are_a_warning(write_plan: Callable[[str], Path]) -> None:
    path = write_plan(
        BASE
        + "  user.signed_up:\n    properties:\n      has_api_key: {type: boolean}\n"
        + "      has_openrouter_key: {type: boolean}\n"
    )
    result = CliRunner().invoke(cli, ["lint", str(path)])
    assert result.exit_code == 0
    assert "near_duplicate_property (warning)" in result.output
    assert "`has_api_key`" in result.output and "`has_openrouter_key`" in result.output


def test_a_legacy_name_that_conforms_is_a_stale_exception(
    write_plan: Callable[[str], Path],
) -> None:
    path = write_plan(BASE.replace("legacy_events: []", "legacy_events: [cart.item_added]"))
    result = CliRunner().invoke(cli, ["lint", str(path)])
    assert result.exit_code == 0
    assert f"{path}:11: stale_legacy_name (warning): " in result.output


def test_an_acknowledgement_without_a_matching_warning_is_stale(
    write_plan: Callable[[str], Path],
) -> None:
    path = write_plan(
        BASE + "acknowledge:\n  - {code: near_duplicate_property, subjects: [a, b], reason: x}\n"
    )
    codes = [finding.code for finding in lint_file(path)]
    assert codes == ["stale_acknowledgement"]


def test_openchat_plan_lints_clean_with_every_warning_explained() -> None:
    findings = lint_file(OPENCHAT)
    assert [f for f in findings if f.severity == "error"] == []
    warnings = [f for f in findings if f.severity == "warning"]
    assert warnings, "the seed's has_api_key / has_openrouter_key drift should be noticed"
    assert all(f.acknowledged for f in warnings)
    result = CliRunner().invoke(cli, ["lint", str(OPENCHAT)])
    assert result.exit_code == 0
