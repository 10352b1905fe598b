"""Judging stored events again, after a plan change, inside the store.

What used to be invalid and is valid under the plan as it is now, and the reverse:
one statement over a project's stored events (`load.judge_sql` in `stored` mode:
a property the privacy policy changed keeps the violations it had when captured),
then an UPDATE of their verdicts and violations.
"""

from __future__ import annotations

from eventplan.errors import EventplanError
from eventplan.load.judge_sql import JudgeSql
from eventplan.plan.model import Plan
from eventplan.store.base import Store
from eventplan.store.duckdb import EventStore


class RejudgeUnsupported(EventplanError):
    status = 400
    code = "rejudge_unsupported"


def rejudge(
    store: Store, plan: Plan, project: str, since_us: int | None = None
) -> list[tuple[str, str, int]]:
    """The project's stored events (since `since_us`) judged by `plan` and stored so;
    each change of verdict counted, as (before, after, events)."""
    if not isinstance(store, EventStore):
        raise RejudgeUnsupported("rejudge runs inside DuckDB; it is not built for ClickHouse yet")
    judge = JudgeSql(plan, stored=True)
    return store.rejudge(judge.select, judge.tables(), project, plan.version, since_us)
