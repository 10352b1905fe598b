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
from eventplan.runtime import Server
from eventplan.web.errors import error_response, json_response

CAPTURE_PATHS = ("/e", "/i/v0/e", "/capture", "/batch", "/track", "/engage")
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
            (RECORDING_PATHS, self.recording),
            (FLAGS_PATHS, self.flags),
        ):
            for path in paths:
                routes += [Route(path, endpoint, methods=methods)]
                routes += [Route(path + "/", endpoint, methods=methods)]
        config_methods = ["GET", "OPTIONS"]
        routes += [
            Route("/array/{token}/config", self.remote_config, methods=config_methods),
            Route("/array/{token}/config.js", self.remote_config_js, methods=config_methods),
        ]
        return routes

    async def capture(self, request: Request) -> Response:
        cors = cors_headers(request)
        if request.method == "OPTIONS":
            return preflight(request, cors)
        try:
            body = await self._read_body(request)
            await self.server.accept(
                body,
                CaptureRequest(
                    content_type=request.headers.get("content-type", ""),
                    content_encoding=request.headers.get("content-encoding", ""),
                    query=dict(request.query_params),
                    peer=request.client.host if request.client else None,
                    forwarded_for=request.headers.get("x-forwarded-for"),
                ),
            )
        except CaptureError as exc:
            self.server.counters[f"http_{exc.status}"] += 1
            return error_response(exc.status, exc.message, {**cors, **exc.headers}, exc.code)
        return json_response({"status": 1}, headers=cors)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.server.settings.max_body_bytes
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
            body = await self._read_body(request)
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
