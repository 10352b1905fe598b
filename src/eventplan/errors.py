"""One error vocabulary for the library, the CLI and the HTTP API."""

from __future__ import annotations


class EventplanError(Exception):
    """Base class: a user-facing failure with a message that says what was wrong."""

    status = 400
    code: str | None = None  # the API's error code; None: the one its status implies


class Forbidden(EventplanError):
    """The credentials are good, but not for this."""

    status = 403
    code = "permission_denied"


class PlanError(EventplanError):
    """The plan file cannot be used: it does not parse or it breaks a hard rule."""

    code = "plan_invalid"

    def __init__(self, message: str, diagnostics: list[str] | None = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics or []

    def __str__(self) -> str:
        if not self.diagnostics:
            return super().__str__()
        return "\n".join([super().__str__(), *self.diagnostics])
