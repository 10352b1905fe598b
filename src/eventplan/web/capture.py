"""Capture's doors over HTTP, as PostHog's clients call them.

The endpoints speak PostHog's protocol (shared/reference/posthog-wire.md): any 4xx
is final for posthog-js, so only malformed requests get one; a full queue, a full
disk or an exhausted budget answers 503 with Retry-After, which both clients retry.
Flags and remote config answer "nothing to evaluate"; session recordings are
counted, not stored.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from eventplan.capture.errors import CaptureError, PayloadTooLarge
from eventplan.capture.ingest import CaptureRequest
from eventplan.capture.v1 import V1_PATH, V1Headers
from eventplan.runtime import Server
from eventplan.web.errors import error_response, json_response

CAPTURE_PATHS = ("/e", "/i/v0/e", "/capture", "/batch", "/track", "/engage")
AI_PATHS = ("/i/v0/ai/batch",)
AI_EVENT_BYTES = 8 * 1024 * 1024  # PostHog's AI lane: 8 MiB per event
RETRY_AFTER = {"Retry-After": "5"}  # a v1 answer with events to retry: both SDKs wait
RECORDING_PATHS = ("/s",)
FLAGS_PATHS = ("/flags", "/decide")
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
_json = msgspec.json.Encoder()


def capture_request(request: Request, v1: V1Headers | None = None) -> CaptureRequest:
    return CaptureRequest(
        content_type=request.headers.get("content-type", ""),
        content_encoding=request.headers.get("content-encoding", ""),
        query=dict(request.query_params),
        peer=request.client.host if request.client else None,
        forwarded_for=request.headers.get("x-forwarded-for"),
        user_agent=request.headers.get("user-agent", ""),
        v1=v1,
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


def preflight(request: Request, cors: dict[str, str]) -> Response:
    headers = {
        **cors,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("access-control-request-headers", "*"),
        "Access-Control-Max-Age": "86400",
    }
    return Response(status_code=200, headers=headers)


class Capture:
    def __init__(self, server: Server) -> None:
        self.server = server

    def routes(self) -> list[BaseRoute]:
        methods = ["GET", "POST", "OPTIONS"]
        routes: list[BaseRoute] = []
        for paths, endpoint in (
            (CAPTURE_PATHS, self.capture),
            (AI_PATHS, self.capture_ai),
            (RECORDING_PATHS, self.recording),
            (FLAGS_PATHS, self.flags),
        ):
            for path in paths:
                routes += [Route(path, endpoint, methods=methods)]
                routes += [Route(path + "/", endpoint, methods=methods)]
        config_methods = ["GET", "OPTIONS"]
        routes += [
            Route(V1_PATH, self.capture_v1, methods=["POST", "OPTIONS"]),
            Route("/array/{token}/config", self.remote_config, methods=config_methods),
            Route("/array/{token}/config.js", self.remote_config_js, methods=config_methods),
        ]
        return routes

    async def capture(self, request: Request) -> Response:
        return await self._capture(request)

    async def capture_ai(self, request: Request) -> Response:
        """PostHog's AI lane (`$ai_*` events from `capture_ai` / `captureAi`): as
        capture, with room for events of up to AI_EVENT_BYTES each."""
        self.server.counters["requests_ai_lane"] += 1
        return await self._capture(request, AI_EVENT_BYTES)

    async def _capture(self, request: Request, event_limit: int | None = None) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        try:
            body = await self._read_body(request, self.server.body_limit(event_limit))
            await self.server.accept(body, capture_request(request), event_limit)
        except CaptureError as exc:
            return self._refused(exc, cors)
        return json_response({"status": 1}, headers=cors)

    async def capture_v1(self, request: Request) -> Response:
        """PostHog's Capture v1: a result per event, by uuid (see capture/v1.py)."""
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        self.server.counters["requests_v1"] += 1
        try:
            body = await self._read_body(request, self.server.body_limit())
            v1 = V1Headers(
                authorization=request.headers.get("authorization", ""),
                sdk_info=request.headers.get("posthog-sdk-info", ""),
                request_timestamp=request.headers.get("posthog-request-timestamp", ""),
            )
            answer = await self.server.accept_v1(body, capture_request(request, v1))
        except CaptureError as exc:
            return self._refused(exc, cors)
        retrying = any(r["result"] == "retry" for r in answer["results"].values())
        return json_response(answer, headers={**cors, **RETRY_AFTER} if retrying else cors)

    def _refused(self, exc: CaptureError, cors: dict[str, str]) -> Response:
        self.server.counters[f"http_{exc.status}"] += 1
        return error_response(exc.status, exc.message, {**cors, **exc.headers}, exc.code)

    async def _read_body(self, request: Request, limit: int) -> bytes:
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

    async def recording(self, request: Request) -> Response:
        """Session recordings are accepted and counted, not stored (see README)."""
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        try:
            body = await self._read_body(request, self.server.body_limit())
        except CaptureError as exc:
            return error_response(exc.status, exc.message, cors, exc.code)
        self.server.recordings["requests"] += 1
        self.server.recordings["bytes"] += len(body)
        return json_response({"status": 1}, headers=cors)

    async def flags(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        return json_response(NO_FLAGS, headers=cors)

    async def remote_config(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        return json_response(REMOTE_CONFIG, headers=cors)

    async def remote_config_js(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        token = _json.encode(request.path_params["token"]).decode()
        config = _json.encode(REMOTE_CONFIG).decode()
        script = (
            "(function(){window._POSTHOG_REMOTE_CONFIG=window._POSTHOG_REMOTE_CONFIG||{};"
            f"window._POSTHOG_REMOTE_CONFIG[{token}]={{config:{config},siteApps:[]}};}})();"
        )
        return Response(script, headers=cors, media_type="application/javascript")
