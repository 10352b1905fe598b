"""`eventplan status`: the plan against the code that sends it.

Scans TypeScript/JavaScript/Python files for capture calls — `posthog.capture("…")`,
posthog-node's `capture({ event: "…" })`, the seed's `captureClientEvent("…")`,
`captureServerEvent("…")`, `capturePosthogEvent("…")`, and the methods/functions
`eventplan codegen` generates — and reports planned events nobody sends, sends of
unplanned (often misspelt) events, and literal properties the plan does not define.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from eventplan.codegen.names import camel, snake
from eventplan.plan.model import Plan

SOURCE_SUFFIXES = {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".py"}
SKIP_DIRS = {"node_modules", ".git", "dist", "build", ".next", ".venv", "__pycache__"}
CALLS = [
    re.compile(
        r"""\b(?:capture|captureClientEvent|captureServerEvent|capturePosthogEvent)\(\s*(["'`])([^"'`]+)\1\s*(,\s*(?:properties\s*=\s*)?(\{))?"""
    ),
    re.compile(r"""\bcapture\(\s*\{[^}]*?\bevent\s*:\s*(["'`])([^"'`]+)\1"""),
]


@dataclass(frozen=True)
class CallSite:
    path: str
    line: int
    event: str
    properties: tuple[str, ...]


@dataclass
class Status:
    calls: list[CallSite] = field(default_factory=list)
    never_sent: list[str] = field(default_factory=list)
    unplanned: list[tuple[CallSite, str]] = field(default_factory=list)  # (call, suggestion)
    unplanned_properties: list[tuple[CallSite, str]] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    @property
    def problems(self) -> int:
        return len(self.never_sent) + len(self.unplanned) + len(self.unplanned_properties)


def object_keys(text: str, start: int) -> tuple[str, ...]:
    """The top-level keys of the object literal that opens at `start` (`{`)."""
    depth = 0
    parts: list[str] = []
    current: list[str] = []
    for char in text[start:]:
        if char in "{[(":
            depth += 1
            if depth == 1:
                continue
        elif char in "}])":
            depth -= 1
            if depth == 0:
                parts.append("".join(current))
                break
        if depth == 1 and char == ",":
            parts.append("".join(current))
            current = []
        elif depth >= 1:
            current.append(char)
    keys = []
    for part in parts:
        part = part.strip()
        if not part or part.startswith("..."):
            continue
        key = part.split(":", 1)[0].strip().strip("\"'")
        if re.fullmatch(r"[$\w]+", key):
            keys.append(key)
    return tuple(keys)


def scan(root: Path, plan: Plan) -> Status:
    status = Status()
    method_names = {camel(name): name for name in plan.events} | {
        snake(name): name for name in plan.events
    }
    generated = re.compile(
        r"\.("
        + "|".join(map(re.escape, sorted(method_names)))
        + r")\(\s*(\{)?"
        + r"|\b("
        + "|".join(map(re.escape, sorted(method_names)))
        + r")\("
    )
    for path in sorted(root.rglob("*")):
        if path.suffix not in SOURCE_SUFFIXES or any(p in SKIP_DIRS for p in path.parts):
            continue
        relative = str(path.relative_to(root))
        if not path.is_file():  # a directory, a fifo (reading one would block), a dead link
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            status.unreadable.append((relative, exc.strerror or str(exc)))
            continue
        for pattern in CALLS:
            for match in pattern.finditer(text):
                has_object = pattern.groups >= 4 and match.group(4) is not None
                brace = match.start(4) if has_object else -1
                keys = object_keys(text, brace) if brace >= 0 else ()
                status.calls.append(
                    CallSite(relative, text.count("\n", 0, match.start()) + 1, match.group(2), keys)
                )
        for match in generated.finditer(text):
            name = method_names[match.group(1) or match.group(3)]
            keys = object_keys(text, match.start(2)) if match.group(2) else ()
            status.calls.append(
                CallSite(relative, text.count("\n", 0, match.start()) + 1, name, keys)
            )
    sent = {call.event for call in status.calls}
    status.never_sent = [name for name in plan.events if name not in sent]
    for call in status.calls:
        if call.event not in plan.events:
            if call.event.startswith("$"):
                continue  # PostHog's own events
            close = difflib.get_close_matches(call.event, list(plan.events), n=1)
            status.unplanned.append((call, close[0] if close else ""))
            continue
        planned = plan.properties_of(call.event)
        for key in call.properties:
            if key not in planned and not key.startswith("$"):
                status.unplanned_properties.append((call, key))
    return status
