"""JSON Schema export: our validator and `jsonschema` on the exported schemas agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.cli import cli
from eventplan.plan import Plan, load_plan
from eventplan.plan.loader import read_plan_text
from eventplan.plan.model import Property
from eventplan.plan.schema import DRAFT, plan_schemas
from eventplan.plan.validator import Validator
from eventplan.simulate.samples import sample_value
from tests.conftest import OPENCHAT

# Every feature the OpenChat plan does not use: datetime, nullable, number bounds,
# integer enums, and rejecting unplanned properties.
FEATURES = """\
plan: features
version: '1'
unplanned_properties: reject
events:
  order.placed:
    properties:
      placed_at: {type: datetime, required: true}
      total: {type: number, minimum: 0.5, maximum: 1000}
      coupon: {type: string, nullable: true, min_length: 3, max_length: 8, pattern: '^[A-Z]'}
      tier: {type: integer, enum: [1, 2, 3]}
      gift: {type: boolean, nullable: true}
"""

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=5,
)


def near_misses(prop: Property) -> st.SearchStrategy[Any]:
    """Values close to the property's rules: the interesting edge for agreement."""
    options: list[Any] = [
        None,
        True,
        0,
        1.5,
        "",
        "x" * 300,
        "2026-02-30T10:00:00Z",
        "2026-11-01t10:00:00z",
    ]
    if prop.enum is not None:
        options += (
            [str(v) + "x" for v in prop.enum]
            + [str(v).upper() for v in prop.enum]
            + list(prop.enum)
        )
        options += [float(v) for v in prop.enum if isinstance(v, int) and not isinstance(v, bool)]
    for bound in (prop.minimum, prop.maximum):
        if bound is not None:
            options += [bound, bound - 1, bound + 1, float(bound), bound - 0.25, bound + 0.25]
    for length in (prop.min_length, prop.max_length):
        if length is not None:
            options += ["A" * length, "A" * (length - 1 if length else 0), "A" * (length + 1)]
    return st.sampled_from(options)


@st.composite
def events(draw: st.DrawFn, plan: Plan) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(plan.events)))
    props: dict[str, Any] = {}
    for prop in plan.properties_of(name).values():
        choice = draw(st.sampled_from(["omit", "valid", "valid", "near", "any"]))
        if choice == "valid":
            props[prop.name] = sample_value(prop, draw(st.randoms(use_true_random=False)))
        elif choice == "near":
            props[prop.name] = draw(near_misses(prop))
        elif choice == "any":
            props[prop.name] = draw(json_values)
    extra = draw(
        st.dictionaries(
            st.sampled_from(["$lib", "$browser", "colour", "userAgent", "token"]),
            json_values,
            max_size=2,
        )
    )
    props.update(extra)
    return {"event": name, "distinct_id": "u", "properties": props}


def openchat() -> Plan:
    return load_plan(OPENCHAT)


def features() -> Plan:
    plan, findings = read_plan_text(FEATURES)
    assert plan is not None and findings == [], findings
    return plan


@pytest.mark.parametrize("make_plan", [openchat, features], ids=["openchat", "features"])
def test_validator_and_jsonschema_agree(make_plan: Any) -> None:
    plan = make_plan()
    validator = Validator(plan)
    checkers = {
        name: jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        for name, schema in plan_schemas(plan).items()
    }

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events(plan))
    def agree(event: dict[str, Any]) -> None:
        ours = validator.check(event)
        theirs = checkers[event["event"]].is_valid(event)
        assert ours.ok == theirs, (ours, list(checkers[event["event"]].iter_errors(event)))
        fast = validator.check_raw(event["event"], msgspec.json.encode(event["properties"]))
        assert fast == ours

    agree()


def test_schemas_are_valid_draft_2020_12(openchat_plan: Plan) -> None:
    for schema in plan_schemas(openchat_plan).values():
        assert schema["$schema"] == DRAFT
        jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_command_prints_one_event_or_writes_every_event(tmp_path: Path) -> None:
    runner = CliRunner()
    one = runner.invoke(cli, ["schema", str(OPENCHAT), "--event", "chat.created"])
    assert one.exit_code == 0
    document = json.loads(one.output)
    assert document["properties"]["event"] == {"const": "chat.created"}
    assert document["properties"]["properties"]["properties"]["storage_backend"]["enum"] == [
        "postgres",
        "memory_fallback",
    ]
    written = runner.invoke(cli, ["schema", str(OPENCHAT), "--out", str(tmp_path / "schemas")])
    assert written.exit_code == 0
    written_names = {path.stem for path in (tmp_path / "schemas").glob("*.json")}
    assert written_names == set(load_plan(OPENCHAT).events)  # one file per planned event
    unknown = runner.invoke(cli, ["schema", str(OPENCHAT), "--event", "chat.deleted"])
    assert unknown.exit_code == 1 and "chat.deleted" in unknown.output
