"""The one error shape of every JSON answer: PostHog's (`type`, `code`, `detail`),
with the status, and a plan's lint findings as a list when there are any."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from eventplan.errors import EventplanError, PlanError

_json = msgspec.json.Encoder()
CODES = {
    400: "invalid_payload",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    413: "payload_too_large",
    503: "unavailable",
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
    kind = "authentication_error" if status == 401 else "validation_error"
    if status >= 500:
        kind = "server_error"
    body: dict[str, Any] = {
        "type": kind,
        "code": code or CODES.get(status, "error"),
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
    return exc.code or CODES.get(exc.status, "error"), str(message), diagnostics


def eventplan_error_response(exc: EventplanError) -> Response:
    """An EventplanError in the one error shape; a 503 says when to retry."""
    retry = {"Retry-After": "5"} if exc.status == 503 else None
    code, message, diagnostics = error_parts(exc)
    return error_response(exc.status, message, retry, code, diagnostics)


def unauthorized() -> Response:
    return error_response(
        401, "send `Authorization: Bearer <personal API key>`; project tokens cannot read"
    )
