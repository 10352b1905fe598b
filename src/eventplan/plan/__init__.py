"""The tracking plan: its model, loading, linting, validation, privacy and JSON Schema."""

from eventplan.plan.loader import Diagnostic, load_plan, read_plan
from eventplan.plan.model import Event, Plan, Property

__all__ = ["Diagnostic", "Event", "Plan", "Property", "load_plan", "read_plan"]
