"""`eventplan mcp`: the plan where coding agents work, as a Model Context Protocol server.

A door like the CLI and the HTTP API, on the official `mcp` SDK over stdio: each tool
asks the same functions the other doors do (the plan, the judge, `status`, and with
`--db` the project's coverage, alerts and quarantine), so an agent gets the answers a
person gets from `eventplan` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from eventplan.capture.judge import Judge
from eventplan.codegen.status import scan
from eventplan.plan.model import Plan
from eventplan.plan.validator import Violation
from eventplan.project import Project

MAX_QUARANTINED = 200


def create_server(plan: Plan, project: Project | None = None) -> MCPServer[Any]:
    """The MCP server for one plan (and, with a store, its project's events)."""
    server: MCPServer[Any] = MCPServer(
        name="eventplan",
        instructions=(
            f"The tracking plan `{plan.name}` (version {plan.version}): look up an event "
            "before sending it, validate a payload before committing code that sends it, "
            "and run `status` on a folder to hold its capture calls against the plan."
        ),
    )
    judge = Judge(plan)

    @server.tool(description="An event of the plan: who owns it, where it is sent, its properties.")
    def lookup_event(name: str) -> dict[str, Any]:
        return event_card(plan, name)

    @server.tool(description="The plan's verdict on one event's properties, as capture judges it.")
    def validate_payload(event: str, properties: dict[str, Any]) -> dict[str, Any]:
        verdict = judge.verdict(event, properties)
        return {
            "verdict": verdict.verdict,
            "violations": [_violation(v) for v in verdict.violations],
        }

    @server.tool(description="`eventplan status` on a folder: capture calls against the plan.")
    def status(folder: str) -> dict[str, Any]:
        found = scan(Path(folder), plan)
        return {
            "calls": len(found.calls),
            "never_sent": found.never_sent,
            "findings": [vars(f) for f in found.findings],
        }

    if project is not None:
        _project_tools(server, project)
    return server


def event_card(plan: Plan, name: str) -> dict[str, Any]:
    """What the plan says of one event (or, for a name it lacks, the names it has)."""
    if name not in plan.events:
        return {"found": False, "events": sorted(plan.events)}
    event = plan.events[name]
    return {
        "found": True,
        "event": name,
        "description": event.description,
        "owner": event.owner,
        "surfaces": list(event.surfaces),
        "trigger": {"file": event.trigger.file, "hook": event.trigger.hook},
        "properties": {
            key: {
                "type": prop.type,
                "required": prop.required,
                "enum": list(prop.enum) if prop.enum else None,
                "description": prop.description,
            }
            for key, prop in plan.properties_of(name).items()
        },
    }


def _violation(violation: Violation) -> dict[str, Any]:
    return {
        "code": violation.code,
        "property": violation.property,
        "message": violation.message,
        "severity": violation.severity,
    }


def _project_tools(server: MCPServer[Any], project: Project) -> None:
    @server.tool(description="The plan against the events that arrived: volumes, never seen.")
    def coverage() -> dict[str, Any]:
        return project.coverage()

    @server.tool(description="Every alert of the plan, checked now.")
    def alerts() -> list[dict[str, Any]]:
        return [result.as_dict() for result in project.alerts()]

    @server.tool(description="The newest events held back for breaking the plan (quarantine).")
    def quarantine(limit: int = 50) -> list[dict[str, Any]]:
        columns, rows = project.store.quarantine_list(min(max(limit, 1), MAX_QUARANTINED))
        return [
            {
                key: value.isoformat() if hasattr(value, "isoformat") else value
                for key, value in zip(columns, row, strict=True)
            }
            for row in rows
        ]
