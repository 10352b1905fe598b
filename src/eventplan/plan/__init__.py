"""The tracking plan: its model, loading, linting, validation, privacy and JSON Schema.

`load_plan` is where reading (`loader`) and the hard rules (`lint`) meet, so neither
module imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from eventplan.errors import PlanError
from eventplan.plan.lint import lint_plan
from eventplan.plan.loader import Diagnostic, read_plan
from eventplan.plan.model import Event, Plan, Property

__all__ = ["Diagnostic", "Event", "Plan", "Property", "load_plan", "read_plan"]


def load_plan(path: str | Path) -> Plan:
    """The plan, ready to use; `PlanError` lists every error if it has any."""
    plan, diagnostics = read_plan(path)
    if plan is not None:
        diagnostics = diagnostics + lint_plan(plan)
    errors = [d.render() for d in diagnostics if d.severity == "error"]
    if plan is None or errors:
        raise PlanError(f"the plan {path} has {len(errors)} error(s); run `eventplan lint`", errors)
    return plan
