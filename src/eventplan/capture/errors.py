"""Capture's answers other than 200, each with a message that says what was wrong."""

from __future__ import annotations

from eventplan.errors import EventplanError


class CaptureError(EventplanError):
    status = 400
    headers: dict[str, str] = {}  # noqa: RUF012 - overridden per instance where needed

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(CaptureError):
    status = 400
    code = "invalid_payload"  # PostHog's capture says so


class Unauthorized(CaptureError):
    status = 401
    code = "invalid_api_key"


class PayloadTooLarge(CaptureError):
    status = 413
    code = "payload_too_large"


class Unavailable(CaptureError):
    """Back-pressure: both PostHog clients retry a 503; posthog-js drops every 4xx."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}
