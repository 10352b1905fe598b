"""The validator: verdicts and violations, as a table of cases over the OpenChat plan."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventplan.plan import Plan
from eventplan.plan.loader import read_plan_text
from eventplan.plan.model import Property
from eventplan.plan.posthog import COMMON_DOLLAR_PROPERTIES
from eventplan.plan.validator import Validator, Verdict, accepts, check_value
from tests.plan.test_schema import features, json_values, near_misses

STREAM = {
    "chat_id": "c-1",
    "model_id": "openai/gpt-4o-mini",
    "status": "completed",
    "duration_ms": 1200,
    "app": "openchat-server",
}


def stream(**changes: Any) -> dict[str, Any]:
    props = {**STREAM, **changes}
    return {
        "event": "chat_message_stream",
        "distinct_id": "u1",
        "properties": {k: v for k, v in props.items() if v is not DROP},
    }


DROP = object()

CASES = [
    ("a complete event", stream(), "valid", []),
    ("PostHog's $ properties", stream(**{"$lib": "posthog-node", "$ip_x": 1}), "valid", []),
    (
        "posthog-js puts token and distinct_id in properties",
        stream(token="phc", distinct_id="u"),
        "valid",
        [],
    ),
    ("an integral float is an integer", stream(duration_ms=1200.0), "valid", []),
    ("missing required", stream(chat_id=DROP), "invalid", [("missing_required", "chat_id")]),
    ("wrong type", stream(duration_ms="12"), "invalid", [("wrong_type", "duration_ms")]),
    (
        "boolean is not an integer",
        stream(duration_ms=True),
        "invalid",
        [("wrong_type", "duration_ms")],
    ),
    ("null is not a string", stream(model_id=None), "invalid", [("wrong_type", "model_id")]),
    ("misspelt enum", stream(status="complete"), "invalid", [("not_in_enum", "status")]),
    ("below minimum", stream(duration_ms=-1), "invalid", [("out_of_range", "duration_ms")]),
    ("too long", stream(model_id="m" * 200), "invalid", [("out_of_range", "model_id")]),
    ("pattern", stream(ip_hash="10.0.0.1"), "invalid", [("pattern_mismatch", "ip_hash")]),
    ("unplanned property warns", stream(colour="red"), "valid", [("unplanned_property", "colour")]),
    ("badly named unplanned property", stream(userAgent="x"), "valid", [("bad_name", "userAgent")]),
    (
        "several violations at once",
        stream(status="eror", chat_id=DROP),
        "invalid",
        [("missing_required", "chat_id"), ("not_in_enum", "status")],
    ),
    (
        "unplanned event",
        {"event": "chat.deleted", "properties": {}},
        "unplanned",
        [("unplanned_event", None)],
    ),
    (
        "unplanned event with a bad name",
        {"event": "Chat Deleted"},
        "unplanned",
        [("unplanned_event", None), ("bad_name", None)],
    ),
    ("PostHog's own events", {"event": "$identify", "properties": {"x": 1}}, "valid", []),
    ("no event name", {"properties": {}}, "invalid", [("missing_required", "event")]),
    (
        "properties not an object",
        {"event": "chat.created", "properties": [1]},
        "invalid",
        [("wrong_type", "properties")],
    ),
    ("not an object", [1, 2], "invalid", [("wrong_type", None)]),
]


@pytest.mark.parametrize(
    ("event", "verdict", "violations"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_verdicts(
    openchat_validator: Validator,
    event: Any,
    verdict: str,
    violations: list[tuple[str, str | None]],
) -> None:
    result = openchat_validator.check(event)
    assert result.verdict == verdict
    assert sorted((v.code, v.property) for v in result.violations) == sorted(violations)


@pytest.mark.parametrize(
    ("event", "verdict"),
    [
        (case[1], case[2])
        for case in CASES
        if isinstance(case[1], dict) and isinstance(case[1].get("properties", {}), dict)
    ],
    ids=[
        case[0]
        for case in CASES
        if isinstance(case[1], dict) and isinstance(case[1].get("properties", {}), dict)
    ],
)
def test_fast_path_agrees_with_exact_path(
    openchat_validator: Validator, event: dict[str, Any], verdict: str
) -> None:
    raw = msgspec.json.encode(event.get("properties", {}))
    fast = openchat_validator.check_raw(event.get("event"), raw)
    assert fast == openchat_validator.check(event)


@pytest.mark.parametrize("plan_name", ["openchat", "features"])
def test_the_quick_accept_never_passes_a_value_the_full_check_refuses(
    openchat_plan: Plan, plan_name: str
) -> None:
    plan = openchat_plan if plan_name == "openchat" else features()
    props = [p for event in plan.events for p in plan.properties_of(event).values()]

    @settings(max_examples=300, deadline=None)
    @given(st.data())
    def implies(data: st.DataObject) -> None:
        prop = data.draw(st.sampled_from(props))
        value = data.draw(near_misses(prop) | json_values)
        if accepts(prop)(value):
            assert check_value(prop, value) is None, (prop.name, value)

    implies()
    # ...and it is not a test that refuses everything: the usual values pass it.
    stream_props = openchat_plan.properties_of("chat_message_stream")
    assert accepts(stream_props["status"])("completed")
    assert accepts(stream_props["duration_ms"])(1200)
    assert accepts(stream_props["ip_hash"])("9f86d081884c7d65")


def test_the_quick_test_refuses_an_enum_option_the_property_s_own_rules_refuse() -> None:
    """An enum and a pattern on one property: an option that breaks the pattern is
    still invalid, so the quick test must not pass it."""
    prop = Property(name="tier", type="string", enum=("gold", "Silver"), pattern="^[a-z]+$")
    assert check_value(prop, "Silver") is not None
    assert not accepts(prop)("Silver")
    assert accepts(prop)("gold")


def test_a_browser_event_with_posthog_js_keys_is_valid_on_both_paths(
    openchat_validator: Validator,
) -> None:
    event = stream(**{key: "x" for key in COMMON_DOLLAR_PROPERTIES})
    raw = msgspec.json.encode(event["properties"])
    assert openchat_validator.check_raw(event["event"], raw) == openchat_validator.check(event)
    assert openchat_validator.check(event).verdict == "valid"


def test_a_violation_says_what_was_expected_and_received(openchat_validator: Validator) -> None:
    (violation,) = openchat_validator.check(stream(status="complete")).violations
    assert violation.expected == ["completed", "error", "aborted"]
    assert violation.received == "complete"
    assert "complete" in violation.message and "completed" in violation.message


def test_secrets_never_appear_in_violations(openchat_validator: Validator) -> None:
    event = {
        "event": "openrouter.key_saved",
        "properties": {"source": "modal", "masked_tail": 12345678, "app": "openchat-web"},
    }
    (violation,) = openchat_validator.check(event).violations
    assert violation.code == "wrong_type"
    assert "12345678" not in str(violation.received) and "12345678" not in violation.message


def test_check_batch_judges_every_event_of_a_batch_body(openchat_validator: Validator) -> None:
    body = msgspec.json.encode(
        {"api_key": "phc", "batch": [stream(), stream(status="x"), {"event": "nope.nope"}]}
    )
    verdicts = [verdict.verdict for _, verdict in openchat_validator.check_batch(body)]
    assert verdicts == ["valid", "invalid", "unplanned"]


POLICY_PLAN = """\
plan: p
version: '1'
unplanned_properties: {policy}
events:
  a.b:
    properties:
      x: {{type: integer}}
"""


@pytest.mark.parametrize(
    ("policy", "verdict", "codes"),
    [
        ("allow", "valid", []),
        ("warn", "valid", ["unplanned_property"]),
        ("reject", "invalid", ["unplanned_property"]),
    ],
)
def test_the_plan_sets_what_an_unplanned_property_gets(
    policy: str, verdict: str, codes: list[str]
) -> None:
    plan, findings = read_plan_text(POLICY_PLAN.format(policy=policy))
    assert plan is not None and findings == []
    validator = Validator(plan)
    event = {"event": "a.b", "properties": {"x": 1, "y": 2, "$lib": "web"}}
    result: Verdict = validator.check(event)
    assert (result.verdict, [v.code for v in result.violations]) == (verdict, codes)
    assert validator.check_raw("a.b", msgspec.json.encode(event["properties"])) == result
