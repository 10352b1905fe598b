"""The pages. Each renders what the JSON API already computes; none computes a number.

Dashboards load their panels from `/api/dashboards/{name}/insights/{insight}` one by
one, so the first chart shows without waiting for the slowest. `/live` streams
captured events over server-sent events, filtered on the server.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from eventplan.keys import EVERY_PROJECT
from eventplan.plan.model import Forwarding
from eventplan.project import Project
from eventplan.runtime import Server
from eventplan.web.live import LiveFilter
from eventplan.web.security import Auth

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
Handler = Callable[[Request], Awaitable[Response]]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return str(token)


def csrf_ok(request: Request, submitted: str) -> bool:
    expected = request.session.get("csrf", "")
    return bool(expected) and hmac.compare_digest(str(expected), submitted)


class Pages:
    def __init__(self, server: Server, auth: Auth) -> None:
        self.server = server
        self.auth = auth

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/", self.page(self.index), methods=["GET"]),
            Route("/dashboards/{name}", self.page(self.dashboard), methods=["GET"]),
            Route("/live", self.page(self.live), methods=["GET"]),
            Route("/live/stream", self.page(self.live_stream), methods=["GET"]),
            Route("/plan", self.page(self.plan), methods=["GET"]),
            Route("/alerts", self.page(self.alerts), methods=["GET"]),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ]

    def page(self, handler: Handler) -> Handler:
        """Pages need a login; without one, go to the login form and come back."""

        async def guarded(request: Request) -> Response:
            if not self.auth.sessions.is_live(request):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
            return await handler(request)

        return guarded

    def error_page(
        self, request: Request, status: int, code: str, detail: str, diagnostics: list[str]
    ) -> Response:
        """An error a page met, as a page: the browser's side of the one error shape."""
        titles = {403: "Not allowed", 404: "Not found", 503: "Try again shortly"}
        return templates.TemplateResponse(
            request,
            "error.html",
            {
                "csrf": csrf_token(request),
                "project": "",
                "dashboards": (),
                "status": status,
                "title": titles.get(status, "Something went wrong"),
                "code": code,
                "detail": detail,
                "diagnostics": diagnostics,
            },
            status_code=status,
        )

    def _project(self, request: Request) -> Project:
        """The project a page shows (`?project=`), among those its session may read."""
        access = self.auth.of(request) or EVERY_PROJECT
        return self.server.project(request.query_params.get("project"), access)

    def render(self, request: Request, name: str, **context: Any) -> Response:
        project = self._project(request)
        return templates.TemplateResponse(
            request,
            name,
            {
                "csrf": csrf_token(request),
                "project": project.name,
                "dashboards": project.plan.dashboards,
                **context,
            },
        )

    async def login(self, request: Request) -> Response:
        error = ""
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        if request.method == "POST":
            form = await request.form()
            key = str(form.get("key", ""))
            if not csrf_ok(request, str(form.get("csrf", ""))):
                error = "The form expired; please try again."
            elif (access := self.auth.keys.access(key)) is not None:
                self.auth.sessions.start(request.session, access)  # new session, new token
                return RedirectResponse(target, status_code=303)
            else:
                error = "That key is not valid."
        return templates.TemplateResponse(
            request,
            "login.html",
            {"csrf": csrf_token(request), "error": error, "next": target},
            status_code=401 if error else 200,
        )

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request, str(form.get("csrf", ""))):
            return Response("The form expired; reload the page.", status_code=403)
        self.auth.sessions.end(request.session)
        return RedirectResponse("/login", status_code=303)

    async def index(self, request: Request) -> Response:
        forwarding = None
        if self.server.forwarder.targets:
            forwarding = await run_in_threadpool(self.server.forwarder.status)
        return self.render(request, "index.html", forwarding=forwarding)

    async def dashboard(self, request: Request) -> Response:
        project = self._project(request)
        name = request.path_params["name"]
        board = next((d for d in project.plan.dashboards if d.name == name), None)
        if board is None:
            return self.render(request, "index.html", missing=name)
        return self.render(request, "dashboard.html", board=board)

    async def live(self, request: Request) -> Response:
        project = self._project(request)
        shown = LiveFilter.from_query(request.query_params)
        recent = await run_in_threadpool(
            project.recent_events, 50, shown.event, shown.distinct_id, shown.problems_only
        )
        return self.render(request, "live.html", recent=recent, shown=shown)

    async def live_stream(self, request: Request) -> Response:
        project = self._project(request)
        live_filter = LiveFilter.from_query(request.query_params)
        subscriber = self.server.live.subscribe(project.name, live_filter)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b": connected\n\n"
                while not await request.is_disconnected():
                    try:
                        item = await asyncio.wait_for(subscriber.queue.get(), timeout=10)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"data: " + msgspec.json.encode(item) + b"\n\n"
            finally:
                self.server.live.unsubscribe(subscriber)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def plan(self, request: Request) -> Response:
        project = self._project(request)
        include_bots = request.query_params.get("bots", "") in ("1", "true")
        report = await run_in_threadpool(project.coverage, None, include_bots)
        forwarding = self.server.writer.forward.get(project.name)
        return self.render(
            request,
            "plan.html",
            coverage=report,
            forwarding=forwarding.decisions() if forwarding is not None else None,
            rules={
                name: rule_text(event.forwarding, project.plan.forward)
                for name, event in project.plan.events.items()
            },
            bots_toggle=str(
                request.url.remove_query_params("bots")
                if include_bots
                else request.url.include_query_params(bots="1")
            ),
        )

    async def alerts(self, request: Request) -> Response:
        project = self._project(request)
        results = await run_in_threadpool(project.alerts)
        history = await run_in_threadpool(project.alert_history, 100)
        return self.render(
            request,
            "alerts.html",
            results=[r.as_dict() for r in results],
            history=history,
            plan_alerts=project.plan.alerts,
        )


def rule_text(rule: Forwarding, plan_wide: str) -> str:
    """An event's forwarding as the plan says it: `valid, sample 0.1, not kept here`."""
    parts = [rule.when or f"as the plan ({plan_wide})"]
    if rule.sample < 1:
        parts.append(f"sample {rule.sample:g}")
    if not rule.keep_local:
        parts.append("not kept here")
    return ", ".join(parts)
