"""What keeps a logged-in browser safe: security headers on every response, sessions
the server can end, and no state change carried by the cookie alone.

The UI loads nothing from outside and runs no inline script, so the Content
Security Policy allows only the server's own files. A session cookie is signed,
but signing cannot revoke it: the server keeps the ids of live sessions, and
logging out (or a restart) ends one for good. A POST to `/api/*` authorized by the
cookie must come from the server's own origin (a page on the same host but another
port shares the cookie: SameSite does not tell ports apart) or carry the CSRF token;
a personal API key as a bearer token needs neither.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventplan.keys import EVERY_PROJECT, Access, ApiKeys

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
CSRF_HEADER = "x-csrf-token"


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class Sessions:
    """The live browser sessions, by id (kept in memory: a restart logs everyone out)."""

    def __init__(self) -> None:
        self._live: set[str] = set()

    def start(self, session: MutableMapping[str, Any], access: Access) -> None:
        session.clear()
        session["sid"] = secrets.token_urlsafe(24)
        session["csrf"] = secrets.token_urlsafe(24)
        session["projects"] = None if access.projects is None else sorted(access.projects)
        self._live.add(session["sid"])

    def access(self, request: Request) -> Access | None:
        """A live session's access (signed into its cookie at login); None without one."""
        if not self.is_live(request):
            return None
        projects = request.session.get("projects")
        return EVERY_PROJECT if projects is None else Access(frozenset(projects))

    def end(self, session: MutableMapping[str, Any]) -> None:
        self._live.discard(str(session.get("sid", "")))
        session.clear()

    def is_live(self, request: Request) -> bool:
        if "session" not in request.scope:
            return False
        return str(request.session.get("sid", "")) in self._live


class Auth:
    """Who a request is: a personal API key sent as a bearer token, else the live
    session a key logged in."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys
        self.sessions = Sessions()

    def bearer(self, request: Request) -> Access | None:
        """What a personal API key sent as `Authorization: Bearer …` may read."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return self.keys.access(key) if scheme.lower() == "bearer" else None

    def of(self, request: Request) -> Access | None:
        """What the request may read: by its bearer key, else by its live session."""
        return self.bearer(request) or self.sessions.access(request)


def same_origin_or_token(request: Request) -> bool:
    """A state change carried by the session cookie: from our own origin, or with the
    session's CSRF token in the X-CSRF-Token header."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        return hmac.compare_digest(origin, own)
    expected = str(request.session.get("csrf", ""))
    submitted = request.headers.get(CSRF_HEADER, "")
    return bool(expected) and hmac.compare_digest(expected, submitted)
