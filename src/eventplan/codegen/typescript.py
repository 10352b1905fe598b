"""TypeScript: one typed function per event, for posthog-js and posthog-node.

`new <Plan>Analytics(fromPosthogJs(posthog)).chatCreated({...})` — enum properties
are string-literal unions, optional ones are `?`, and a misspelt event is a
missing method: all compile errors under `tsc --strict` (with `isolatedModules` and
`verbatimModuleSyntax` too).

With a surface (`--surface web`), the module holds only that surface's events, so
browser code cannot call a server-only event (`<Plan>WebAnalytics`). A server event's
method also types the server's per-request properties (the property groups that apply
to server code: `origin`, `ip_hash`, …), and so does `fromPosthogNode`. `checkedSender`
is the opt-in development check: every payload is held against the plan's rules at
run time before it is sent.
"""

from __future__ import annotations

import json
from typing import Any

from eventplan.codegen.names import camel, comment, doc, header, pascal
from eventplan.plan.model import Event, Plan, Property

TS_TYPES = {
    "string": "string",
    "integer": "number",
    "number": "number",
    "boolean": "boolean",
    "datetime": "string",
}


def ts_type(prop: Property) -> str:
    if prop.enum is not None:
        base = " | ".join(json.dumps(value) for value in prop.enum)
    else:
        base = TS_TYPES[prop.type]
    return f"{base} | null" if prop.nullable else base


def _interface(name: str, props: list[Property], description: str) -> list[str]:
    lines = [f"/** {comment(description)} */" if description else "", f"export interface {name} {{"]
    for prop in props:
        if prop.description or prop.enum:
            lines.append(f"  /** {doc(prop)} */")
        optional = "" if prop.required else "?"
        lines.append(f"  {json.dumps(prop.name)}{optional}: {ts_type(prop)};")
    lines.append("}")
    return [line for line in lines if line != ""]


SENDERS = [
    "/** Sends one event; see fromPosthogJs and fromPosthogNode. */",
    "export type Sender = (event: string, properties: Record<string, unknown>) => void;",
    "",
    "/** posthog-js (browser): super-properties come from register(). */",
    "export function fromPosthogJs(posthog: {",
    "  capture(event: string, properties?: Record<string, unknown> | null): unknown;",
    "}): Sender {",
    "  return (event, properties) => {",
    "    posthog.capture(event, properties);",
    "  };",
    "}",
    "",
    "/** posthog-node (server): every event needs its distinct id and the server properties. */",
    "export function fromPosthogNode(",
    "  client: {",
    "    capture(message: { distinctId: string; event: string; properties?: Record<string, unknown> }): unknown;",
    "  },",
    "  distinctId: string,",
    "  superProperties: Record<string, unknown> = {},",
    "): Sender {",
    "  return (event, properties) => {",
    "    client.capture({ distinctId, event, properties: { ...superProperties, ...properties } });",
    "  };",
    "}",
    "",
]


def generate(plan: Plan, surface: str | None = None) -> str:
    """The module for every event, or for one surface's events only."""
    events = {
        name: event
        for name, event in plan.events.items()
        if surface is None or not event.surfaces or surface in event.surfaces
    }
    server = _server_groups(plan)
    out = [header(plan, "//"), *_senders(server)]
    for group in plan.groups.values():
        out += _interface(
            f"{pascal(group.name)}", list(group.properties.values()), group.description
        )
        out.append("")
    if surface != "server":
        out += _register(plan)
    methods = []
    for name, event in events.items():
        interface = f"{pascal(name)}Properties"
        out += _interface(interface, list(event.properties.values()), event.description)
        out.append("")
        methods += _method(name, event, interface, server if _sent_by_server(event) else "")
    return "\n".join([*out, *_class(plan, surface, methods), *_checker(plan, events)])


def _class(plan: Plan, surface: str | None, methods: list[str]) -> list[str]:
    title = f"{pascal(plan.name)}{pascal(surface) if surface else ''}Analytics"
    which = f"the {surface} events" if surface else "Every event"
    return [
        f"/** {which} of plan {comment(plan.name)}, one typed method each. */",
        f"export class {title} {{",
        "  private readonly send: Sender;",
        "  constructor(send: Sender) {",
        "    this.send = send;",
        "  }",
        "",
        *methods,
        "}",
        "",
    ]


def _server_groups(plan: Plan) -> str:
    """The type of the server's per-request properties: its property groups, each
    optional (a call or the sender gives them), or "" when the plan has none."""
    names = [
        pascal(g.name)
        for g in plan.groups.values()
        if g.applies_to.all or "server" in g.applies_to.surfaces
    ]
    return f"Partial<{' & '.join(names)}>" if names else ""


def _sent_by_server(event: Event) -> bool:
    return "server" in event.surfaces


def _senders(server: str) -> list[str]:
    """SENDERS, with fromPosthogNode's super-properties typed by the server groups."""
    typed = server or "Record<string, unknown>"
    return [
        line.replace(
            "superProperties: Record<string, unknown> = {}", f"superProperties: {typed} = {{}}"
        )
        for line in SENDERS
    ]


def _register(plan: Plan) -> list[str]:
    """registerSuperProperties, typed by the groups that apply to client surfaces."""
    client_groups = [
        g
        for g in plan.groups.values()
        if g.applies_to.all or set(g.applies_to.surfaces) & {"web", "extension"}
    ]
    if not client_groups:
        return []
    union = " & ".join(pascal(g.name) for g in client_groups)
    return [
        "/** Register the client super-properties once per session (posthog.register). */",
        "export function registerSuperProperties(",
        "  posthog: { register(properties: Record<string, unknown>): void },",
        f"  properties: Partial<{union}>,",
        "): void {",
        "  posthog.register(properties as Record<string, unknown>);",
        "}",
        "",
    ]


def _method(name: str, event: Event, interface: str, server: str) -> list[str]:
    """One event's method; a server event's properties may carry the server's own."""
    surfaces = ", ".join(event.surfaces)
    optional = " = {}" if not any(p.required for p in event.properties.values()) else ""
    typed = f"{interface} & {server}" if server else interface
    return [
        f"  /** {comment(f'{event.description} ({surfaces}; {event.trigger.file})')} */",
        f"  {camel(name)}(properties: {typed}{optional}): void {{",
        f"    this.send({json.dumps(name)}, properties as unknown as Record<string, unknown>);",
        "  }",
    ]


def _rules(plan: Plan, events: dict[str, Event]) -> dict[str, Any]:
    """Per event, the rules the development check holds a payload to."""
    rules: dict[str, Any] = {}
    for name in events:
        properties = {}
        for key, prop in plan.properties_of(name).items():
            rule: dict[str, Any] = {"type": prop.type}
            for field_name in ("enum", "minimum", "maximum", "min_length", "max_length", "pattern"):
                value = getattr(prop, field_name)
                if value is not None:
                    rule[field_name] = list(value) if isinstance(value, tuple) else value
            if prop.nullable:
                rule["nullable"] = True
            properties[key] = rule
        required = [k for k, p in plan.events[name].properties.items() if p.required]
        rules[name] = {"required": required, "properties": properties}
    return rules


CHECKER = """
/** One way a payload breaks the plan, as the development check reports it. */
export interface PlanProblem {
  property: string;
  message: string;
}

function problemsOf(event: string, properties: Record<string, unknown>): PlanProblem[] {
  const rules = PLAN_RULES[event];
  if (rules === undefined) return [{ property: "", message: `${event} is not in the plan` }];
  const found: PlanProblem[] = [];
  for (const key of rules.required) {
    if (!(key in properties)) found.push({ property: key, message: `${key}: required but missing` });
  }
  for (const [key, value] of Object.entries(properties)) {
    const rule = rules.properties[key];
    if (rule === undefined || (value === null && rule.nullable === true)) continue;
    const kind = rule.type === "integer" || rule.type === "number" ? "number" : rule.type === "boolean" ? "boolean" : "string";
    if (typeof value !== kind || (rule.type === "integer" && !Number.isInteger(value))) {
      found.push({ property: key, message: `${key}: expected ${rule.type}, got ${JSON.stringify(value)}` });
      continue;
    }
    if (rule.enum !== undefined && !rule.enum.includes(value as string | number | boolean)) {
      found.push({ property: key, message: `${key}: ${JSON.stringify(value)} is not one of ${rule.enum.join(", ")}` });
    }
    if (typeof value === "number" && ((rule.minimum !== undefined && value < rule.minimum) || (rule.maximum !== undefined && value > rule.maximum))) {
      found.push({ property: key, message: `${key}: ${value} is out of bounds` });
    }
    if (typeof value === "string" && ((rule.min_length !== undefined && value.length < rule.min_length) || (rule.max_length !== undefined && value.length > rule.max_length) || (rule.pattern !== undefined && !new RegExp(rule.pattern).test(value)))) {
      found.push({ property: key, message: `${key}: ${JSON.stringify(value)} breaks its length or pattern` });
    }
  }
  return found;
}

/**
 * The opt-in development check: every payload is held against the plan's rules before
 * it is sent; `onProblems` hears of those that break it (by default, they throw).
 */
export function checkedSender(
  send: Sender,
  onProblems: (event: string, problems: PlanProblem[]) => void = (event, problems) => {
    throw new Error(`${event} breaks the plan: ${problems.map((p) => p.message).join("; ")}`);
  },
): Sender {
  return (event, properties) => {
    const problems = problemsOf(event, properties);
    if (problems.length > 0) onProblems(event, problems);
    send(event, properties);
  };
}
"""


def _checker(plan: Plan, events: dict[str, Event]) -> list[str]:
    rules = json.dumps(_rules(plan, events), indent=2, sort_keys=True)
    return [
        "interface PlanRule {",
        "  type: string;",
        "  enum?: (string | number | boolean)[];",
        "  minimum?: number;",
        "  maximum?: number;",
        "  min_length?: number;",
        "  max_length?: number;",
        "  pattern?: string;",
        "  nullable?: boolean;",
        "}",
        "",
        "/** The plan's rules for the development check (checkedSender). */",
        "const PLAN_RULES: Record<string, { required: string[]; properties: Record<string, PlanRule> }> = "
        + rules
        + ";",
        *CHECKER.splitlines(),
        "",
    ]
