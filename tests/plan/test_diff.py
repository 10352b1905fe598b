"""`eventplan diff`: what changed between plan versions, and what breaks senders or dashboards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventplan.cli import cli
from tests.conftest import OPENCHAT

BASE = OPENCHAT.read_text()

CASES = [
    (
        "new optional property",
        BASE.replace("      tab_id:\n", "      tab_label:\n        type: string\n      tab_id:\n"),
        [("property_added", "sync.connection_state", "tab_label", False)],
    ),
    (
        "new required property",
        BASE.replace(
            "      tab_id:\n",
            "      tab_label:\n        type: string\n        required: true\n      tab_id:\n",
        ),
        [("property_added", "sync.connection_state", "tab_label", True)],
    ),
    (
        "widened enum",
        BASE.replace(
            "enum: [connected, retry, failed]", "enum: [connected, retry, failed, paused]"
        ),
        [("enum_widened", "sync.connection_state", "state", False)],
    ),
    (
        "narrowed enum",
        BASE.replace("enum: [accepted, rejected]", "enum: [accepted]"),
        [("enum_narrowed", "chat.attachment_event", "result", True)],
    ),
    (
        "changed type",
        BASE.replace(
            "      retry_count:\n        type: integer", "      retry_count:\n        type: string"
        ),
        [("type_changed", "sync.connection_state", "retry_count", True)],
    ),
    (
        "renamed property",
        BASE.replace("      had_models_cached:", "      models_were_cached:"),
        [("property_renamed", "openrouter.key_removed", "had_models_cached", True)],
    ),
    (
        "renamed event",
        BASE.replace("  openrouter.key_removed:", "  openrouter.key_deleted:"),
        [("event_renamed", "openrouter.key_removed", None, True)],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_changes_and_what_breaks(
    tmp_path: Path, text: str, expected: list[tuple[object, ...]]
) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(text)
    result = CliRunner().invoke(cli, ["diff", str(OPENCHAT), str(new), "--json"])
    changes = [
        (c["kind"], c["event"], c["property"], c["breaking"]) for c in json.loads(result.output)
    ]
    assert changes == expected
    assert result.exit_code == (1 if any(c[3] for c in expected) else 0)


def test_removing_an_event_a_dashboard_uses_breaks_the_dashboard(tmp_path: Path) -> None:
    start = BASE.index("  openrouter.key_saved:")
    end = BASE.index("  openrouter.key_removed:")
    new = tmp_path / "new.yaml"
    new.write_text(BASE[:start] + BASE[end:])
    result = CliRunner().invoke(cli, ["diff", str(OPENCHAT), str(new), "--json"])
    kinds = {c["kind"] for c in json.loads(result.output)}
    assert {"event_removed", "dashboard_broken"} <= kinds
    assert result.exit_code == 1


def test_the_same_plan_has_no_changes() -> None:
    result = CliRunner().invoke(cli, ["diff", str(OPENCHAT), str(OPENCHAT)])
    assert result.exit_code == 0 and "0 change(s)" in result.output
