"""One verdict whichever door an event comes in by: `eventplan validate` and `eventplan
import` (capture's own pipeline); the server helper's strict mode is held to it in
tests/server_helper. And a stored event
judged again (quarantine replay) is judged only where the store still holds what
was sent."""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

from click.testing import CliRunner

from eventplan.capture.events import IncomingEvent, normalize
from eventplan.capture.importer import import_events
from eventplan.capture.ingest import Envelope, logged
from eventplan.capture.judge import Judge
from eventplan.cli import cli
from eventplan.plan import Plan, load_plan
from eventplan.project import Project
from eventplan.store import open_store
from eventplan.store.quarantine import replay_quarantine
from tests.conftest import OPENCHAT

# A $pageview as posthog-js sends it: `referrer_domain` (required) is not there; the
# capture server fills it in from `$referrer`.
PAGEVIEW = {
    "event": "$pageview",
    "distinct_id": "visitor",
    "uuid": "0193a0c4-0000-7000-8000-0000000000aa",
    "timestamp": "2026-12-01T10:00:00Z",
    "properties": {
        "app": "openchat-web",
        "referrer_url": "https://news.example/launch",
        "entry_path": "/",
        "$current_url": "https://openchat.example/",
        "$referrer": "https://news.example/launch",
    },
}


def test_validate_and_import_give_the_verdict_capture_gives(
    tmp_path: Path, openchat_plan: Plan
) -> None:
    events = tmp_path / "pageview.jsonl"
    events.write_text(json.dumps(PAGEVIEW) + "\n")
    validated = CliRunner().invoke(cli, ["validate", str(OPENCHAT), str(events), "--json"])
    assert validated.exit_code == 0, validated.output
    assert json.loads(validated.stdout)["verdict"] == "valid"
    store = open_store(str(tmp_path / "e.duckdb"), [openchat_plan])
    try:
        project = Project(openchat_plan.name, openchat_plan, store, salt=b"salt")
        import_events(store, project, iter([json.loads(json.dumps(PAGEVIEW))]), lambda n: None)
        _, rows = store.sql("SELECT verdict, properties->>'referrer_domain' FROM events")
    finally:
        store.close()
    assert rows == [("valid", "news.example")]


def test_a_replay_judges_again_only_what_the_store_holds_as_sent(tmp_path: Path) -> None:
    """The email was hashed before it was stored, so its pattern cannot be checked
    again; the tier, kept as sent, is judged under the new plan."""
    plan_text = """\
plan: shop
version: {version}
events:
  signup.completed:
    properties:
      email: {{type: string, pattern: '@', privacy: hash}}
      tier: {{type: string, enum: [{tiers}]}}
"""
    (tmp_path / "v1.yaml").write_text(plan_text.format(version="1.0.0", tiers="free"))
    (tmp_path / "v2.yaml").write_text(plan_text.format(version="1.1.0", tiers="free, pro"))
    old, new = load_plan(tmp_path / "v1.yaml"), load_plan(tmp_path / "v2.yaml")
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(str(Path(folder) / "q.duckdb"), [old])
        project = Project("shop", old, store, salt=b"salt", enforcement="quarantine")
        signups = [
            {
                "event": "signup.completed",
                "distinct_id": f"u{i}",
                "uuid": str(uuid.uuid4()),
                "properties": {"email": email, "tier": "pro"},
            }
            for i, email in enumerate(["ada@example.com", "no-at-sign"])
        ]
        received = Envelope(None, None, 1_790_000_000_000_000)
        judged = project.judge(logged([_incoming(e) for e in signups], project.name, received))
        assert [e.verdict for e in judged] == ["invalid", "invalid"]  # pro is not planned
        store.insert(judged, 1, quarantine=frozenset({"shop"}))
        moved, still = replay_quarantine(store, new, "shop")
        # ada's hashed email has no `@` any more, and is not held for it; the second
        # email broke the pattern when it was sent, and stays held.
        assert (moved, still) == (1, 1)
        [held] = store.quarantined("shop")
        assert held.distinct_id == "u1"
        store.close()
    fresh = Judge(new).rejudge_stored("signup.completed", {"tier": "gold"}, [])
    assert [v.property for v in fresh.violations] == ["tier"]  # what was kept is judged


def _incoming(event: dict[str, object]) -> IncomingEvent:
    [incoming] = normalize([event], {}, {}, 1_790_000_000_000_000)
    return incoming
