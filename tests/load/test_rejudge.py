"""`eventplan rejudge`: stored events judged again under the plan as it is now, in a
DuckDB file and in ClickHouse (chDB), each by the plan compiled for its engine.

The independent computation is the Python judge's `rejudge_stored` over the same
stored events, read back from the store.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from eventplan.capture.judge import Judge
from eventplan.cli import cli
from eventplan.plan import load_plan
from eventplan.plan.validator import Violation
from eventplan.simulate.samples import sample_events
from eventplan.store import open_store
from tests.conftest import BACKENDS, OPENCHAT, store_url

SOURCE_V1 = "        enum: [sidebar_button]\n"
SOURCE_V2 = "        enum: [sidebar_button, keyboard_shortcut]\n"
TITLE_V1 = "      title_length:\n        type: integer\n"
TITLE_V2 = "      title_length:\n        type: integer\n        required: true\n"


def changed_plan(tmp_path: Path) -> Path:
    """OpenChat 1.1: `chat.created` may start from a keyboard shortcut, and must say
    how long its title is."""
    text = OPENCHAT.read_text()
    assert text.count(SOURCE_V1) == 1 and text.count(TITLE_V1) == 1
    text = text.replace(SOURCE_V1, SOURCE_V2).replace(TITLE_V1, TITLE_V2)
    text = text.replace("version: 1.0.0", "version: 1.1.0", 1)
    path = tmp_path / "openchat-1.1.yaml"
    path.write_text(text)
    return path


def chat_created(person: str, **changes: object) -> dict[str, object]:
    properties = {"app": "openchat-web", "chat_id": "c1", "source": "sidebar_button"}
    properties |= {"storage_backend": "postgres", **changes}
    return {"event": "chat.created", "distinct_id": person, "properties": properties}


@pytest.mark.parametrize("backend", BACKENDS)
def test_rejudge_flips_what_the_new_plan_decides_and_nothing_else(
    tmp_path: Path, backend: str
) -> None:
    plan = load_plan(OPENCHAT)
    events = sample_events(plan, 2000, seed=11)
    events += [chat_created(f"k{i}", source="keyboard_shortcut", title_length=9) for i in range(7)]
    events += [chat_created(f"t{i}") for i in range(5)]  # no title_length
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    db = store_url(backend, tmp_path)
    imported = CliRunner().invoke(cli, ["import", str(path), "--db", db, "--plan", str(OPENCHAT)])
    assert imported.exit_code == 0, imported.output
    store = open_store(db, [plan], read_only=True)
    assert store.sql("SELECT DISTINCT plan_version FROM events")[1] == [(plan.version,)]
    store.close()

    # What the Python judge says of every stored event under the new plan.
    new_plan = load_plan(changed_plan(tmp_path))
    store = open_store(db, [plan], read_only=True)
    _, rows = store.sql("SELECT uuid::VARCHAR, event, properties, verdict, violations FROM events")
    store.close()
    judge = Judge(new_plan)
    expected: dict[str, tuple[str, list[object]]] = {}
    flips: Counter[tuple[str, str]] = Counter()
    for uuid, event, properties, verdict, violations in rows:
        captured = msgspec.json.decode(violations or "[]", type=list[Violation])
        again = judge.rejudge_stored(event, json.loads(properties), captured)
        expected[uuid] = (again.verdict, msgspec.to_builtins(again.violations))
        if again.verdict != verdict:
            flips[(verdict, again.verdict)] += 1
    assert flips[("invalid", "valid")] >= 7 and flips[("valid", "invalid")] >= 5

    done = CliRunner().invoke(
        cli, ["rejudge", "--db", db, "--plan", str(changed_plan(tmp_path)), "--json"]
    )
    assert done.exit_code == 0, done.output
    assert {(c["before"], c["after"]): c["events"] for c in json.loads(done.output)} == flips

    store = open_store(db, [new_plan], read_only=True)
    _, rows = store.sql("SELECT uuid::VARCHAR, verdict, violations FROM events")
    _, versions = store.sql("SELECT DISTINCT plan_version FROM events")
    store.close()
    stored = {u: (v, json.loads(violations) if violations else []) for u, v, violations in rows}
    assert stored == expected
    assert versions == [("1.1.0",)]  # every event says which plan judged it

    again = CliRunner().invoke(cli, ["rejudge", "--db", db, "--plan", str(changed_plan(tmp_path))])
    assert again.exit_code == 0 and "no verdict changed" in again.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_rejudge_since_leaves_older_events_alone(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "events.jsonl"
    old = {**chat_created("old", source="keyboard_shortcut"), "timestamp": "2026-01-01T00:00:00Z"}
    new = {**chat_created("new", source="keyboard_shortcut"), "timestamp": "2026-06-01T00:00:00Z"}
    path.write_text(json.dumps(old) + "\n" + json.dumps(new) + "\n")
    db = store_url(backend, tmp_path)
    assert CliRunner().invoke(cli, ["import", str(path), "--db", db, "--plan", str(OPENCHAT)])
    done = CliRunner().invoke(
        cli,
        ["rejudge", "--db", db, "--plan", str(changed_plan(tmp_path)), "--since", "2026-03-01"],
    )
    assert done.exit_code == 0, done.output
    store = open_store(db, [load_plan(OPENCHAT)], read_only=True)
    _, rows = store.sql("SELECT distinct_id, violations FROM events ORDER BY distinct_id")
    store.close()
    codes = {who: [(v["code"], v["property"]) for v in json.loads(found)] for who, found in rows}
    # Under 1.1 a keyboard shortcut is a source, and a title length is required.
    assert codes == {
        "new": [("missing_required", "title_length")],
        "old": [("not_in_enum", "source")],
    }


def renamed_plan(tmp_path: Path) -> Path:
    """OpenChat 1.1 where `chat.created` is now `chat.started` and its `chat_id` is
    `conversation_id`, both with `renamed_from`."""
    text = OPENCHAT.read_text()
    block = "  chat.created:\n    description:"
    first_property = "    properties:\n      chat_id:\n        type: string\n"
    at = text.index(block)
    assert text.count(block) == 1 and text.index(first_property, at) < text.index("  chat.", at + 3)
    head, tail = text[:at], text[at:]
    tail = tail.replace(
        block, "  chat.started:\n    renamed_from: [chat.created]\n    description:", 1
    ).replace(
        first_property,
        "    properties:\n      conversation_id:\n        renamed_from: chat_id\n"
        "        type: string\n",
        1,
    )
    path = tmp_path / "openchat-renamed.yaml"
    text = (head + tail).replace("event: chat.created", "event: chat.started")  # its insights
    path.write_text(text.replace("version: 1.0.0", "version: 1.1.0", 1))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
def test_rejudge_reads_events_stored_under_old_names_as_the_renamed_ones(
    tmp_path: Path, backend: str
) -> None:
    """Renaming an event and a property in the plan changes no stored verdict: an event
    stored as `chat.created` with `chat_id` is judged as `chat.started` with
    `conversation_id`, as capture would judge it now (and as the Python judge does)."""
    path = tmp_path / "events.jsonl"
    events = [chat_created("ok"), chat_created("bad", source="keyboard_shortcut")]
    events.append(chat_created("empty", chat_id=""))  # too short under either name
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    db = store_url(backend, tmp_path)
    assert CliRunner().invoke(cli, ["import", str(path), "--db", db, "--plan", str(OPENCHAT)])
    renamed = renamed_plan(tmp_path)
    store = open_store(db, [load_plan(OPENCHAT)], read_only=True)
    _, rows = store.sql("SELECT distinct_id, event, properties, verdict FROM events")
    store.close()
    judge = Judge(load_plan(renamed))
    python = {}
    for who, event, properties, _ in rows:
        verdict = judge.rejudge_stored(event, json.loads(properties), [])
        python[who] = (verdict.verdict, msgspec.to_builtins(verdict.violations))
    before = {who: verdict for who, _, _, verdict in rows}

    done = CliRunner().invoke(cli, ["rejudge", "--db", db, "--plan", str(renamed), "--json"])
    assert done.exit_code == 0, done.output
    store = open_store(db, [load_plan(OPENCHAT)], read_only=True)
    _, after = store.sql("SELECT distinct_id, verdict, violations FROM events")
    store.close()
    stored = {who: (verdict, json.loads(found or "[]")) for who, verdict, found in after}
    assert stored == python
    assert before == {who: verdict for who, (verdict, _) in stored.items()}
    assert before == {"ok": "valid", "bad": "invalid", "empty": "invalid"}
    assert [v["property"] for v in stored["empty"][1]] == ["conversation_id"]
