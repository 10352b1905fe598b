"""Judging stored events again, after a plan change, inside the store.

What used to be invalid and is valid under the plan as it is now, and the reverse:
one statement over a project's stored events (`load.judge_sql` in `stored` mode:
a property the privacy policy changed keeps the violations it had when captured),
then an UPDATE of their verdicts and violations.
"""

from __future__ import annotations

from eventplan.errors import EventplanError
from eventplan.load.judge_sql import JudgeSql, json_path, text
from eventplan.plan.model import Plan
from eventplan.query.sql import DIALECTS, Aliases
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

    def judged(source: str) -> str:
        return judge.select(under_planned_names(plan, source))

    return store.rejudge(judged, judge.tables(), project, plan.version, since_us)


def under_planned_names(plan: Plan, source: str) -> str:
    """`source`'s events (`event`, `properties`, ...) under the names the plan has now:
    one stored under an old name (`renamed_from`) as the planned event, and an old
    property name as the planned one where the new name is not there too, as capture
    renames what it receives (`Judge.rename`). One SELECT layer per rename."""
    if plan.event_renames():
        event = Aliases.of(plan).planned_sql("event", DIALECTS["duckdb"])
        source = f"SELECT * REPLACE ({event} AS event) FROM ({source})"
    for event in plan.events:
        for old, new in plan.property_renames(event).items():
            moved = (
                f"json_merge_patch(properties, json_object({text(old)}, NULL, "
                f"{text(new)}, properties->{text(json_path(old))}))"
            )
            applies = (
                f"event = {text(event)} AND json_exists(properties, {text(json_path(old))}) "
                f"AND NOT json_exists(properties, {text(json_path(new))})"
            )
            source = (
                f"SELECT * REPLACE (CASE WHEN {applies} THEN {moved} ELSE properties END "
                f"AS properties) FROM ({source})"
            )
    return source
