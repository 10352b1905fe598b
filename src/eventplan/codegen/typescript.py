"""TypeScript: one typed function per event, for posthog-js and posthog-node.

`new <Plan>Analytics(fromPosthogJs(posthog)).chatCreated({...})` — enum properties
are string-literal unions, optional ones are `?`, and a misspelt event is a
missing method: all compile errors under `tsc --strict`.
"""

from __future__ import annotations

import json

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


def generate(plan: Plan) -> str:
    out = [header(plan, "//"), *SENDERS]
    for group in plan.groups.values():
        out += _interface(
            f"{pascal(group.name)}", list(group.properties.values()), group.description
        )
        out.append("")
    out += _register(plan)
    methods = []
    for name, event in plan.events.items():
        interface = f"{pascal(name)}Properties"
        out += _interface(interface, list(event.properties.values()), event.description)
        out.append("")
        methods += _method(name, event, interface)
    out += [
        f"/** Every event of plan {comment(plan.name)}, one typed method each. */",
        f"export class {pascal(plan.name)}Analytics {{",
        "  constructor(private readonly send: Sender) {}",
        "",
        *methods,
        "}",
        "",
    ]
    return "\n".join(out)


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


def _method(name: str, event: Event, interface: str) -> list[str]:
    surfaces = ", ".join(event.surfaces)
    optional = " = {}" if not any(p.required for p in event.properties.values()) else ""
    return [
        f"  /** {comment(f'{event.description} ({surfaces}; {event.trigger.file})')} */",
        f"  {camel(name)}(properties: {interface}{optional}): void {{",
        f"    this.send({json.dumps(name)}, properties as unknown as Record<string, unknown>);",
        "  }",
    ]
