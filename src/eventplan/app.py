"""The eventplan app: one ASGI app for capture, the data API, the UI and health.

Every URL is listed in `Server.routes()`. The capture endpoints speak PostHog's
protocol (shared/reference/posthog-wire.md): any 4xx is final for posthog-js, so
only malformed requests get one; a full queue or an exhausted budget answers 503
with Retry-After, which both clients retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from eventplan.capture.enrich import TrustedProxies
from eventplan.capture.errors import CaptureError, PayloadTooLarge, Unavailable
from eventplan.capture.events import now_us
from eventplan.capture.ingest import Ingestor
from eventplan.config import Settings
from eventplan.errors import EventplanError, Forbidden, PlanError
from eventplan.plan import load_plan
from eventplan.project import Project, UnknownProject
from eventplan.query.model import DateRange
from eventplan.query.monitor import AlertMonitor
from eventplan.query.posthog import from_posthog
from eventplan.query.scoped import scoped_sql
from eventplan.store import QueryError, local_base, open_store
from eventplan.store.forward import Forwarder, Target, pause
from eventplan.store.wal import LogFull, WriteAheadLog
from eventplan.store.writer import UNSTORED, BackgroundWriter
from eventplan.web.live import LiveFeed
from eventplan.web.pages import Pages
from eventplan.web.security import (
    EVERY_PROJECT,
    Access,
    SecurityHeaders,
    Sessions,
    same_origin_or_token,
)

log = logging.getLogger("eventplan.app")
_json = msgspec.json.Encoder()

CAPTURE_PATHS = ("/e", "/i/v0/e", "/capture", "/batch", "/track", "/engage")
RECORDING_PATHS = ("/s",)
FLAGS_PATHS = ("/flags", "/decide")
# How long shutdown waits for the alert check or a forward in flight (then cancels it).
BACKGROUND_STOP_SECONDS = 3.0
# How long shutdown lets the writer store what is acknowledged; the rest stays in the
# log and is replayed on the next start. Together these keep SIGTERM within 10 s.
STOP_FLUSH_SECONDS = 4.0
# Rows a SQL answer over HTTP holds at most; `hasMore` says when there were more.
MAX_API_ROWS = 100_000
FORWARD_VERDICTS = {
    "all": frozenset({"valid", "invalid", "unplanned"}),
    "valid": frozenset({"valid"}),
    "valid+invalid": frozenset({"valid", "invalid"}),
}
REMOTE_CONFIG: dict[str, Any] = {
    "supportedCompression": ["gzip", "gzip-js"],
    "hasFeatureFlags": False,
    "sessionRecording": False,
    "heatmaps": False,
    "surveys": False,
    "analytics": {"endpoint": "/e/"},
}
NO_FLAGS: dict[str, Any] = {
    "flags": {},
    "featureFlags": {},
    "featureFlagPayloads": {},
    "errorsWhileComputingFlags": False,
    "quotaLimited": [],
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_json.encode(body), status, headers, media_type="application/json")


def error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    code: str | None = None,
    diagnostics: list[str] | None = None,
) -> Response:
    """The one error shape: PostHog's (`type`, `code`, `detail`) plus `status`, and the
    diagnostics (a plan's lint findings) as a list when there are any."""
    kind = "authentication_error" if status == 401 else "validation_error"
    if status >= 500:
        kind = "server_error"
    body: dict[str, Any] = {
        "type": kind,
        "code": code or _code(status),
        "detail": message,
        "status": status,
    }
    if diagnostics:
        body["diagnostics"] = diagnostics
    return json_response(body, status, headers)


def error_parts(exc: EventplanError) -> tuple[str, str, list[str]]:
    """An EventplanError's code (from its class, else its status), message and
    diagnostics (a plan's lint findings, listed apart from the message)."""
    diagnostics = exc.diagnostics if isinstance(exc, PlanError) else []
    message = exc.args[0] if diagnostics and exc.args else str(exc)
    return exc.code or _code(exc.status), str(message), diagnostics


def eventplan_error_response(exc: EventplanError) -> Response:
    """An EventplanError in the one error shape; a 503 says when to retry."""
    retry = {"Retry-After": "5"} if exc.status == 503 else None
    code, message, diagnostics = error_parts(exc)
    return error_response(exc.status, message, retry, code, diagnostics)


def _code(status: int) -> str:
    return {
        400: "invalid_payload",
        401: "invalid_api_key",
        403: "permission_denied",
        404: "not_found",
        413: "payload_too_large",
        503: "unavailable",
    }.get(status, "error")


def unauthorized() -> Response:
    return error_response(
        401, "send `Authorization: Bearer <personal API key>`; project tokens cannot read"
    )


def cors_headers(request: Request) -> dict[str, str]:
    """PostHog's CORS: mirror the Origin and allow credentials."""
    origin = request.headers.get("origin")
    if not origin:
        return {"Access-Control-Allow-Origin": "*"}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class Server:
    """The running system: projects, the log, the store and the writer behind one app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        plans = [load_plan(p.plan) for p in settings.projects]
        self.store = open_store(settings.db, plans, memory_limit=settings.memory_limit)
        self.projects = [
            Project(
                config.name or plan.name,
                plan,
                self.store,
                salt_setting=settings.hash_salt,
                tokens=config.tokens,
                enforcement=config.enforcement,
            )
            for config, plan in zip(settings.projects, plans, strict=True)
        ]
        for project in self.projects:
            project.prepare_to_judge()
        self.ingestor = Ingestor(
            self.projects, TrustedProxies(settings.trusted_proxies), settings.token_rate
        )
        self.wal = WriteAheadLog(settings.wal_dir, reserve_bytes=settings.log_reserve)
        quarantined = frozenset(p.name for p in self.projects if p.enforcement == "quarantine")
        forwarding = {
            project.name: FORWARD_VERDICTS[project.plan.forward]
            for project, config in zip(self.projects, settings.projects, strict=True)
            if config.forward
        }
        self.writer = BackgroundWriter(
            self.store, self.wal, quarantine=quarantined, forward=forwarding
        )
        self.forwarder = Forwarder(
            self.store,
            [
                Target(project.name, str(config.forward), str(config.forward_token))
                for project, config in zip(self.projects, settings.projects, strict=True)
                if config.forward
            ],
        )
        # Personal API keys, by SHA-256: the global ones read every project; a key in a
        # project's `api_keys` reads that project alone.
        self._api_keys: dict[bytes, Access] = {
            hash_key(key): EVERY_PROJECT for key in settings.api_keys
        }
        self._api_keys |= {bytes.fromhex(d): EVERY_PROJECT for d in settings.api_key_hashes}
        self.first_run_key: str | None = None
        if not self._api_keys:
            self._api_keys[self._admin_key()] = EVERY_PROJECT
        for project, config in zip(self.projects, settings.projects, strict=True):
            for key in config.api_keys:
                held = self._api_keys.get(hash_key(key), Access(frozenset()))
                if held.projects is not None:
                    self._api_keys[hash_key(key)] = Access(held.projects | {project.name})
        self.monitor = AlertMonitor(
            self.store, {p.name: p.plan for p in self.projects}, settings.webhook
        )
        self.live = LiveFeed()
        self.sessions = Sessions()
        self.pages = Pages(self)
        self.counters: Counter[str] = Counter()
        self.recordings: Counter[str] = Counter()
        self.started = False

    def _admin_key(self) -> bytes:
        """With no key configured, one admin key: shown once on the first run, kept hashed."""

        def make() -> str:
            self.first_run_key = "phx_" + secrets.token_urlsafe(24)
            return hash_key(self.first_run_key).hex()

        return bytes.fromhex(self.store.meta_or_create("admin_key_sha256", make))

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        replayed = self.writer.replay()
        if replayed:
            log.warning("replayed %d acknowledged events from the write-ahead log", replayed)
        taken = self.writer.retry_set_aside()
        if taken or self.writer.stats.unstored:
            log.warning(
                "%d set-aside events stored now; %d still refused (in %s)",
                taken,
                self.writer.stats.unstored,
                self.settings.wal_dir / UNSTORED,
            )
        self.writer.start()
        self.started = True

    def stop(self) -> None:
        """Clean shutdown: what is acknowledged goes into the store first, for up to
        STOP_FLUSH_SECONDS while the store takes it; the rest waits in the log."""
        if self.started:
            self.writer.flush(STOP_FLUSH_SECONDS, while_failing=False)
            self.writer.stop()
        self.wal.close()
        try:
            self.store.close()
        except Exception:  # a failing store may not close cleanly; the log holds the rest
            log.exception("closing the store failed")
        self.started = False

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.start()
        # Where `eventplan sql` finds the server holding the store. Removed here, not
        # after uvicorn returns: on SIGTERM uvicorn shuts down, then re-raises the
        # signal, and the process ends before any code after it.
        note = serve_info_path(self.settings.db)
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_bytes(
            msgspec.json.encode(
                {"url": f"http://{self.settings.host}:{self.settings.port}", "pid": os.getpid()}
            )
        )
        stopping = asyncio.Event()
        background = []
        if self.settings.alert_interval > 0:
            background.append(asyncio.create_task(self._check_alerts_forever(stopping)))
        if self.forwarder.targets:
            background.append(asyncio.create_task(self.forwarder.run_forever(stopping)))
        try:
            yield
        finally:
            # Asked to stop rather than cancelled: a cancelled task leaves its thread
            # running a store call, and closing the store under it fails.
            stopping.set()
            for task in background:
                try:
                    await asyncio.wait_for(task, timeout=BACKGROUND_STOP_SECONDS)
                except TimeoutError:
                    log.warning("a background task did not stop in time; cancelled")
                except Exception:  # whatever ended it, the store is still flushed below
                    log.exception("a background task had failed")
            try:
                self.stop()
            finally:
                note.unlink(missing_ok=True)

    async def _check_alerts_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                changes = await run_in_threadpool(self.monitor.check)
                await self.monitor.notify(changes)
            except EventplanError as exc:
                log.error("alert check failed: %s", exc)
            except Exception:  # the next check may well work: never let the loop die
                log.exception("alert check failed unexpectedly")
            await pause(stopping, self.settings.alert_interval)

    def app(self) -> Starlette:
        secret = self.store.meta_or_create("session_secret", lambda: secrets.token_hex(32))
        middleware = [
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie="eventplan_session",
                same_site="strict",
                https_only=self.settings.secure_cookies,
                max_age=14 * 24 * 3600,
            ),
        ]
        return Starlette(
            routes=self.routes(),
            lifespan=self.lifespan,
            middleware=middleware,
            exception_handlers={EventplanError: self._error},
        )

    async def _error(self, request: Request, exc: Exception) -> Response:
        """An EventplanError no route caught (a page over a failing store, say): the
        one error shape, not a plain-text 500; an HTML page for a browser's page."""
        assert isinstance(exc, EventplanError)
        browsing = "text/html" in request.headers.get("accept", "")
        if not browsing or request.url.path.startswith("/api/"):
            return eventplan_error_response(exc)
        return self.pages.error_page(request, exc.status, *error_parts(exc))

    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "OPTIONS"]
        routes: list[BaseRoute] = [Route("/_health", self.health, methods=["GET"])]
        for path in CAPTURE_PATHS:
            routes += [Route(path, self.capture, methods=methods)]
            routes += [Route(path + "/", self.capture, methods=methods)]
        for path in RECORDING_PATHS:
            routes += [Route(path, self.recording, methods=methods)]
            routes += [Route(path + "/", self.recording, methods=methods)]
        for path in FLAGS_PATHS:
            routes += [Route(path, self.flags, methods=methods)]
            routes += [Route(path + "/", self.flags, methods=methods)]
        routes += [
            Route("/array/{token}/config", self.remote_config, methods=["GET", "OPTIONS"]),
            Route("/array/{token}/config.js", self.remote_config_js, methods=["GET", "OPTIONS"]),
            Route("/api/sql", self.api_sql, methods=["POST"]),
            Route("/api/projects/{project}/query", self.api_query, methods=["POST"]),
            Route("/api/projects/{project}/query/", self.api_query, methods=["POST"]),
            Route("/api/dashboards", self.api_dashboards, methods=["GET"]),
            Route("/api/dashboards/{name}", self.api_dashboard, methods=["GET"]),
            Route("/api/dashboards/{name}/insights/{insight}", self.api_insight, methods=["GET"]),
            Route("/api/alerts", self.api_alerts, methods=["GET"]),
            Route("/api/forward", self.api_forward, methods=["GET"]),
            Route("/api/forward/retry", self.api_forward_retry, methods=["POST"]),
        ]
        routes += self.pages.routes()
        return routes

    # -- capture -----------------------------------------------------------------

    async def capture(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        try:
            if self.writer.pending_events > self.settings.max_pending_events:
                raise Unavailable("the server is catching up on writes; retry shortly", 2)
            body = await self._read_body(request)
            ingested = self.ingestor.ingest(
                body,
                content_type=request.headers.get("content-type", ""),
                content_encoding=request.headers.get("content-encoding", ""),
                query=dict(request.query_params),
                peer=request.client.host if request.client else None,
                forwarded_for=request.headers.get("x-forwarded-for"),
                received_us=now_us(),
                limit=self.settings.max_body_bytes,
            )
            try:
                seq = await self.wal.append(ingested.record)
            except LogFull as exc:
                raise Unavailable(
                    f"the server's disk is nearly full ({exc.strerror}); retry", 5
                ) from exc
            except OSError as exc:
                raise Unavailable(
                    f"the server could not write the events to disk ({exc.strerror or exc}); retry",
                    5,
                ) from exc
            self.writer.submit(seq, len(ingested.events))
            self.live.publish(ingested.events)
        except CaptureError as exc:
            self.counters[f"http_{exc.status}"] += 1
            return error_response(exc.status, exc.message, {**cors, **exc.headers}, exc.code)
        self.counters["requests_ok"] += 1
        self.counters["events_accepted"] += len(ingested.events)
        for event in ingested.events:
            self.counters[f"events_{event.verdict}"] += 1
        return json_response({"status": 1}, headers=cors)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared[:18]) > limit:
            raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the body is larger than the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _preflight(self, request: Request, cors: dict[str, str]) -> Response:
        headers = {
            **cors,
            "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
            "Access-Control-Allow-Headers": request.headers.get(
                "access-control-request-headers", "*"
            ),
            "Access-Control-Max-Age": "86400",
        }
        return Response(status_code=200, headers=headers)

    async def recording(self, request: Request) -> Response:
        """Session recordings are accepted and counted, not stored (see README)."""
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        try:
            body = await self._read_body(request)
        except CaptureError as exc:
            return error_response(exc.status, exc.message, cors, exc.code)
        self.recordings["requests"] += 1
        self.recordings["bytes"] += len(body)
        return json_response({"status": 1}, headers=cors)

    async def flags(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        return json_response(NO_FLAGS, headers=cors)

    async def remote_config(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        return json_response(REMOTE_CONFIG, headers=cors)

    async def remote_config_js(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return self._preflight(request, cors)
        token = _json.encode(request.path_params["token"]).decode()
        config = _json.encode(REMOTE_CONFIG).decode()
        script = (
            "(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};"
            f"window._POSTHOG_REMOTE_CONFIG[{token}]={{config:{config},siteApps:[]}};}})();"
        )
        return Response(script, headers=cors, media_type="application/javascript")

    # -- health and data -----------------------------------------------------------

    async def health(self, request: Request) -> Response:
        stats = self.writer.stats
        forwarding = (
            await run_in_threadpool(self.forwarder.status) if self.forwarder.targets else None
        )
        log_free = self.wal.free_bytes()
        reasons = [
            reason
            for reason, present in (
                ("log_not_writable", self.wal.last_error is not None),
                ("disk_low", self.wal.disk_low),
                ("store_failing", stats.failing),
                ("events_set_aside", stats.unstored > 0),
                ("log_damaged", self.wal.damaged_parts() > 0),
                ("forward_failing", forwarding is not None and not forwarding["healthy"]),
            )
            if present
        ]
        return json_response(
            {
                "status": "degraded" if reasons else "ok",
                "reasons": reasons,
                "forward": forwarding,
                "projects": [p.name for p in self.projects],
                "wal_seq": self.wal.last_seq,
                "stored_seq": stats.stored_seq,
                "pending_events": self.writer.pending_events,
                "inserted": stats.inserted,
                "duplicates_skipped": stats.duplicates,
                "unstored": stats.unstored,
                "log": {
                    "free_bytes": log_free,
                    "reserve_bytes": self.wal.reserve_bytes,
                    "error": self.wal.last_error,
                    "damaged_parts": self.wal.damaged_parts(),
                    "trimmed_bytes": self.wal.recovery.trimmed_bytes,
                },
                "store_error": stats.last_error,
                "store_reopened": stats.reopened,
                "counters": dict(self.counters),
                "recordings": dict(self.recordings),
            }
        )

    def key_access(self, key: str) -> Access | None:
        """What a personal API key may read; None for a key that is not one."""
        if not key:
            return None
        digest = hash_key(key.strip())
        for allowed, access in self._api_keys.items():
            if hmac.compare_digest(digest, allowed):
                return access
        return None

    def access_of(self, request: Request) -> Access | None:
        """What the request may read: by its bearer key, else by its live session."""
        return self._bearer_access(request) or self.sessions.access(request)

    def _bearer_access(self, request: Request) -> Access | None:
        """What a personal API key sent as `Authorization: Bearer …` may read."""
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        return self.key_access(key) if scheme.lower() == "bearer" else None

    def _refused(self, request: Request) -> Response | None:
        """None when a personal API key (as a bearer token) or a live browser session
        authorizes the request; a session's POST must also pass the CSRF check."""
        if (by_key := self._bearer_access(request)) is not None:
            request.state.access = by_key
            return None  # a bearer key is no ambient credential: no CSRF check
        by_session = self.sessions.access(request)
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

    async def api_sql(self, request: Request) -> Response:
        def work(body: Any) -> Any:
            query = body.get("query") if isinstance(body, dict) else None
            if not isinstance(query, str) or not query.strip():
                raise QueryError('the body must be {"query": "SELECT …"}')
            name = body.get("project")
            access = request.state.access
            if name is None and access.projects is None:  # an admin key: the whole store
                return self._sql_answer(query)
            if name is not None and not isinstance(name, str):
                raise QueryError("`project` must be a project's name")
            project = self.project(name, access)
            return self._sql_answer(scoped_sql(query, self.store.dialect, project.name))

        return await self._guarded_json(request, work)

    def _sql_answer(self, query: str) -> dict[str, Any]:
        """`/api/sql` and a HogQLQuery: up to MAX_API_ROWS rows, one more read to
        know whether there were more."""
        columns, rows = self.store.sql(
            query, max_rows=MAX_API_ROWS + 1, timeout=self.settings.query_timeout or None
        )
        return {
            "columns": columns,
            "results": rows[:MAX_API_ROWS],
            "hasMore": len(rows) > MAX_API_ROWS,
        }

    def project(self, key: str | None, access: Access = EVERY_PROJECT) -> Project:
        """A project by name or 1-based number (the first one when not given) among those
        `access` may read; to a key of one project, the others do not exist."""
        visible = [p for p in self.projects if access.allows(p.name)]
        if key is None and visible:
            return visible[0]
        for number, project in enumerate(self.projects, start=1):
            if key in (project.name, str(number)) and project in visible:
                return project
        names = ", ".join(p.name for p in visible) or "none"
        raise UnknownProject(f"no project {key!r}; projects: {names}")

    def _admin(self, request: Request) -> None:
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

    async def api_query(self, request: Request) -> Response:
        project_key = request.path_params["project"]

        def work(body: Any) -> Any:
            project = self.project(project_key, request.state.access)
            raw = body.get("query") if isinstance(body, dict) and "query" in body else body
            parsed = from_posthog(raw)
            if isinstance(parsed, str):  # HogQL, translated with the project's scope
                return project.hogql(parsed, self.settings.query_timeout or None)
            return project.query(parsed)

        return await self._guarded_json(request, work)

    async def api_dashboards(self, request: Request) -> Response:
        def work() -> Any:
            plan = self.project(request.query_params.get("project"), request.state.access).plan
            return {
                "results": [
                    {
                        "name": d.name,
                        "title": d.title,
                        "description": d.description,
                        "insights": [i.name for i in d.insights],
                    }
                    for d in plan.dashboards
                ]
            }

        return await self._guarded(request, work)

    async def api_dashboard(self, request: Request) -> Response:
        params = request.query_params

        def work() -> Any:
            project = self.project(params.get("project"), request.state.access)
            date_range = DateRange(
                date_from=params.get("date_from", "-30d"), date_to=params.get("date_to")
            )
            return project.dashboard(
                request.path_params["name"],
                date_range,
                params.get("interval"),
                params.get("breakdown"),
            )

        return await self._guarded(request, work)

    async def api_insight(self, request: Request) -> Response:
        params = request.query_params

        def work() -> Any:
            project = self.project(params.get("project"), request.state.access)
            date_range = DateRange(
                date_from=params.get("date_from", "-30d"), date_to=params.get("date_to") or None
            )
            return project.insight(
                request.path_params["name"],
                request.path_params["insight"],
                date_range,
                params.get("interval") or None,
                params.get("breakdown") or None,
            )

        return await self._guarded(request, work)

    async def api_forward(self, request: Request) -> Response:
        def work() -> Any:
            self._admin(request)
            return self.forwarder.status()

        return await self._guarded(request, work)

    async def api_forward_retry(self, request: Request) -> Response:
        def work() -> Any:
            self._admin(request)
            return {"requeued": self.store.outbox_requeue_failed()}

        return await self._guarded(request, work)

    async def api_alerts(self, request: Request) -> Response:
        params = request.query_params

        def work() -> Any:
            project = self.project(params.get("project"), request.state.access)
            results = project.alerts(since=params.get("since"))
            return {
                "results": [r.as_dict() for r in results],
                "history": project.alert_history(200),
            }

        return await self._guarded(request, work)


def serve_info_path(db: str) -> Path:
    """Where a running server says its address, for `eventplan sql` to find it."""
    base = local_base(db)
    return base.with_name(base.name + ".serve.json")


def running_server_url(db: str) -> str | None:
    """The address of the server holding `db`, if one is alive (stale notes are removed)."""
    info = serve_info_path(db)
    try:
        note = msgspec.json.decode(info.read_bytes())
        os.kill(int(note["pid"]), 0)
    except (OSError, ValueError, KeyError, msgspec.DecodeError):
        info.unlink(missing_ok=True)
        return None
    return str(note["url"])
