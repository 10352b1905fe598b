"""The plan compiled into SQL judges as the Python validator does, on both backends.

One judge, compiled twice: `Validator` for the per-event doors, and SQL run inside
the store's engine: `JudgeSql` (DuckDB) and `JudgeClickHouse` (ClickHouse, here on
chDB). Fed the same events, each must give the same verdict and the same violations
(code, property, expected, received, message, severity, in order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.capture.events import wide_ints_as_floats
from eventplan.capture.judge import Judge
from eventplan.load import JudgeClickHouse, JudgeSql, judge_events, judge_events_clickhouse
from eventplan.plan import Plan
from eventplan.plan.loader import read_plan_text
from eventplan.plan.privacy import PrivacyPolicy
from eventplan.plan.validator import Validator
from eventplan.simulate.samples import sample_events
from eventplan.store.clickhouse import Engine
from tests.conftest import BACKENDS, examples
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


# (plan, [(event, properties JSON)], stored events' captured violations or None)
# → [(verdict, violations JSON or None)]: one compilation of the plan, run.
Compiled = Callable[[Plan, list[tuple[str, str]], list[str | None] | None], list[Any]]


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine.connect(f"chdb:{tmp_path_factory.mktemp('judge') / 'clickhouse'}")
    yield engine
    engine.close()


def on_duckdb(
    plan: Plan, pairs: list[tuple[str, str]], captured: list[str | None] | None
) -> list[Any]:
    judge = JudgeSql(plan, stored=captured is not None)
    return judge_events(duckdb.connect(), judge, pairs, captured)


@pytest.fixture(params=BACKENDS)
def compiled(request: pytest.FixtureRequest) -> Compiled:
    """The plan compiled for one backend, run over the events given."""
    if request.param == "duckdb":
        return on_duckdb
    engine: Engine = request.getfixturevalue("clickhouse")

    def on_clickhouse(
        plan: Plan, pairs: list[tuple[str, str]], captured: list[str | None] | None
    ) -> list[Any]:
        judge = JudgeClickHouse(plan, stored=captured is not None)
        return judge_events_clickhouse(engine, judge, pairs, captured)

    return on_clickhouse


def cases(request: pytest.FixtureRequest, count: int) -> int:
    """Hypothesis examples for the backend this test runs on."""
    return examples(request.node.callspec.params["compiled"], count)


def both_judge(compiled: Compiled, plan: Plan, batch: list[dict[str, Any]]) -> None:
    validator = Validator(plan)
    # As the log holds them: integers past 64 bits are floats, as PostHog reads them.
    batch = [{**e, "properties": wide_ints_as_floats(e["properties"])} for e in batch]
    pairs = [(e["event"], msgspec.json.encode(e["properties"]).decode()) for e in batch]
    judged = compiled(plan, pairs, None)
    assert len(judged) == len(batch)
    for event, (verdict, violations) in zip(batch, judged, strict=True):
        # What JSON says, read back (a tuple is a list, say).
        properties = msgspec.json.decode(msgspec.json.encode(event["properties"]))
        expected = validator.check_properties(event["event"], properties)
        got = msgspec.json.decode(violations) if violations else []
        assert (verdict, got) == (expected.verdict, msgspec.to_builtins(expected.violations)), event


PLANS = {"openchat": openchat, "features": features, "edges": edges}


@pytest.mark.parametrize("name", PLANS)
def test_the_compiled_plan_judges_random_events_as_the_validator_does(
    name: str, compiled: Compiled, request: pytest.FixtureRequest
) -> None:
    plan = PLANS[name]()

    @settings(
        max_examples=cases(request, 25),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(events(plan), min_size=1, max_size=40))
    def agree(batch: list[dict[str, Any]]) -> None:
        both_judge(compiled, plan, batch)

    agree()


@pytest.mark.parametrize("name", PLANS)
def test_unplanned_events_and_odd_keys_are_judged_alike(
    name: str, compiled: Compiled, request: pytest.FixtureRequest
) -> None:
    plan = PLANS[name]()
    names = st.sampled_from(
        ["$pageview", "$custom", "Bad Name", "chat.opened", "x.y", *plan.events]
    )
    odd_keys = st.text(max_size=6) | st.sampled_from(["$lib", "userAgent", "a/b~c", "Size", "~"])

    @settings(
        max_examples=cases(request, 25),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
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
        both_judge(compiled, plan, batch)

    agree()


def test_simulated_openchat_traffic_gets_the_same_verdicts(
    openchat_plan: Plan, compiled: Compiled
) -> None:
    batch = sample_events(openchat_plan, 3000)
    both_judge(compiled, openchat_plan, batch)
    pairs = [(e["event"], msgspec.json.encode(e["properties"]).decode()) for e in batch]
    verdicts = {verdict for verdict, _ in compiled(openchat_plan, pairs, None)}
    assert verdicts == {"valid", "invalid", "unplanned"}  # the samples break some events


def test_a_private_value_is_never_shown_in_a_violation(compiled: Compiled) -> None:
    plan = edges()
    pairs = [("thing.made", '{"code": null, "secret": "abc", "card": "4242424242424242"}')]
    [(verdict, violations)] = compiled(plan, pairs, None)
    assert verdict == "invalid"
    assert violations is not None
    assert "abc" not in violations and "4242" not in violations
    assert {v["received"] for v in msgspec.json.decode(violations)} == {"[hashed]", "[masked]"}


@pytest.mark.parametrize("name", ["openchat", "edges"])
def test_stored_events_are_judged_again_as_the_validator_judges_them(
    name: str, compiled: Compiled, request: pytest.FixtureRequest
) -> None:
    """After the privacy policy, a changed property keeps the violations it had when it
    was captured; every other one is judged again (`Judge.rejudge_stored`)."""
    plan = PLANS[name]()
    judge, privacy = Judge(plan), PrivacyPolicy(plan, b"salt")

    @settings(
        max_examples=cases(request, 25),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(events(plan), min_size=1, max_size=30))
    def agree(batch: list[dict[str, Any]]) -> None:
        pairs, captured_of, expected = [], [], []
        for event in batch:
            properties = msgspec.json.decode(
                msgspec.json.encode(wide_ints_as_floats(event["properties"]))
            )
            captured = judge.verdict(event["event"], properties).violations
            privacy.apply(event["event"], properties)
            pairs.append((event["event"], msgspec.json.encode(properties).decode()))
            captured_of.append(msgspec.json.encode(captured).decode() if captured else None)
            again = judge.rejudge_stored(event["event"], properties, captured)
            expected.append((again.verdict, msgspec.to_builtins(again.violations)))
        found = compiled(plan, pairs, captured_of)
        assert [(v, msgspec.json.decode(j) if j else []) for v, j in found] == expected

    agree()


def test_a_plan_whose_events_have_no_properties_is_judged_alike(compiled: Compiled) -> None:
    plan, findings = read_plan_text("plan: bare\nversion: '1'\nevents:\n  thing.done: {}\n")
    assert plan is not None, findings
    both_judge(
        compiled,
        plan,
        [
            {"event": "thing.done", "properties": {"x": 1, "$lib": "web"}},
            {"event": "thing.done", "properties": {}},
            {"event": "other.event", "properties": {}},
        ],
    )
