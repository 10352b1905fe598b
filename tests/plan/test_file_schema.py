"""The JSON Schema of the plan file: what YAML language servers check a plan against
as it is typed. It is generated from the loader's own keys, and committed beside the
plans (`plans/plan.schema.json`), which name it on their first line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from eventplan.cli import cli
from eventplan.plan.file_schema import plan_file_schema
from tests.conftest import OPENCHAT

COMMITTED = OPENCHAT.parent / "plan.schema.json"


def errors(document: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(plan_file_schema())
    return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_committed_schema_is_the_generated_one_and_the_plan_names_it(tmp_path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(plan_file_schema())
    out = tmp_path / "plan.schema.json"
    assert CliRunner().invoke(cli, ["plan", "schema", "--out", str(out)]).exit_code == 0
    assert json.loads(out.read_text()) == json.loads(COMMITTED.read_text())
    assert (
        OPENCHAT.read_text().splitlines()[0] == "# yaml-language-server: $schema=plan.schema.json"
    )


def test_the_openchat_plan_is_valid_under_it() -> None:
    assert errors(yaml.safe_load(OPENCHAT.read_text())) == []


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda p: p["events"]["chat.created"].update(descripton="typo"), "descripton"),
        (
            lambda p: p["events"]["chat.created"]["properties"]["chat_id"].update(type="text"),
            "'text'",
        ),
        (lambda p: p["events"]["chat.created"].update(surfaces=["mobile"]), "'mobile'"),
        (lambda p: p["events"]["chat.created"].update(sample=1.5), "1.5"),
        (lambda p: p.update(forward="some"), "'some'"),
    ],
    ids=["unknown-key", "unknown-type", "unknown-surface", "sample-over-one", "unknown-forward"],
)
def test_a_mistake_while_typing_is_caught(change: Any, says: str) -> None:
    plan = yaml.safe_load(OPENCHAT.read_text())
    change(plan)
    found = errors(plan)
    assert found and any(says in e for e in found), found
