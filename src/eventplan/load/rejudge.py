"""Judging stored events again, after a plan change, inside the store.

What used to be invalid and is valid under the plan as it is now, and the reverse:
one statement over a project's stored events (the plan compiled for the store's
engine in `stored` mode: a property the privacy policy changed keeps the violations
it had when captured), then one update of their verdicts and violations.
"""

from __future__ import annotations

from eventplan.load.judge_clickhouse import JudgeClickHouse
from eventplan.load.judge_sql import JudgeSql, json_path, text
from eventplan.plan.model import Plan
from eventplan.query.sql import DIALECTS, Aliases
from eventplan.store.base import Store


def rejudge(
    store: Store, plan: Plan, project: str, since_us: int | None = None
) -> list[tuple[str, str, int]]:
    """The project's stored events (since `since_us`) judged by `plan` and stored so;
    each change of verdict counted, as (before, after, events)."""
    if store.dialect == "clickhouse":
        # The ClickHouse compilation reads old property names itself (`stored` mode).
        on_clickhouse = JudgeClickHouse(plan, stored=True)
        return store.rejudge(
            lambda source: on_clickhouse.select(
                under_planned_events(plan, source, "clickhouse"), ordered=False
            ),
            {},
            project,
            plan.version,
            since_us,
        )
    judge = JudgeSql(plan, stored=True)
    return store.rejudge(
        lambda source: judge.select(under_planned_names(plan, source), ordered=False),
        judge.tables(),
        project,
        plan.version,
        since_us,
    )


def under_planned_events(plan: Plan, source: str, dialect: str) -> str:
    """`source`'s events (`event`, ...) under the names the plan has now: one stored
    under an old name (`renamed_from`) as the planned event."""
    if not plan.event_renames():
        return source
    event = Aliases.of(plan).planned_sql("event", DIALECTS[dialect])
    return f"SELECT * REPLACE ({event} AS event) FROM ({source})"


def under_planned_names(plan: Plan, source: str) -> str:
    """`under_planned_events` in DuckDB, and an old property name as the planned one
    where the new name is not there too, as capture renames what it receives
    (`Judge.rename`). One SELECT layer per rename."""
    source = under_planned_events(plan, source, "duckdb")
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
