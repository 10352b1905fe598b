"""`eventplan docs`: the plan as one self-contained, searchable HTML page."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from eventplan.plan.model import Plan

_env = Environment(
    loader=PackageLoader("eventplan.codegen", "templates"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)


def write_docs(plan: Plan, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    page = _env.get_template("catalogue.html").render(
        plan=plan,
        events=[(event, plan.properties_of(name)) for name, event in plan.events.items()],
    )
    target = out / "index.html"
    target.write_text(page, encoding="utf-8")
    return target
