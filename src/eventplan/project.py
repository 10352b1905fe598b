"""One project: its plan, its store, its salt, and everything asked of it.

Every door (capture, `eventplan import`, the data API, the pages, the CLI) asks a
`Project`, and each answer is computed over that project's events only: a query,
a dashboard, an alert check or the coverage of another project's plan never sees
them. The judging pipeline (enrich → validate → privacy) lives here too, so an
event gets the same verdict whichever door it comes in by.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cached_property
from typing import Any

import msgspec

from eventplan.capture.judge import Pipeline
from eventplan.config import Enforcement
from eventplan.errors import EventplanError
from eventplan.plan.forwarding import ForwardRules
from eventplan.plan.model import Plan
from eventplan.query.alerts import AlertResult, check_alerts
from eventplan.query.coverage import coverage, event_traffic
from eventplan.query.dashboards import dashboard_data, find_dashboard, find_insight, insight_data
from eventplan.query.engine import run_query
from eventplan.query.model import Query, View
from eventplan.query.sql import Aliases
from eventplan.store import Store
from eventplan.store.records import LoggedEvent, StoredEvent


class UnknownProject(EventplanError):
    status = 404
    code = "unknown_project"


def resolve_salt(setting: str | None, plan: Plan, store: Store) -> bytes:
    """The salt of `hash` privacy, from one place for every door: the setting
    (`--hash-salt`), else the environment variable the plan names
    (`privacy.hash_salt_env`), else one generated once and kept in the store."""
    salt = (
        setting
        or os.environ.get(plan.hash_salt_env)
        or store.meta_or_create("hash_salt", lambda: os.urandom(16).hex())
    )
    return salt.encode()


class Project:
    """A project by name: the plan its events are judged by and the store they are in."""

    def __init__(
        self,
        name: str,
        plan: Plan,
        store: Store,
        *,
        salt: bytes | None = None,
        salt_setting: str | None = None,
        tokens: tuple[str, ...] = (),
        enforcement: Enforcement = "flag",
    ) -> None:
        self.name = name
        self.plan = plan
        self.store = store
        self.tokens = tokens
        self.enforcement = enforcement
        self._salt = salt
        self._salt_setting = salt_setting

    # -- judging events ----------------------------------------------------------

    @cached_property
    def salt(self) -> bytes:
        """Resolved when first needed: a door that only reads never writes one."""
        return self._salt or resolve_salt(self._salt_setting, self.plan, self.store)

    @cached_property
    def pipeline(self) -> Pipeline:
        return Pipeline(self.plan, self.salt)

    @cached_property
    def forward_rules(self) -> ForwardRules:
        """Gateway mode: what of this project's events goes to PostHog, counted."""
        return ForwardRules(self.plan)

    def prepare_to_judge(self) -> None:
        """Resolve the salt and compile the pipeline now, not on the first event:
        resolving may write the store, which capture must never wait on (nor fail with,
        while the store fails)."""
        for part in ("salt", "pipeline"):
            getattr(self, part)

    def judge(self, events: list[LoggedEvent]) -> list[StoredEvent]:
        """Enrich, validate and apply the privacy policy: logged events ready to store.
        Each event's properties are changed in place."""
        return self.pipeline.stored(events)

    # -- asking about its events ---------------------------------------------------

    def query(self, query: Query, now: datetime | None = None) -> dict[str, Any]:
        """A trends or funnels query over this project's events."""
        scoped = msgspec.structs.replace(query, project=self.name)
        return run_query(self.store, self.plan, scoped, now)

    def hogql(self, text: str, timeout: float | None = None) -> dict[str, Any]:
        """A HogQL query over this project's events, answered as PostHog answers it."""
        # Imported on first use: its SQL parser (sqlglot) is 16 MB a server without
        # HogQL queries need not hold.
        from eventplan.query.hogql import hogql_query

        return hogql_query(text, self.store, self.name, timeout, Aliases.of(self.plan))

    def dashboard(self, name: str, view: View, now: datetime | None = None) -> dict[str, Any]:
        return dashboard_data(self.store, self.plan, self.name, name, view, now)

    def insight(self, dashboard: str, insight: str, view: View) -> dict[str, Any]:
        found = find_insight(find_dashboard(self.plan, dashboard), insight)
        return insight_data(self.store, self.plan, self.name, found, view)

    def alerts(self, since: str | None = None, now: datetime | None = None) -> list[AlertResult]:
        return check_alerts(self.store, self.plan, self.name, now=now, since=since)

    def alert_history(self, limit: int = 200) -> list[dict[str, Any]]:
        return self.store.alert_history(self.name, limit)

    def event_traffic(self, days: int, now: datetime | None = None) -> dict[str, dict[str, Any]]:
        return event_traffic(self.store, self.plan, self.name, days, now)

    def coverage(self, now: datetime | None = None, include_bots: bool = False) -> dict[str, Any]:
        return coverage(self.store, self.plan, self.name, now, include_bots)

    def rejudge(self, since_us: int | None = None) -> list[tuple[str, str, int]]:
        """This project's stored events judged again by its plan as it is now (inside
        the store); each change of verdict counted, as (before, after, events)."""
        from eventplan.load.rejudge import rejudge  # the load stage imports the store's

        return rejudge(self.store, self.plan, self.name, since_us)

    def recent_events(
        self, limit: int, event: str = "", distinct_id: str = "", problems_only: bool = False
    ) -> list[dict[str, Any]]:
        return self.store.recent_events(self.name, limit, event, distinct_id, problems_only)
