"""Python: TypedDicts and one function per server-side event, for posthog-python.

`chat_message_stream(client, distinct_id, {...})` — enum properties are `Literal`,
optional ones `NotRequired`; `mypy --strict` rejects a wrong value or a missing one.
"""

from __future__ import annotations

import json

from eventplan.codegen.names import comment, docstring, header, pascal, snake
from eventplan.plan.model import Plan, Property

PY_TYPES = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "datetime": "str",
}


def py_type(prop: Property) -> str:
    if prop.enum is not None:
        base = f"Literal[{', '.join(json.dumps(v) if isinstance(v, str) else repr(v) for v in prop.enum)}]"
    else:
        base = PY_TYPES[prop.type]
    if prop.nullable:
        base = f"{base} | None"
    return base if prop.required else f"NotRequired[{base}]"


def _typed_dict(name: str, props: list[Property], description: str) -> list[str]:
    lines = [f"{name} = TypedDict(", f"    {json.dumps(name)},", "    {"]
    for prop in props:
        lines.append(f"        {json.dumps(prop.name)}: {py_type(prop)},")
    lines += ["    },", ")"]
    return ([f"# {comment(description)}"] if description else []) + lines


def generate(plan: Plan) -> str:
    out = [
        header(plan, "#").rstrip("\n"),
        '"""Typed tracking functions for the server-side events of the plan."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Literal, NotRequired, Protocol, TypedDict",
        "",
        "",
        "class Client(Protocol):",
        '    """What is used of posthog.Posthog."""',
        "",
        "    def capture(",
        "        self, event: str, *, distinct_id: str, properties: dict[str, Any]",
        "    ) -> Any: ...",
        "",
        "",
    ]
    for group in plan.groups.values():
        if group.applies_to.all or "server" in group.applies_to.surfaces:
            out += _typed_dict(
                pascal(group.name), list(group.properties.values()), group.description
            )
            out += ["", ""]
    for name, event in plan.events.items():
        if "server" not in event.surfaces:
            continue
        typed = f"{pascal(name)}Properties"
        out += _typed_dict(typed, list(event.properties.values()), event.description)
        out += [
            "",
            "",
            f"def {snake(name)}(",
            "    client: Client,",
            "    distinct_id: str,",
            f"    properties: {typed},",
            "    super_properties: dict[str, Any] | None = None,",
            ") -> None:",
            f'    """{docstring(f"{event.description} ({event.trigger.file})")}"""',
            "    client.capture(",
            f"        {json.dumps(name)},",
            "        distinct_id=distinct_id,",
            "        properties={**(super_properties or {}), **properties},",
            "    )",
            "",
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"
