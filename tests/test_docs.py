"""Docs that cannot drift: what the README and docs/ name exists, and what exists is
named in them."""

from __future__ import annotations

import ast
import re

import click

from eventplan.cli import cli
from eventplan.config import SETTINGS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
PLAN_FORMAT = (ROOT / "docs" / "plan-format.md").read_text(encoding="utf-8")

# Where a diagnostic's code is in the arguments of each call that makes one.
CODE_ARGUMENT = {"error": 1, "warn": 1, "_finding": 2, "Diagnostic": 2, "choice": 5}


def lint_codes() -> set[str]:
    """Every code a plan diagnostic can carry, read from the source that emits it."""
    codes = set()
    for path in (ROOT / "src" / "eventplan" / "plan").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            index = CODE_ARGUMENT.get(str(name))
            if index is None or len(node.args) <= index:
                continue
            argument = node.args[index]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                codes.add(argument.value)
    return codes


def test_every_lint_code_is_documented() -> None:
    codes = lint_codes()
    assert {"yaml_syntax", "unknown_interval", "no_events", "unreadable"} <= codes
    documented = set(re.findall(r"`([a-z_]+)`", PLAN_FORMAT))
    assert sorted(codes - documented) == []


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = (*prefix, name)
        found[" ".join(path)] = command
        if isinstance(command, click.Group):
            found.update(command_paths(command, path))
    return found


def test_every_flag_the_readme_gives_a_command_exists() -> None:
    """Each `eventplan COMMAND … --flag` in the README (a code span, or a line of a code
    block with its continuations) names a flag that COMMAND has."""
    commands = command_paths(cli)
    uses = re.findall(r"`eventplan ([^`]+)`", README)
    uses += re.findall(r"^eventplan (.+(?:\\\n.+)*)", README, flags=re.MULTILINE)
    checked = 0
    for use in uses:
        words = [word.split("|")[0] for word in use.split()]  # `status|retry`: either
        path = ""
        for length in range(len(words), 0, -1):
            if " ".join(words[:length]) in commands:
                path = " ".join(words[:length])
                break
        if not path:
            continue
        options = {o for p in commands[path].params for o in getattr(p, "opts", [])}
        for flag in re.findall(r"(--[a-z][a-z-]*)", use):
            assert flag in options, f"README: `eventplan {path}` has no {flag}"
            checked += 1
    assert checked > 10  # the README's commands were found and read


def test_every_setting_has_a_serve_flag_and_every_serve_flag_a_setting() -> None:
    serve = command_paths(cli)["serve"]
    flags = {o.removeprefix("--").replace("-", "_") for p in serve.params for o in p.opts}
    settings = {s.name for s in SETTINGS}
    assert sorted(settings - flags) == []
    assert sorted(flags - settings - {"config", "help"}) == []
