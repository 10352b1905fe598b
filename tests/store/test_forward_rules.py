"""Gateway mode per event: the plan says what leaves for PostHog (`forward`, `sample`)
and what stays here (`keep_local`); the gateway counts what it held back and why.

A second eventplan server plays PostHog, as in test_forward.py."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
from posthog import Posthog

from eventplan.errors import PlanError
from eventplan.plan import load_plan
from tests.servers import TOKEN, RunningServer, free_port, logged_in
from tests.store.test_forward import UPSTREAM_TOKEN

PLAN = """
plan: rules
version: "1"
forward: all
events:
  chat.sent:
    forward: valid
    properties:
      chars: {type: integer, required: true}
  noise.tick:
    forward: never
  ui.hovered:
    sample: 0.3
    keep_local: false
  page.viewed: {}
"""
PEOPLE = [f"person-{n}" for n in range(40)]


def serve(folder: Path, plan: Path, *args: str) -> RunningServer:
    folder.mkdir(parents=True, exist_ok=True)
    return RunningServer(
        db=folder / "eventplan.duckdb",
        port=free_port(),
        args=["--plan", str(plan), "--alert-interval", "0", *args],
    ).start()


def sampled(distinct_id: str, share: float) -> bool:
    """The spec of the sample: the first 8 bytes of SHA-256 of the distinct id, as a
    fraction of 2**64, below the share."""
    digest = hashlib.sha256(distinct_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def test_each_event_is_forwarded_sampled_or_kept_as_its_plan_says(tmp_path: Path) -> None:
    plan = tmp_path / "rules.yaml"
    plan.write_text(PLAN)
    receiver = serve(tmp_path / "posthog", plan, "--token", UPSTREAM_TOKEN)
    gateway = serve(
        tmp_path / "gateway",
        plan,
        "--token",
        TOKEN,
        "--forward",
        receiver.url,
        "--forward-token",
        UPSTREAM_TOKEN,
    )
    run = uuid.uuid4().hex[:8]
    try:
        client = Posthog(TOKEN, host=gateway.url, sync_mode=True)
        for person in PEOPLE:
            who = f"{run}-{person}"
            client.capture("chat.sent", distinct_id=who, properties={"chars": 3})
            client.capture("chat.sent", distinct_id=who, properties={"chars": "three"})
            client.capture("noise.tick", distinct_id=who)
            client.capture("ui.hovered", distinct_id=who)
            client.capture("page.viewed", distinct_id=who)
        in_sample = sum(sampled(f"{run}-{p}", 0.3) for p in PEOPLE)
        assert 0 < in_sample < len(PEOPLE)  # a sample, neither everyone nor no one
        upstream_total = 2 * len(PEOPLE) + in_sample  # valid chat.sent, page.viewed, sample
        receiver.wait_for_count(f"distinct_id LIKE '{run}-%'", upstream_total)
        upstream = dict(
            receiver.sql(
                f"SELECT event, count(*) FROM events WHERE distinct_id LIKE '{run}-%' GROUP BY 1"
            )
        )
        assert upstream == {
            "chat.sent": len(PEOPLE),  # the invalid ones stay here
            "page.viewed": len(PEOPLE),
            "ui.hovered": in_sample,
        }
        forwarded = {
            row[0]
            for row in receiver.sql(
                f"SELECT distinct_id FROM events WHERE event = 'ui.hovered' "
                f"AND distinct_id LIKE '{run}-%'"
            )
        }
        assert forwarded == {f"{run}-{p}" for p in PEOPLE if sampled(f"{run}-{p}", 0.3)}
        # Here: everything but the hovers that were not forwarded (keep_local: false).
        gateway.wait_for_count(f"distinct_id LIKE '{run}-%'", 4 * len(PEOPLE) + in_sample)
        local = dict(
            gateway.sql(
                f"SELECT event, count(*) FROM events WHERE distinct_id LIKE '{run}-%' GROUP BY 1"
            )
        )
        assert local == {
            "chat.sent": 2 * len(PEOPLE),
            "noise.tick": len(PEOPLE),
            "ui.hovered": in_sample,
            "page.viewed": len(PEOPLE),
        }
        decisions = gateway.health()["forward"]["decisions"]["rules"]
        assert decisions["chat.sent"] == {"forwarded": len(PEOPLE), "invalid": len(PEOPLE)}
        assert decisions["noise.tick"] == {"never": len(PEOPLE)}
        assert decisions["ui.hovered"] == {
            "forwarded": in_sample,
            "sampled_out": len(PEOPLE) - in_sample,
        }
        with logged_in(gateway) as browser:
            page = browser.get("/plan")
        assert page.status_code == 200, page.text[:2000]
        assert "sampled_out: " + str(len(PEOPLE) - in_sample) in page.text
        assert "sample 0.3, not kept here" in page.text
    finally:
        gateway.stop()
        receiver.stop()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("sample: 0.3", "sample 1.5 must be above 0 and at most 1"),
        ("forward: never", "forward `sometimes`; expected one of always, valid, never"),
        ("keep_local: false", "keep_local must be true or false"),
    ],
)
def test_a_bad_rule_is_a_plan_error_that_says_why(tmp_path: Path, change: str, says: str) -> None:
    wrong = {"sample: 0.3": "sample: 1.5", "forward: never": "forward: sometimes"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(PLAN.replace(change, wrong.get(change, "keep_local: maybe")))
    with pytest.raises(PlanError) as raised:
        load_plan(bad)
    assert says in str(raised.value)
