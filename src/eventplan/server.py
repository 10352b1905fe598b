"""The seed's server-side guardrails as a library, for Python servers using posthog-python.

    analytics = ServerAnalytics(Posthog(token, host=...), environment="production",
                                deployment_region="fra1", plan="plans/openchat.yaml",
                                strict="raise")
    with analytics.capture_on_exit("chat_message_stream", user_id, request=request) as props:
        props.update(chat_id=chat_id, model_id=model_id)
        ...  # stream; on return: status "completed", on exception "error",
             # on cancellation or a client disconnect "aborted"; duration_ms measured

Every capture carries the server super-properties (`app`, `environment`,
`deployment_region`), and with a request its `origin`, `ip_hash` (first 8
bytes of SHA-256 of the client IP, hex; `X-Forwarded-For` only through trusted
proxies) and, when a bot sent the request, `$eventplan_bot` and its name. No
distinct id, no capture (seed §1: skip when unauthenticated). In strict
mode each event is validated against the plan first: `"raise"` in development,
`"log"` in production.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from eventplan.capture.bots import bot_name
from eventplan.capture.enrich import TrustedProxies, ip_hash
from eventplan.capture.judge import Judge
from eventplan.errors import EventplanError
from eventplan.plan import load_plan
from eventplan.plan.model import Plan
from eventplan.plan.posthog import BOT, BOT_NAME
from eventplan.plan.validator import Verdict

log = logging.getLogger("eventplan.server")
Strict = Literal["raise", "log"] | None

# Exceptions that mean the client went away rather than that the server failed.
DISCONNECTS: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    BrokenPipeError,
    ConnectionResetError,
    GeneratorExit,
)
try:  # Starlette's, when it is installed
    from starlette.requests import ClientDisconnect

    DISCONNECTS = (*DISCONNECTS, ClientDisconnect)
except ImportError:  # pragma: no cover
    pass


class Client(Protocol):
    def capture(self, event: str, *, distinct_id: str, properties: dict[str, Any]) -> Any: ...


class PlanViolation(EventplanError):
    """Strict mode: the event breaks the plan, so it was not sent."""

    def __init__(self, event: str, verdict: Verdict) -> None:
        messages = "; ".join(v.message for v in verdict.violations if v.severity == "error")
        super().__init__(f"{event} breaks the plan ({verdict.verdict}): {messages}")
        self.verdict = verdict


class ServerAnalytics:
    def __init__(
        self,
        client: Client,
        *,
        app: str = "openchat-server",
        environment: str | None = None,
        deployment_region: str | None = None,
        plan: Plan | str | Path | None = None,
        strict: Strict = None,
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        self.client = client
        self.super_properties: dict[str, Any] = {"app": app}
        if environment is not None:
            self.super_properties["environment"] = environment
        if deployment_region is not None:
            self.super_properties["deployment_region"] = deployment_region
        loaded = load_plan(plan) if isinstance(plan, str | Path) else plan
        self.judge = Judge(loaded) if loaded is not None else None
        if strict is not None and self.judge is None:
            raise ValueError("strict mode needs the plan: pass plan=…")
        self.strict = strict
        self.proxies = TrustedProxies(trusted_proxies)

    def request_properties(self, request: Any) -> dict[str, Any]:
        """`origin` and `ip_hash` of a Starlette/FastAPI request (or anything alike), and
        `$eventplan_bot` / `$eventplan_bot_name` when a bot sent it (by its user agent:
        a server event carries none of its own)."""
        headers: Mapping[str, str] = getattr(request, "headers", {}) or {}
        client = getattr(request, "client", None)
        peer = getattr(client, "host", None) if client is not None else None
        properties: dict[str, Any] = {}
        address = self.proxies.client_ip(peer, headers.get("x-forwarded-for"))
        if address:
            properties["ip_hash"] = ip_hash(address)
        origin = headers.get("origin") or headers.get("host")
        if origin:
            # The Origin header is a URL; Host is already a host.
            host = urlsplit(origin).hostname if "//" in origin else origin
            properties["origin"] = host or origin
        bot = bot_name(headers.get("user-agent") or "")
        if bot is not None:
            properties.update({BOT: True, BOT_NAME: bot})
        return properties

    def capture(
        self,
        event: str,
        distinct_id: str | None,
        properties: Mapping[str, Any] | None = None,
        request: Any = None,
    ) -> bool:
        """Send one event; returns whether it was sent."""
        if not distinct_id:
            return False  # unauthenticated: the seed skips these
        merged = {**self.super_properties}
        if request is not None:
            merged.update(self.request_properties(request))
        merged.update(properties or {})
        if self.strict is not None and self.judge is not None:
            verdict = self.judge.verdict(event, merged)
            if not verdict.ok:
                if self.strict == "raise":
                    raise PlanViolation(event, verdict)
                log.warning("%s", PlanViolation(event, verdict))
        self.client.capture(event, distinct_id=distinct_id, properties=merged)
        return True

    @contextmanager
    def capture_on_exit(
        self,
        event: str,
        distinct_id: str | None,
        properties: Mapping[str, Any] | None = None,
        request: Any = None,
    ) -> Iterator[dict[str, Any]]:
        """Capture `event` when the block ends, however it ends, with status and duration."""
        collected = dict(properties or {})
        started = time.perf_counter()
        status = "completed"
        try:
            yield collected
        except DISCONNECTS:
            status = "aborted"
            raise
        except BaseException:
            status = "error"
            raise
        finally:
            collected.setdefault("status", status)
            collected["duration_ms"] = int((time.perf_counter() - started) * 1000)
            self.capture(event, distinct_id, collected, request)

    @asynccontextmanager
    async def acapture_on_exit(
        self,
        event: str,
        distinct_id: str | None,
        properties: Mapping[str, Any] | None = None,
        request: Any = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """`capture_on_exit` for async handlers; a cancelled task counts as aborted."""
        with self.capture_on_exit(event, distinct_id, properties, request) as collected:
            yield collected
