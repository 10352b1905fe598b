"""The plan compiled into SQL judges as the Python validator does.

One judge, two compilations: `Validator` for the per-event doors, `JudgeSql` for
the loader. Fed the same events, they must give the same verdict and the same
violations (code, property, expected, received, message, severity, in order).
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.capture.events import wide_ints_as_floats
from eventplan.capture.judge import Judge
from eventplan.load import JudgeSql, judge_events
from eventplan.plan import Plan
from eventplan.plan.loader import read_plan_text
from eventplan.plan.privacy import PrivacyPolicy
from eventplan.plan.validator import Validator
from eventplan.simulate.samples import sample_events
from tests.plan.test_schema import events, features, json_values, openchat

# Rules the other plans do not have: a required nullable property, number and
# boolean enums, patterns with `$` and `\d`, names that differ only in case, one
# name typed differently by two events, legacy names, and private values.
EDGES = """\
plan: edges
version: '1'
unplanned_properties: warn
system_events: unplanned
naming:
  legacy_properties: [userAgent]
events:
  thing.made:
    properties:
      code: {type: string, required: true, nullable: true, pattern: '^\\d{3}$'}
      level: {type: number, enum: [1, 2.5, 3]}
      flag: {type: boolean, enum: [true]}
      Size: {type: integer, minimum: -3, maximum: 3}
      size: {type: string, max_length: 2}
      secret: {type: string, min_length: 4, privacy: {policy: hash}}
      card: {type: string, max_length: 6, privacy: {policy: mask, keep_last: 2}}
      a/b~c: {type: string}
  thing.gone:
    properties:
      size: {type: integer, required: true}
      when: {type: datetime, nullable: true}
"""


def edges() -> Plan:
    plan, findings = read_plan_text(EDGES)
    assert plan is not None, findings
    return plan


def both_judge(plan: Plan, batch: list[dict[str, Any]]) -> None:
    validator = Validator(plan)
    # As the log holds them: integers past 64 bits are floats, as PostHog reads them.
    batch = [{**e, "properties": wide_ints_as_floats(e["properties"])} for e in batch]
    pairs = [(e["event"], msgspec.json.encode(e["properties"]).decode()) for e in batch]
    judged = judge_events(duckdb.connect(), JudgeSql(plan), pairs)
    assert len(judged) == len(batch)
    for event, (verdict, violations) in zip(batch, judged, strict=True):
        # What JSON says, read back (a tuple is a list, say).
        properties = msgspec.json.decode(msgspec.json.encode(event["properties"]))
        expected = validator.check_properties(event["event"], properties)
        got = msgspec.json.decode(violations) if violations else []
        assert (verdict, got) == (expected.verdict, msgspec.to_builtins(expected.violations)), event


PLANS = {"openchat": openchat, "features": features, "edges": edges}


@pytest.mark.parametrize("name", PLANS)
def test_the_compiled_plan_judges_random_events_as_the_validator_does(name: str) -> None:
    plan = PLANS[name]()

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(events(plan), min_size=1, max_size=40))
    def agree(batch: list[dict[str, Any]]) -> None:
        both_judge(plan, batch)

    agree()


@pytest.mark.parametrize("name", PLANS)
def test_unplanned_events_and_odd_keys_are_judged_alike(name: str) -> None:
    plan = PLANS[name]()
    names = st.sampled_from(
        ["$pageview", "$custom", "Bad Name", "chat.opened", "x.y", *plan.events]
    )
    odd_keys = st.text(max_size=6) | st.sampled_from(["$lib", "userAgent", "a/b~c", "Size", "~"])

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.fixed_dictionaries(
                {"event": names, "properties": st.dictionaries(odd_keys, json_values, max_size=5)}
            ),
            min_size=1,
            max_size=30,
        )
    )
    def agree(batch: list[dict[str, Any]]) -> None:
        both_judge(plan, batch)

    agree()


def test_simulated_openchat_traffic_gets_the_same_verdicts(openchat_plan: Plan) -> None:
    batch = sample_events(openchat_plan, 3000)
    both_judge(openchat_plan, batch)
    verdicts = {
        v
        for v, _ in judge_events(
            duckdb.connect(),
            JudgeSql(openchat_plan),
            [(e["event"], msgspec.json.encode(e["properties"]).decode()) for e in batch],
        )
    }
    assert verdicts == {"valid", "invalid", "unplanned"}  # the samples break some events


def test_a_private_value_is_never_shown_in_a_violation() -> None:
    plan = edges()
    pairs = [("thing.made", '{"code": null, "secret": "abc", "card": "4242424242424242"}')]
    [(verdict, violations)] = judge_events(duckdb.connect(), JudgeSql(plan), pairs)
    assert verdict == "invalid"
    assert violations is not None
    assert "abc" not in violations and "4242" not in violations
    assert {v["received"] for v in msgspec.json.decode(violations)} == {"[hashed]", "[masked]"}


def judge_stored(plan: Plan, rows: list[tuple[str, str, str | None]]) -> list[tuple[str, Any]]:
    """(verdict, violations) of stored events (event, properties, captured violations),
    by the compiled plan in `stored` mode."""
    connection = duckdb.connect()
    judge = JudgeSql(plan, stored=True)
    judge.register(connection)
    connection.register(
        "stored_events",
        pa.table(
            {
                "event": [r[0] for r in rows],
                "properties": [r[1] for r in rows],
                "captured": pa.array([r[2] for r in rows], pa.string()),
            }
        ),
    )
    source = (
        "SELECT event, properties::JSON AS properties, captured::JSON AS captured "
        "FROM stored_events"
    )
    found = connection.sql(f"SELECT verdict, violations FROM ({judge.select(source)})").fetchall()
    return [(v, msgspec.json.decode(violations) if violations else []) for v, violations in found]


@pytest.mark.parametrize("name", ["openchat", "edges"])
def test_stored_events_are_judged_again_as_the_validator_judges_them(name: str) -> None:
    """After the privacy policy, a changed property keeps the violations it had when it
    was captured; every other one is judged again (`Judge.rejudge_stored`)."""
    plan = PLANS[name]()
    judge, privacy = Judge(plan), PrivacyPolicy(plan, b"salt")

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(events(plan), min_size=1, max_size=30))
    def agree(batch: list[dict[str, Any]]) -> None:
        rows, expected = [], []
        for event in batch:
            properties = msgspec.json.decode(
                msgspec.json.encode(wide_ints_as_floats(event["properties"]))
            )
            captured = judge.verdict(event["event"], properties).violations
            privacy.apply(event["event"], properties)
            encoded = msgspec.json.encode(captured).decode() if captured else None
            rows.append((event["event"], msgspec.json.encode(properties).decode(), encoded))
            again = judge.rejudge_stored(event["event"], properties, captured)
            expected.append((again.verdict, msgspec.to_builtins(again.violations)))
        assert judge_stored(plan, rows) == expected

    agree()


def test_a_plan_whose_events_have_no_properties_is_judged_alike() -> None:
    plan, findings = read_plan_text("plan: bare\nversion: '1'\nevents:\n  thing.done: {}\n")
    assert plan is not None, findings
    both_judge(
        plan,
        [
            {"event": "thing.done", "properties": {"x": 1, "$lib": "web"}},
            {"event": "thing.done", "properties": {}},
            {"event": "other.event", "properties": {}},
        ],
    )
