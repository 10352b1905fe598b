"""`eventplan status`: the plan against the code that sends it.

Every source file is parsed (`source.py`), then read as a whole program:

* a **capture call** is posthog-js's `posthog.capture(event, properties)`, posthog-node's
  `client.capture({ event, properties })` and `captureImmediate`, posthog-python's
  `posthog.capture(event, properties=…)` — on an object that is PostHog's (imported
  from its package, built with `new PostHog(…)` / `Posthog(…)`, or the `posthog`
  global) — and the methods and functions `eventplan codegen` generated, called on
  what comes from a generated module. A method of another library that shares a name
  (`analytics.chatCreated()`) is not ours.
* a **wrapper** is a function whose parameter becomes a capture call's event: it is a
  capture function too, with its event and properties parameters followed, through
  as many layers as the code has (in one file or across imports).
* an **event name** is a string, a constant (of the file, or imported, or a member of
  an object of constants), or a template matched against the plan's events.

Each call found is held against the plan: unplanned events (with the likely planned
name), dynamic names, unplanned properties, required properties missing from a
complete object literal, and literals the plan's rules refuse.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import json5

from eventplan.codegen.names import camel, snake
from eventplan.codegen.source import (
    SUFFIXES,
    UNKNOWN,
    Arg,
    Call,
    Function,
    Module,
    read_module,
)
from eventplan.plan.model import Plan
from eventplan.plan.validator import check_value, quoted

SKIP_DIRS = {"node_modules", ".git", "dist", "build", ".next", ".venv", "__pycache__"}
POSTHOG_PACKAGES = {"posthog-js", "posthog-node", "posthog", "posthog-js/react"}
POSTHOG_CLASSES = {"PostHog", "Posthog"}
CAPTURE_METHODS = {"capture", "captureImmediate"}
MAX_WRAPPER_LAYERS = 10


@dataclass(frozen=True)
class CallSite:
    path: str
    line: int
    event: str
    properties: tuple[str, ...]
    column: int = 0
    via: str = ""  # the function called: `posthog.capture`, a wrapper, a generated method


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    column: int
    code: str
    message: str
    event: str = ""
    severity: str = "error"  # "warning": worth a look, not a failure (a moved trigger)


@dataclass
class Traffic:
    """The code held against stored events (`status --db`, the last `days` days)."""

    days: int
    sent_never_seen: list[str] = field(default_factory=list)  # in code, no event arrived
    seen_not_in_code: list[dict[str, Any]] = field(default_factory=list)  # {event, seen}
    # per call site: its event's volume, invalid share and most common violation
    per_call: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Status:
    calls: list[CallSite] = field(default_factory=list)
    never_sent: list[str] = field(default_factory=list)
    unplanned: list[tuple[CallSite, str]] = field(default_factory=list)  # (call, suggestion)
    unplanned_properties: list[tuple[CallSite, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    traffic: Traffic | None = None

    @property
    def problems(self) -> int:
        return len(self.never_sent) + sum(f.severity == "error" for f in self.findings)


@dataclass(frozen=True)
class Signature:
    """Where a capture function takes its event and properties: a position, a keyword,
    or a key of its first (object) argument; and the keys it adds itself."""

    event: int | str
    properties: int | str | None
    keys: tuple[str, ...] = ()
    fixed_event: str | None = None  # a generated method: its event is its name


@dataclass
class Sent:
    """What one call sends: the event names it can be, and its properties."""

    events: list[str]
    dynamic: str | None  # the code, when the name cannot be known
    properties: Arg | None
    keys: tuple[str, ...]


def read_aliases(root: Path) -> dict[str, list[tuple[str, str]]]:
    """Each tsconfig.json's path aliases (`"@/*": ["./src/*"]`), by the folder it
    governs: alias prefix → target folder, relative to the tree."""
    found: dict[str, list[tuple[str, str]]] = {}
    for config in tree_files(root, lambda name: fnmatch.fnmatch(name, "tsconfig*.json")):
        try:
            options = _jsonc(config.read_text(encoding="utf-8")).get("compilerOptions", {})
        except (OSError, ValueError, AttributeError):
            continue  # a tsconfig status cannot read resolves no alias
        folder = config.parent.relative_to(root).as_posix()
        base = _normal(f"{folder}/{options.get('baseUrl', '.')}")
        pairs = []
        for alias, targets in (options.get("paths") or {}).items():
            if isinstance(targets, list) and targets and isinstance(targets[0], str):
                pairs.append(
                    (alias.removesuffix("*"), _normal(f"{base}/{targets[0].removesuffix('*')}"))
                )
        found["" if folder == "." else folder] = pairs
    return found


def _jsonc(text: str) -> dict[str, Any]:
    """A tsconfig: JSON with the comments and trailing commas it allows (JSON5 reads
    both)."""
    loaded = json5.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError("a tsconfig is an object")
    return loaded


def tree_files(root: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """The files under `root` whose names `wanted` takes, in a stable order; folders in
    SKIP_DIRS are not walked into at all (a node_modules holds more than the app)."""
    found = []
    for folder, folders, files in os.walk(root):
        folders[:] = sorted(f for f in folders if f not in SKIP_DIRS)
        found += [Path(folder) / name for name in sorted(files) if wanted(name)]
    return found


def read_tree(root: Path) -> tuple[dict[str, Module], list[tuple[str, str]]]:
    modules: dict[str, Module] = {}
    unreadable: list[tuple[str, str]] = []
    for path in tree_files(root, lambda name: Path(name).suffix in SUFFIXES):
        relative = path.relative_to(root).as_posix()
        if not path.is_file():  # a directory, a fifo (reading one would block), a dead link
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            unreadable.append((relative, exc.strerror or str(exc)))
            continue
        modules[relative] = read_module(relative, text, path.suffix)
    return modules, unreadable


class Program:
    """Every module of a tree, with imports resolved between them."""

    def __init__(
        self,
        modules: dict[str, Module],
        plan: Plan,
        aliases: dict[str, list[tuple[str, str]]] | None = None,
    ) -> None:
        self.modules = modules
        self.aliases = aliases or {}
        self.plan = plan
        self.wrappers: dict[tuple[str, str], Signature] = {}
        self.named = {w.name: Signature(w.event, w.properties) for w in plan.code.wrappers}
        self._resolved: dict[tuple[str, str], Module | None] = {}
        self._methods = {camel(n): n for n in plan.events} | {snake(n): n for n in plan.events}

    # -- resolving names across modules -------------------------------------------

    def imported(self, module: Module, local: str) -> tuple[Module, str] | None:
        """The module and name a local name is imported from, if it is in the tree."""
        found = module.imports.get(local)
        if found is None:
            return None
        target = self.module_at(module, found[0])
        return (target, found[1]) if target is not None else None

    def module_at(self, module: Module, source: str) -> Module | None:
        key = (module.path, source)
        if key not in self._resolved:
            self._resolved[key] = self._module_at(module, source)
        return self._resolved[key]

    def _module_at(self, module: Module, source: str) -> Module | None:
        if module.language == "python":
            return self._python_module(module, source)
        if source.startswith("."):
            base = PurePosixPath(module.path).parent / source
        else:
            aliased = self._aliased(module, source)
            if aliased is None:
                return None
            base = PurePosixPath(aliased)
        for candidate in (str(base), *(f"{base}{s}" for s in (".ts", ".tsx", ".js", ".jsx"))):
            normal = _normal(candidate)
            for suffix in ("", "/index.ts", "/index.tsx", "/index.js"):
                if normal + suffix in self.modules:
                    return self.modules[normal + suffix]
        return None

    def _aliased(self, module: Module, source: str) -> str | None:
        """`source` through the path aliases of the nearest tsconfig above `module`."""
        folder = PurePosixPath(module.path).parent
        for governed in (folder, *folder.parents):
            key = "" if str(governed) == "." else governed.as_posix()
            for alias, target in self.aliases.get(key, []):
                if source == alias.rstrip("/") or (alias and source.startswith(alias)):
                    return f"{target}/{source[len(alias) :]}".rstrip("/")
        return None

    def _python_module(self, module: Module, source: str) -> Module | None:
        dots = len(source) - len(source.lstrip("."))
        name = source.lstrip(".").replace(".", "/")
        if dots:
            base = PurePosixPath(module.path).parent
            for _ in range(dots - 1):
                base = base.parent
            wanted = _normal(str(base / name)) if name else _normal(str(base))
            return self.modules.get(wanted + ".py") or self.modules.get(wanted + "/__init__.py")
        return next((m for path, m in self.modules.items() if path.endswith(name + ".py")), None)

    def constant(self, module: Module, arg: Arg) -> Any:
        """The constant a name or member stands for: a string, an object of strings."""
        if arg.kind == "name":
            return self._named(module, arg.text)
        if arg.kind == "member":
            head, _, tail = arg.text.partition(".")
            owner = self._named(module, head)
            if isinstance(owner, dict):
                return owner.get(tail)
            target = self.imported(module, head)
            if target is not None and target[1] == "*":
                return target[0].constants.get(tail)
        return None

    def _named(self, module: Module, name: str) -> Any:
        if name in module.constants:
            return module.constants[name]
        target = self.imported(module, name)
        if target is not None:
            return target[0].constants.get(target[1])
        return None

    def _generated(self, module: Module, name: str, hops: int = 0) -> bool:
        """Whether `name` in `module` is (an instance of) what a generated module exports."""
        if hops > 4:
            return False
        target = self.imported(module, name)
        if target is not None:
            owner, imported = target
            return owner.generated or self._generated(owner, imported, hops + 1)
        built = module.instances.get(name)
        if built is not None:
            return self._generated(module, built.split(".")[0], hops + 1)
        return module.generated

    def posthog_object(self, module: Module, receiver: str, hops: int = 0) -> bool:
        """Whether a call's receiver is PostHog's client (not another library's): the
        `posthog` global, what PostHog's packages export or build, or what a getter
        that builds one returns (`getClient().capture`, `const c = getClient()`), also
        across imports."""
        if hops > 4:
            return False
        head = receiver.split(".")[-1] if receiver.startswith(("this.", "self.")) else receiver
        if head in ("posthog", "window.posthog"):
            return True
        if head.endswith("()"):
            return self._builds_posthog(module, head[:-2], hops)
        if head in module.imports:
            target = self.imported(module, head)
            if target is not None:
                return self.posthog_object(target[0], target[1], hops + 1)
            return module.imports[head][0] in POSTHOG_PACKAGES
        built = module.instances.get(head)
        if built is not None:
            return self._posthog_class(module, built)
        getter = module.results.get(head)
        return getter is not None and self._builds_posthog(module, getter, hops)

    def _posthog_class(self, module: Module, name: str) -> bool:
        origin = module.imports.get(name.split(".")[0])
        return name.split(".")[-1] in POSTHOG_CLASSES and (
            origin is None or origin[0] in POSTHOG_PACKAGES
        )

    def _builds_posthog(self, module: Module, function: str, hops: int) -> bool:
        """Whether `function` (of this module, or imported) builds a PostHog client."""
        if hops > 4:
            return False
        if function in module.builds:
            return any(self._posthog_class(module, c) for c in module.builds[function])
        target = self.imported(module, function)
        return target is not None and self._builds_posthog(target[0], target[1], hops + 1)

    # -- what a call is ---------------------------------------------------------------

    def signature(self, module: Module, call: Call) -> Signature | None:
        """How `call` captures, if it is a capture call."""
        receiver = call.receiver
        if call.name in CAPTURE_METHODS and receiver and self.posthog_object(module, receiver):
            return self._posthog_signature(module, call)
        event = self._methods.get(call.name)
        if event is not None and self._from_generated(module, call):
            if module.language == "python":
                return Signature(-1, "properties" if "properties" in call.kwargs else 2, (), event)
            return Signature(-1, 0, (), event)
        inferred = self.wrappers.get(self._function_key(module, call) or ("", ""))
        return inferred if inferred is not None else self.named.get(call.name)

    def _from_generated(self, module: Module, call: Call) -> bool:
        if call.receiver is not None:
            return self._generated(module, call.receiver.split(".")[0])
        return self._generated(module, call.name) and call.name in module.imports

    def _posthog_signature(self, module: Module, call: Call) -> Signature:
        if module.language == "python":
            if "event" in call.kwargs:
                return Signature("event", "properties")
            legacy = len(call.args) >= 2 and call.args[1].kind == "string"
            positional = 2 if legacy else 1
            return Signature(
                1 if legacy else 0, "properties" if "properties" in call.kwargs else positional
            )
        if call.args and call.args[0].kind == "object" and "event" in call.args[0].nested:
            return Signature("0.event", "0.properties")  # posthog-node: one message object
        return Signature(0, 1)

    def _function_key(self, module: Module, call: Call) -> tuple[str, str] | None:
        if call.receiver is None:
            if call.name in module.functions:
                return (module.path, call.name)
            target = self.imported(module, call.name)
            return (target[0].path, target[1]) if target is not None else None
        target = self.imported(module, call.receiver)
        if target is not None and target[1] == "*":
            return (target[0].path, call.name)
        return None

    # -- wrappers ---------------------------------------------------------------------

    def find_wrappers(self) -> None:
        """Functions whose parameter becomes a capture's event, to a fixed point."""
        for _ in range(MAX_WRAPPER_LAYERS):
            found = False
            for module in self.modules.values():
                for call in module.calls:
                    if call.function is None or (module.path, call.function) in self.wrappers:
                        continue
                    wrapper = self._as_wrapper(module, call)
                    if wrapper is not None:
                        self.wrappers[(module.path, call.function)] = wrapper
                        found = True
            if not found:
                return

    def _as_wrapper(self, module: Module, call: Call) -> Signature | None:
        signature = self.signature(module, call)
        assert call.function is not None
        function = module.functions[call.function]
        if signature is None or signature.fixed_event is not None:
            return None
        event = argument(call, signature.event)
        event_at = (
            _position(module, function, event.text) if event and event.kind == "name" else None
        )
        if event_at is None:
            return None
        props = argument(call, signature.properties) if signature.properties is not None else None
        keys = list(signature.keys)
        props_at: int | str | None = None
        if props is not None and props.kind == "name":
            props_at = _position(module, function, props.text)
        elif props is not None and props.kind == "object":
            keys += list(props.keys)
            spread = [
                p for n in props.spread_names if (p := _position(module, function, n)) is not None
            ]
            props_at = spread[0] if spread else None
        return Signature(event_at, props_at, tuple(keys))

    # -- what each call sends -----------------------------------------------------------

    def sent(self, module: Module, call: Call, signature: Signature) -> Sent | None:
        """What the call sends, or None when it only passes its own parameter on (the
        body of a wrapper)."""
        props = argument(call, signature.properties) if signature.properties is not None else None
        keys = signature.keys + (
            tuple(props.keys) if props is not None and props.kind == "object" else ()
        )
        if signature.fixed_event is not None:
            return Sent([signature.fixed_event], None, props, keys)
        event = argument(call, signature.event)
        function = module.functions[call.function] if call.function else None
        if event is None:
            return Sent([], "no event argument", props, keys)
        if (
            event.kind == "name"
            and function
            and _position(module, function, event.text) is not None
        ):
            return None
        if event.kind == "string":
            return Sent([event.text], None, props, keys)
        if event.kind == "template":
            return Sent(
                self._matches(event.parts), "`" + "${…}".join(event.parts) + "`", props, keys
            )
        value = self.constant(module, event)
        if isinstance(value, str):
            return Sent([value], None, props, keys)
        return Sent([], event.text or "an expression", props, keys)

    def _matches(self, parts: tuple[str, ...]) -> list[str]:
        pattern = re.compile(".+".join(re.escape(p) for p in parts))
        return [name for name in self.plan.events if pattern.fullmatch(name)]


def argument(call: Call, at: int | str | None) -> Arg | None:
    """The argument at a position, a keyword, or `N.key` (a key of argument N)."""
    if at is None:
        return None
    if isinstance(at, int):
        return call.args[at] if 0 <= at < len(call.args) else None
    if "." in at:
        index, _, key = at.partition(".")
        whole = argument(call, int(index))
        return whole.nested.get(key) if whole is not None and whole.kind == "object" else None
    return call.kwargs.get(at)


def _position(module: Module, function: Function, name: str) -> int | str | None:
    """Where a function takes what it names `name`: a parameter's position (a Python
    method's `self` not counted), or `N.key` for a name destructured from argument N;
    None when `name` is not one of its parameters."""
    if name in function.fields:
        return function.fields[name]
    if not name or name not in function.params:
        return None
    index = function.params.index(name)
    if module.language == "python" and function.params[:1] == ["self"]:
        index -= 1
    return index


def _normal(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return "/".join(parts)


def scan(
    root: Path,
    plan: Plan,
    tree: tuple[dict[str, Module], list[tuple[str, str]]] | None = None,
) -> Status:
    """The plan held against the code under `root` (read now, or already: `tree`)."""
    modules, unreadable = tree if tree is not None else read_tree(root)
    program = Program(modules, plan, read_aliases(root))
    program.find_wrappers()
    status = Status(unreadable=unreadable)
    for module in modules.values():
        if module.generated:
            continue  # its own calls are the generated code's plumbing
        for call in module.calls:
            signature = program.signature(module, call)
            if signature is None:
                continue
            sent = program.sent(module, call, signature)
            if sent is not None:
                _judge(status, plan, module, call, sent)
    sent_names = {call.event for call in status.calls}
    status.never_sent = [name for name in plan.events if name not in sent_names]
    status.findings += moved_triggers(status.calls, plan, set(modules))
    return status


def moved_triggers(calls: list[CallSite], plan: Plan, paths: set[str]) -> list[Finding]:
    """An event whose planned trigger file is in the tree but sends it nowhere, while
    other files do: the trigger moved (a warning, at each place it is sent from now)."""
    found = []
    for name, event in plan.events.items():
        trigger = event.trigger.file
        sites = [c for c in calls if c.event == name]
        if not trigger or trigger not in paths or not sites:
            continue
        if any(c.path == trigger for c in sites):
            continue
        for site in sites:
            message = (
                f"{name} is planned in {trigger}, which does not send it; sent from {site.path}"
            )
            found.append(
                Finding(
                    site.path, site.line, site.column, "trigger_moved", message, name, "warning"
                )
            )
    return found


def _judge(status: Status, plan: Plan, module: Module, call: Call, sent: Sent) -> None:
    where = (module.path, call.line, call.column)
    if not sent.events:
        message = f"dynamic event name {sent.dynamic}: no planned event matches it"
        status.findings.append(Finding(*where, "dynamic_event", message))
        return
    renamed = plan.event_renames()
    for sent_name in sent.events:
        event = renamed.get(sent_name, sent_name)
        if event != sent_name:  # stored and counted as the new name; the code should say it
            message = f"{sent_name} is now {event} (renamed_from): send {event}"
            status.findings.append(Finding(*where, "renamed_event", message, event, "warning"))
        site = CallSite(module.path, call.line, event, sent.keys, call.column, call.callee)
        status.calls.append(site)
        if event in plan.events:
            _judge_properties(status, plan, site, sent)
            _judge_place(status, plan, module, site)
        elif not event.startswith("$"):  # PostHog's own events are PostHog's
            close = difflib.get_close_matches(event, list(plan.events), n=1)
            status.unplanned.append((site, close[0] if close else ""))
            hint = f" (did you mean {close[0]}?)" if close else ""
            message = f"unplanned event {event}{hint}"
            status.findings.append(Finding(*where, "unplanned_event", message, event))


def surface_of(module: Module, plan: Plan) -> tuple[str | None, str]:
    """The surface a file's code runs on, and why: the plan's `code.surfaces` first,
    then what the file is (a "use client" component is web; a Next.js route handler,
    a server action, middleware or Python is server; posthog-node is server, posthog-js
    web), then its folders. (None, "") when nothing says."""
    path = PurePosixPath(module.path)
    for glob, surface in plan.code.surfaces:
        if fnmatch.fnmatchcase(module.path, glob):  # `*` crosses folders here
            return surface, f"the plan maps {glob} to {surface}"
    if module.client_directive:
        return "web", 'a "use client" module'
    if module.language == "python":
        return "server", "Python"
    if module.server_directive:
        return "server", 'a "use server" module'
    if path.stem == "route" and "app" in path.parts:
        return "server", "a Next.js route handler"
    if ("api" in path.parts and "pages" in path.parts) or path.stem == "middleware":
        return "server", "Next.js server code"
    packages = {source for source, _ in module.imports.values()}
    if "posthog-node" in packages:
        return "server", "it imports posthog-node"
    if "posthog-js" in packages or "posthog-js/react" in packages:
        return "web", "it imports posthog-js"
    for part, surface in (("extension", "extension"), ("server", "server"), ("web", "web")):
        if any(part in folder for folder in path.parts[:-1]):
            return surface, f"it is under a {part} folder"
    return None, ""


def _judge_place(status: Status, plan: Plan, module: Module, site: CallSite) -> None:
    """Sent from the surface the plan says?"""
    where = (site.path, site.line, site.column)
    event = plan.events[site.event]
    surface, why = surface_of(module, plan)
    if surface is not None and event.surfaces and surface not in event.surfaces:
        planned = " or ".join(event.surfaces)
        status.findings.append(
            Finding(
                *where,
                "wrong_surface",
                f"{site.event} is sent from {surface} code ({why}); the plan sends it from {planned}",
                site.event,
            )
        )


def _judge_properties(status: Status, plan: Plan, site: CallSite, sent: Sent) -> None:
    """The call's properties against its event's: each key, each literal, each
    required property (when the object literal is complete)."""
    renamed = plan.property_renames(site.event)
    for code, message, severity, key in (
        *_keys(plan, site, sent, renamed),
        *_literals(plan, site, sent, renamed),
        *_missing(plan, site, sent, renamed),
    ):
        if code == "unplanned_property":
            status.unplanned_properties.append((site, key))
        status.findings.append(
            Finding(site.path, site.line, site.column, code, message, site.event, severity)
        )


Judged = tuple[str, str, str, str]  # (code, message, severity, the property)


def _keys(plan: Plan, site: CallSite, sent: Sent, renamed: dict[str, str]) -> list[Judged]:
    planned = plan.properties_of(site.event)
    found = []
    for key in sent.keys:
        if key in renamed:
            new = renamed[key]
            message = f"{site.event}: {key} is now {new} (renamed_from): send {new}"
            found.append(("renamed_property", message, "warning", key))
        elif key not in planned and not key.startswith("$"):
            message = f"{site.event} sends {key}, which the plan does not define"
            found.append(("unplanned_property", message, "error", key))
    return found


def _literals(plan: Plan, site: CallSite, sent: Sent, renamed: dict[str, str]) -> list[Judged]:
    props, planned = sent.properties, plan.properties_of(site.event)
    if props is None or props.kind != "object":
        return []
    found = []
    for key, value in props.keys.items():
        prop = planned.get(renamed.get(key, key))
        problem = check_value(prop, value) if prop is not None and value is not UNKNOWN else None
        if problem is not None:
            message = f"{site.event}: {key} is {quoted(value)}: {problem.message}"
            found.append(("bad_value", message, "error", key))
    return found


def _missing(plan: Plan, site: CallSite, sent: Sent, renamed: dict[str, str]) -> list[Judged]:
    props = sent.properties
    if props is None or props.kind != "object" or props.spread:
        return []  # a spread object takes keys from elsewhere: what is missing is unknown
    present = {renamed.get(k, k) for k in sent.keys}
    return [
        (
            "missing_required",
            f"{site.event} does not send {name}, which the plan requires",
            "error",
            name,
        )
        for name, prop in plan.events[site.event].properties.items()
        if prop.required and name not in present
    ]


def with_traffic(status: Status, traffic: dict[str, dict[str, Any]], days: int) -> None:
    """Join the calls with what arrived (`event_traffic` of the last `days` days):
    events sent in code but not seen, events seen but sent nowhere in this code
    (another app, or code removed but still deployed), and at each call site its
    event's volume, invalid share and most common violation."""
    sent = {call.event for call in status.calls}
    joined = Traffic(days)
    joined.sent_never_seen = sorted(name for name in sent if name not in traffic)
    joined.seen_not_in_code = [
        {"event": name, "seen": entry["seen"]}
        for name, entry in sorted(traffic.items())
        if name not in sent and not name.startswith("$")
    ]
    joined.per_call = [
        {"path": call.path, "line": call.line, "event": call.event, **traffic[call.event]}
        for call in status.calls
        if call.event in traffic
    ]
    status.traffic = joined


RULES = {
    "unplanned_event": "An event the plan does not define",
    "dynamic_event": "An event name no planned event matches",
    "unplanned_property": "A property the plan does not define on its event",
    "missing_required": "A required property missing from a complete object literal",
    "bad_value": "A literal the plan's rules for its property refuse",
    "wrong_surface": "An event sent from a surface the plan does not give it",
    "trigger_moved": "An event no longer sent from its planned trigger file",
    "renamed_event": "An event sent under the name the plan renamed",
    "renamed_property": "A property sent under the name the plan renamed",
}


def sarif(status: Status, plan: Plan) -> dict[str, Any]:
    """The findings as SARIF 2.1.0, which code-scanning shows on a pull request."""
    rules = [{"id": code, "shortDescription": {"text": text}} for code, text in RULES.items()]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "eventplan", "rules": rules}},
                "properties": {"plan": plan.name, "version": plan.version},
                "results": [_sarif_result(found) for found in status.findings],
            }
        ],
    }


def _sarif_result(found: Finding) -> dict[str, Any]:
    region = {"startLine": found.line, "startColumn": found.column}
    return {
        "ruleId": found.code,
        "level": found.severity,
        "message": {"text": found.message},
        "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": found.path}, "region": region}}
        ],
    }
