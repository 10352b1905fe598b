"""The data API (`/api/*`) and `/_health`: thin doors over the project core.

Each endpoint checks who is asking (a personal API key, or a live session whose
POSTs pass the CSRF check), asks the runtime or a project off the event loop, and
answers JSON; an EventplanError becomes the one error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from eventplan.errors import EventplanError, Forbidden
from eventplan.query.model import DEFAULT_TOP, DateRange, View
from eventplan.query.posthog import from_posthog
from eventplan.runtime import Server
from eventplan.store import QueryError
from eventplan.web.errors import (
    error_response,
    eventplan_error_response,
    json_response,
    unauthorized,
)
from eventplan.web.security import Auth, same_origin_or_token


class DataApi:
    def __init__(self, server: Server, auth: Auth) -> None:
        self.server = server
        self.auth = auth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_health", self.health, methods=["GET"]),
            Route("/api/sql", self.sql, methods=["POST"]),
            Route("/api/projects/{project}/query", self.query, methods=["POST"]),
            Route("/api/projects/{project}/query/", self.query, methods=["POST"]),
            Route("/api/dashboards", self.dashboards, methods=["GET"]),
            Route("/api/dashboards/{name}", self.dashboard, methods=["GET"]),
            Route("/api/dashboards/{name}/insights/{insight}", self.insight, methods=["GET"]),
            Route("/api/alerts", self.alerts, methods=["GET"]),
            Route("/api/forward", self.forward, methods=["GET"]),
            Route("/api/forward/retry", self.forward_retry, methods=["POST"]),
        ]

    async def health(self, request: Request) -> Response:
        return json_response(await run_in_threadpool(self.server.health))

    # -- who is asking --------------------------------------------------------------

    def _refused(self, request: Request) -> Response | None:
        """None when a personal API key (as a bearer token) or a live browser session
        authorizes the request; a session's POST must also pass the CSRF check."""
        if (by_key := self.auth.bearer(request)) is not None:
            request.state.access = by_key
            return None  # a bearer key is no ambient credential: no CSRF check
        by_session = self.auth.sessions.access(request)
        if by_session is None:
            return unauthorized()
        request.state.access = by_session
        if request.method not in ("GET", "HEAD") and not same_origin_or_token(request):
            return error_response(
                403,
                "a change made with the session cookie must come from this server's own "
                "pages (Origin) or carry the X-CSRF-Token header",
                code="csrf_failed",
            )
        return None

    @staticmethod
    def _admin(request: Request) -> None:
        """The forwarding outbox holds every project's events: an admin key only."""
        if request.state.access.projects is not None:
            raise Forbidden("this key reads its own projects only; this needs an admin key")

    async def _guarded(self, request: Request, work: Callable[[], Any]) -> Response:
        """Authorized, computed off the event loop, errors in the one error shape."""
        if (refusal := self._refused(request)) is not None:
            return refusal
        try:
            result = await run_in_threadpool(work)
        except EventplanError as exc:
            return eventplan_error_response(exc)
        return json_response(result)

    async def _guarded_json(self, request: Request, work: Callable[[Any], Any]) -> Response:
        """`_guarded` for a POST whose JSON body `work` takes (read after the key check)."""
        if (refusal := self._refused(request)) is not None:
            return refusal
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError as exc:
            return error_response(400, f"the body is not valid JSON: {exc}")
        return await self._guarded(request, lambda: work(body))

    # -- the endpoints ----------------------------------------------------------------

    async def sql(self, request: Request) -> Response:
        def work(body: Any) -> Any:
            query = body.get("query") if isinstance(body, dict) else None
            if not isinstance(query, str) or not query.strip():
                raise QueryError('the body must be {"query": "SELECT …"}')
            name = body.get("project")
            access = request.state.access
            if name is None and access.projects is None:  # an admin key: the whole store
                return self.server.sql_answer(query)
            if name is not None and not isinstance(name, str):
                raise QueryError("`project` must be a project's name")
            project = self.server.project(name, access)
            dialect = self.server.store.dialect
            from eventplan.query.scoped import scoped_sql  # sqlglot, on first use

            return self.server.sql_answer(scoped_sql(query, dialect, project.name))

        return await self._guarded_json(request, work)

    async def query(self, request: Request) -> Response:
        project_key = request.path_params["project"]

        def work(body: Any) -> Any:
            project = self.server.project(project_key, request.state.access)
            raw = body.get("query") if isinstance(body, dict) and "query" in body else body
            parsed = from_posthog(raw)
            if isinstance(parsed, str):  # HogQL, translated with the project's scope
                return project.hogql(parsed, self.server.settings.query_timeout or None)
            return project.query(parsed)

        return await self._guarded_json(request, work)

    async def dashboards(self, request: Request) -> Response:
        def work() -> Any:
            project = self.server.project(request.query_params.get("project"), request.state.access)
            return {
                "results": [
                    {
                        "name": d.name,
                        "title": d.title,
                        "description": d.description,
                        "insights": [i.name for i in d.insights],
                    }
                    for d in project.plan.dashboards
                ]
            }

        return await self._guarded(request, work)

    async def dashboard(self, request: Request) -> Response:
        def work() -> Any:
            project = self.server.project(request.query_params.get("project"), request.state.access)
            return project.dashboard(request.path_params["name"], view_of(request))

        return await self._guarded(request, work)

    async def insight(self, request: Request) -> Response:
        def work() -> Any:
            project = self.server.project(request.query_params.get("project"), request.state.access)
            return project.insight(
                request.path_params["name"], request.path_params["insight"], view_of(request)
            )

        return await self._guarded(request, work)

    async def forward(self, request: Request) -> Response:
        def work() -> Any:
            self._admin(request)
            return self.server.forwarder.status()

        return await self._guarded(request, work)

    async def forward_retry(self, request: Request) -> Response:
        def work() -> Any:
            self._admin(request)
            return {"requeued": self.server.store.outbox_requeue_failed()}

        return await self._guarded(request, work)

    async def alerts(self, request: Request) -> Response:
        params = request.query_params

        def work() -> Any:
            project = self.server.project(params.get("project"), request.state.access)
            results = project.alerts(since=params.get("since"))
            return {
                "results": [r.as_dict() for r in results],
                "history": project.alert_history(200),
            }

        return await self._guarded(request, work)


MAX_TOP = 1000  # breakdown values on one chart, at most


def view_of(request: Request) -> View:
    """A dashboard's view from its query string: `date_from` (30 days by default),
    `date_to`, `interval`, `breakdown` (empty means the insight's own), `top` (how many
    breakdown values, 25 by default), `bots=1`."""
    params = request.query_params
    return View(
        DateRange(
            date_from=params.get("date_from") or "-30d", date_to=params.get("date_to") or None
        ),
        interval=params.get("interval") or None,
        breakdown=params.get("breakdown") or None,
        breakdown_limit=top_values(params.get("top") or str(DEFAULT_TOP)),
        include_bots=params.get("bots", "") in ("1", "true"),
    )


def top_values(text: str) -> int:
    """How many breakdown values a chart shows: a whole number from 1 to MAX_TOP."""
    if not (text.isascii() and text.isdigit() and 1 <= int(text[:6]) <= MAX_TOP):
        raise QueryError(f"top is {text[:20]!r}; it must be a whole number from 1 to {MAX_TOP}")
    return int(text)
