"""The one ASGI app in front of a running `Server`: capture, the data API, the pages.

Every URL is one of `Capture.routes()`, `DataApi.routes()` or `Pages.routes()`.
One error boundary: an EventplanError no endpoint answered itself is the one JSON
error shape on `/api/*` and capture, an error page in the UI; never a plain-text 500.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response

from eventplan.errors import EventplanError
from eventplan.runtime import Server
from eventplan.web.api import DataApi
from eventplan.web.capture import Capture
from eventplan.web.errors import error_parts, eventplan_error_response
from eventplan.web.pages import Pages
from eventplan.web.security import Auth, SecurityHeaders

SESSION_DAYS = 14


def create_app(server: Server) -> Starlette:
    auth = Auth(server.keys)
    pages = Pages(server, auth)

    async def on_error(request: Request, exc: Exception) -> Response:
        """An EventplanError no route caught (a page over a failing store, say)."""
        assert isinstance(exc, EventplanError)
        browsing = "text/html" in request.headers.get("accept", "")
        if not browsing or request.url.path.startswith("/api/"):
            return eventplan_error_response(exc)
        return pages.error_page(request, exc.status, *error_parts(exc))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with server.running():
            yield

    return Starlette(
        routes=[*Capture(server).routes(), *DataApi(server, auth).routes(), *pages.routes()],
        lifespan=lifespan,
        middleware=_middleware(server),
        exception_handlers={EventplanError: on_error},
    )


def _middleware(server: Server) -> list[Middleware]:
    """Security headers on every answer; a signed session cookie (SameSite=Strict)."""
    secret = server.store.meta_or_create("session_secret", lambda: secrets.token_hex(32))
    return [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="eventplan_session",
            same_site="strict",
            https_only=server.settings.secure_cookies,
            max_age=SESSION_DAYS * 24 * 3600,
        ),
    ]
