"""OpenChat users as the seed describes them, as a deterministic stream of events.

Guests arrive on the landing page from a mix of referrers, some click a CTA, enter
the dashboard (identifying there), save an OpenRouter key, then chat: create
chats, send messages, stream answers with per-model latency and error rates,
attach files, hit rate limits, lose and regain sync, and now and then see storage
fall back to memory. Incidents bend one of those behaviours for a few hours so
that the plan's alerts have something to catch; a small share of events break
the plan the way real apps do.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from eventplan.plan.model import Plan
from eventplan.simulate.samples import break_event

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
MINUTE_US = 60_000_000

REFERRERS = [  # (referrer URL, utm_source, weight)
    ("direct", None, 30),
    ("https://www.google.com/", None, 25),
    ("https://news.ycombinator.com/item?id=4242", "hackernews", 12),
    ("https://twitter.com/openchat/status/1", "twitter", 10),
    ("https://www.reddit.com/r/LocalLLaMA/", "reddit", 8),
    ("https://github.com/openchat/openchat", None, 8),
    ("https://newsletter.example.com/issue/12", "newsletter", 7),
]
MODELS = {  # model id: (share of messages, median stream ms, error rate)
    "openai/gpt-4o-mini": (0.35, 2200, 0.008),
    "anthropic/claude-3.5-sonnet": (0.25, 4200, 0.01),
    "google/gemini-2.0-flash": (0.2, 1800, 0.012),
    "meta-llama/llama-3.1-70b": (0.12, 3500, 0.015),
    "mistralai/mistral-large": (0.08, 3900, 0.013),
}
MIMES = [
    ("image/png", 40),
    ("image/jpeg", 30),
    ("application/pdf", 20),
    ("text/plain", 8),
    ("video/mp4", 2),
]
ATTACHMENT_LIMIT = 10 * 1024 * 1024
VERSIONS = ["1.4.0", "1.4.1", "1.5.0"]
INCIDENT_KINDS = ("db-outage", "model-errors", "rate-limit-storm", "models-fetch-down")


@dataclass(frozen=True)
class Incident:
    """`KIND@day=D,hours=H[,at=HOUR][,model=M]`: starts at hour `at` (14) of day D."""

    kind: str
    day: int
    hours: int = 3
    at: int = 14
    model: str = "openai/gpt-4o-mini"

    @classmethod
    def parse(cls, text: str) -> Incident:
        kind, _, rest = text.partition("@")
        if kind not in INCIDENT_KINDS:
            raise ValueError(
                f"unknown incident `{kind}`; expected one of {', '.join(INCIDENT_KINDS)}"
            )
        values: dict[str, Any] = {}
        for part in filter(None, rest.split(",")):
            key, _, value = part.partition("=")
            if key in ("day", "hours", "at"):
                if not value.isdigit():
                    raise ValueError(f"incident {text!r}: {key} must be a whole number")
                values[key] = int(value)
            elif key == "model":
                if value not in MODELS:
                    raise ValueError(f"incident {text!r}: unknown model {value!r}")
                values[key] = value
            else:
                raise ValueError(f"incident {text!r}: unknown setting `{key}`")
        if "day" not in values:
            raise ValueError(f"incident {text!r} needs day=N")
        if values["day"] < 1:
            raise ValueError(f"incident {text!r}: days count from 1")
        if values.get("at", 0) > 23:
            raise ValueError(f"incident {text!r}: at is an hour of the day, 0-23")
        if kind == "model-errors" and "hours" not in values:
            values["hours"] = 24 - values.get("at", 0)
            values.setdefault("at", 0)
        return cls(kind=kind, **values)

    def active(self, start_us: int, moment: int) -> bool:
        begin = start_us + (self.day - 1) * DAY_US + self.at * HOUR_US
        return begin <= moment < begin + self.hours * HOUR_US


BOT_AGENTS = {
    "crawler": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "uptime": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Checkly/1.0 (https://www.checklyhq.com)",
}


@dataclass
class Simulation:
    plan: Plan
    users: int = 2000
    days: int = 30
    seed: int = 0
    broken_share: float = 0.01
    incidents: list[Incident] = field(default_factory=list)
    end: datetime | None = None
    broken: dict[str, str] = field(default_factory=dict)  # uuid → how it was broken

    def __post_init__(self) -> None:
        for incident in self.incidents:
            if incident.day > self.days:
                raise ValueError(
                    f"incident {incident.kind} is on day {incident.day}, past the "
                    f"{self.days} simulated day(s)"
                )

    @property
    def start_us(self) -> int:
        end = self.end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        return int((end - timedelta(days=self.days)).timestamp() * 1_000_000)

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event of the simulation, in time order."""
        start = self.start_us
        stream: list[tuple[int, int, dict[str, Any]]] = []
        for index in range(self.users):
            user = _User(self, index, random.Random(f"{self.seed}:{index}"), start)
            for order, event in enumerate(user.journey()):
                stream.append((event["_ts"], index * 1_000_000 + order, event))
        stream.extend(self._polling_failures(start))
        stream.extend(self._bots(start))
        stream.sort(key=lambda item: (item[0], item[1]))
        rng = random.Random(f"{self.seed}:broken")
        for timestamp, _, event in stream:
            del event["_ts"]
            event["timestamp"] = _iso(timestamp)
            if rng.random() < self.broken_share and not event["event"].startswith("$identify"):
                self.broken[event["uuid"]] = break_event(self.plan, event, rng)
            yield event

    def _polling_failures(self, start: int) -> list[tuple[int, int, dict[str, Any]]]:
        """While the catalogue is down, every open tab's periodic refetch fails too."""
        extra: list[tuple[int, int, dict[str, Any]]] = []
        for number, incident in enumerate(self.incidents):
            if incident.kind != "models-fetch-down":
                continue
            rng = random.Random(f"{self.seed}:poll:{number}")
            begin = start + (incident.day - 1) * DAY_US + incident.at * HOUR_US
            for slot in range(incident.hours * 12):
                index = rng.randrange(self.users)
                user = _User(self, index, random.Random(f"{self.seed}:{index}"), start)
                user.identified, user.distinct_id, user.has_key = True, user.member, True
                user.rng = rng  # fresh uuids: the user's own stream already used its sequence
                moment = begin + slot * 5 * MINUTE_US + rng.randrange(5 * MINUTE_US)
                event = user.web(
                    "openrouter.models_fetch_failed",
                    moment,
                    status=503,
                    error_message="Failed to fetch models: 503 Service Unavailable",
                    provider_host="openrouter.ai",
                    has_api_key=True,
                )
                extra.append((moment, -1 - len(extra), event))
        return extra

    def _bots(self, start: int) -> list[tuple[int, int, dict[str, Any]]]:
        """Crawlers and monitors on the landing page, as posthog-js sends them: a
        search crawler a few times a day (with `opt_out_useragent_filter`, posthog-js
        marks it), an uptime check in a real Chrome every hour (posthog-js does not
        know it). Capture labels both; dashboards leave them out by default."""
        extra: list[tuple[int, int, dict[str, Any]]] = []
        rng = random.Random(f"{self.seed}:bots")
        visits = [(BOT_AGENTS["crawler"], hour) for hour in (3, 11, 19)]
        visits += [(BOT_AGENTS["uptime"], hour) for hour in range(24)]
        for day in range(self.days):
            for number, (agent, hour) in enumerate(visits):
                moment = start + day * DAY_US + hour * HOUR_US + rng.randrange(HOUR_US)
                bot = _User(self, number, rng, start)
                bot.distinct_id = f"bot-{number}-{day}"
                props = {
                    "referrer_url": "direct",
                    "referrer_domain": "direct",
                    "entry_path": "/",
                    "$current_url": "https://openchat.example/",
                    "$raw_user_agent": agent,
                    **({"$browser_type": "bot"} if agent == BOT_AGENTS["crawler"] else {}),
                }
                for offset, name in enumerate(("$pageview", "marketing.visit_landing")):
                    event = bot.web(name, moment + offset * 1_000_000, **props)
                    if name == "marketing.visit_landing":
                        event["properties"]["session_is_guest"] = True
                    extra.append((event["_ts"], -10_000_000 - len(extra), event))
        return extra


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, UTC).isoformat().replace("+00:00", "Z")


def _weighted(rng: random.Random, options: list[tuple[Any, int]]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


class _User:
    """One OpenChat user's whole history."""

    def __init__(self, sim: Simulation, index: int, rng: random.Random, start: int) -> None:
        self.sim = sim
        self.rng = rng
        self.index = index
        self.anon = f"anon-{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        self.member = f"user-{index:06d}"
        self.workspace = f"ws-{index:06d}"
        self.distinct_id = self.anon
        self.identified = False
        self.has_key = False
        self.model = _weighted(rng, [(m, int(v[0] * 100)) for m, v in MODELS.items()])
        self.theme = rng.choice(["light", "dark", "dark"])
        self.brand = rng.choice(["violet", "emerald", "amber"])
        self.version = rng.choice(VERSIONS)
        self.ip_hash = (
            hashlib.sha256(f"10.{index % 250}.{index // 250}.7".encode()).digest()[:8].hex()
        )
        self.referrer, self.utm = _weighted(rng, [((r, u), w) for r, u, w in REFERRERS])
        self.arrival = start + rng.randrange(sim.days * DAY_US - 2 * HOUR_US)
        self.end = start + sim.days * DAY_US
        self.chat_count = 0
        self.tab = f"tab-{rng.randrange(1_000_000):06d}"

    # -- event builders ------------------------------------------------------------

    def _event(self, name: str, moment: int, props: dict[str, Any]) -> dict[str, Any]:
        return {
            "event": name,
            "distinct_id": self.distinct_id,
            "uuid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "properties": props,
            "_ts": moment,
        }

    def web(self, name: str, moment: int, **props: Any) -> dict[str, Any]:
        common = {
            "app": "openchat-web",
            "app_version": self.version,
            "auth_state": "guest",
            "workspace_id": self.workspace,
            "has_openrouter_key": self.has_key,
            "model_id": self.model,
            "ui_theme": self.theme,
            "brand_theme": self.brand,
            "deployment": "prod",
            "electric_enabled": True,
            "$lib": "web",
            "$current_url": "https://openchat.example/dashboard",
        }
        if self.identified:
            common["$groups"] = {"workspace": self.workspace}
        return self._event(name, moment, {**common, **props})

    def server(self, name: str, moment: int, **props: Any) -> dict[str, Any]:
        return self._event(name, moment, self.server_properties(props))

    def server_properties(self, props: dict[str, Any]) -> dict[str, Any]:
        common = {
            "app": "openchat-server",
            "app_version": self.version,
            "environment": "production",
            "deployment_region": "fra1",
            "origin": "openchat.example",
            "ip_hash": self.ip_hash,
            "$lib": "posthog-node",
            "$groups": {"workspace": self.workspace},
        }
        return {**common, **props}

    def incident(self, kind: str, moment: int) -> Incident | None:
        for incident in self.sim.incidents:
            if incident.kind == kind and incident.active(self.sim.start_us, moment):
                return incident
        return None

    # -- the journey ---------------------------------------------------------------

    def journey(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        t = self.arrival
        query = f"utm_source={self.utm}&utm_medium=referral" if self.utm else ""
        url = "https://openchat.example/" + (f"?{query}" if query else "")
        landing = {
            "referrer_url": self.referrer,
            "referrer_domain": "direct"
            if self.referrer == "direct"
            else self.referrer.split("/")[2],
            "entry_path": "/",
            "$current_url": url,
            "$referrer": "$direct" if self.referrer == "direct" else self.referrer,
        }
        yield self.web("$pageview", t, **landing, **({"entry_query": query} if query else {}))
        t += rng.randrange(200_000, 2_000_000)
        yield self.web(
            "marketing.visit_landing",
            t,
            session_is_guest=True,
            **{k: v for k, v in landing.items() if not k.startswith("$")},
            **({"utm_source": self.utm} if self.utm else {}),
        )
        if rng.random() > 0.45:
            return
        t += rng.randrange(3, 90) * 1_000_000
        cta = "hero_try_openchat" if rng.random() < 0.8 else "hero_request_demo"
        yield self.web(
            "marketing.cta_clicked",
            t,
            cta_id=cta,
            section=rng.choice(["hero", "hero", "header"]),
            cta_copy="Try OpenChat" if cta == "hero_try_openchat" else "Request a demo",
            screen_width_bucket=_weighted(rng, [("sm", 2), ("md", 2), ("lg", 4), ("xl", 3)]),
        )
        if cta != "hero_try_openchat" or rng.random() > 0.8:
            return
        t += rng.randrange(2, 30) * 1_000_000
        # The guest id gets a stable workspace identity on entering the app.
        self.identified = True
        self.distinct_id = self.member  # $identify is sent as the new id, naming the old one
        yield self.web("$identify", t, **{"$anon_distinct_id": self.anon})
        yield self.web(
            "$groupidentify",
            t + 1,
            **{
                "$group_type": "workspace",
                "$group_key": self.workspace,
                "$group_set": {"name": self.workspace},
            },
        )
        yield from self.session(t + 1_000_000, first=True)
        # Returning visits: most users come back a few times, some many.
        visits = min(int(rng.expovariate(1 / 10)), 40)
        for _ in range(visits):
            t = t + int(rng.expovariate(1 / (1.5 * DAY_US))) + HOUR_US
            if t >= self.end - HOUR_US:
                break
            yield from self.session(t, first=False)

    def session(self, t: int, first: bool) -> Iterator[dict[str, Any]]:
        rng = self.rng
        yield self.web(
            "sync.connection_state", t, state="connected", retry_count=0, tab_id=self.tab
        )
        if self.incident("db-outage", t):  # the sidebar's chat list falls back too
            yield self.server(
                "workspace.fallback_storage_used",
                t + 100_000,
                operation="list",
                fallback_size=rng.randrange(1, 50),
            )
        yield self.web(
            "dashboard.entered",
            t + 300_000,
            chat_total=self.chat_count,
            has_api_key=self.has_key,
            entry_path="/dashboard",
            brand_theme=self.brand,
        )
        t = yield from self.models_fetch(t + 2_000_000)
        after_key = yield from self.key_prompt(t, first)
        if after_key is None:
            return
        t = after_key
        if rng.random() < 0.02:
            yield self.web(
                "openrouter.key_removed", t + 1, source="settings", had_models_cached=True
            )
            self.has_key = False
            return
        for _ in range(1 + int(rng.expovariate(1 / 1.5))):
            t += rng.randrange(5, 60) * 1_000_000
            yield from self.chat(t)
            t += 10 * MINUTE_US
        if rng.random() < 0.08:
            yield self.web(
                "sync.connection_state", t, state="retry", retry_count=1, tab_id=self.tab
            )
            state = "failed" if rng.random() < 0.25 else "connected"
            yield self.web(
                "sync.connection_state", t + 5_000_000, state=state, retry_count=2, tab_id=self.tab
            )

    def models_fetch(self, t: int) -> Generator[dict[str, Any], None, int]:
        """OpenRouter's model list, failing now and then (three times in an outage)."""
        if self.incident("models-fetch-down", t) or self.rng.random() < 0.03:
            for _ in range(3 if self.incident("models-fetch-down", t) else 1):
                yield self.web(
                    "openrouter.models_fetch_failed",
                    t,
                    status=self.rng.choice([502, 503, 0]),
                    error_message="Failed to fetch models: upstream unavailable",
                    provider_host="openrouter.ai",
                    has_api_key=self.has_key,
                )
                t += 20_000_000
        return t

    def key_prompt(self, t: int, first: bool) -> Generator[dict[str, Any], None, int | None]:
        """Without a key, the prompt; when it goes on, the time; None when the user
        leaves without saving one."""
        if self.has_key:
            return t
        rng = self.rng
        yield self.web("openrouter.key_prompt_shown", t, reason="missing", has_api_key=False)
        t += rng.randrange(10, 120) * 1_000_000
        if rng.random() >= (0.55 if first else 0.3):
            return None
        self.has_key = True
        yield self.web(
            "openrouter.key_saved",
            t,
            source=rng.choice(["modal", "modal", "settings"]),
            masked_tail=f"sk-or-v1-{rng.getrandbits(64):016x}",
            scope="user",
        )
        return t

    def chat(self, t: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        chat_id = f"chat-{self.index:06d}-{self.chat_count:04d}"
        self.chat_count += 1
        outage = self.incident("db-outage", t) is not None
        backend = "memory_fallback" if outage or rng.random() < 0.001 else "postgres"
        if backend == "memory_fallback":
            yield self.server(
                "workspace.fallback_storage_used",
                t,
                operation="create",
                chat_id=chat_id,
                fallback_size=rng.randrange(1, 50),
            )
        created = {
            "chat_id": chat_id,
            "source": "sidebar_button",
            "storage_backend": backend,
            "title_length": rng.randrange(0, 60),
        }
        yield self.web("chat.created", t, **created)
        yield self.server("chat.created", t + 50_000, **created)
        for _ in range(1 + int(rng.expovariate(1 / 4))):
            t += rng.randrange(10, 240) * 1_000_000
            yield from self.message(t, chat_id)

    def message(self, t: int, chat_id: str) -> Iterator[dict[str, Any]]:
        rng = self.rng
        characters = int(rng.lognormvariate(4.5, 1.0)) + 1
        attachments = yield from self.attachment(t - 2_000_000, chat_id)
        yield self.web(
            "chat_message_submitted",
            t,
            chat_id=chat_id,
            model_id=self.model,
            characters=characters,
            attachment_count=attachments,
            has_api_key=self.has_key,
        )
        limited = self.rate_limited(t, chat_id)
        if limited is not None:
            yield limited
            return
        outage = self.incident("db-outage", t) is not None
        if outage or rng.random() < 0.0005:
            yield self.server(
                "workspace.fallback_storage_used",
                t + 40_000,
                operation="send",
                chat_id=chat_id,
                fallback_size=rng.randrange(1, 50),
            )
        stream = self.stream(t, chat_id)
        yield stream
        yield self.generation(stream, characters)

    def generation(self, stream: dict[str, Any], prompt_characters: int) -> dict[str, Any]:
        """The LLM call behind a stream, as posthog-node's `captureAi` reports it. Drawn
        from the stream itself (no random numbers), so every other event stays as it was."""
        props = stream["properties"]
        return {
            **stream,
            "event": "$ai_generation",
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, stream["uuid"])),
            "properties": self.server_properties(
                {
                    "$ai_model": props["model_id"],
                    "$ai_provider": "openrouter",
                    "$ai_input_tokens": 180 + prompt_characters // 4,
                    "$ai_output_tokens": props["characters"] // 4,
                    "$ai_latency": props["duration_ms"] / 1000,
                    "$ai_http_status": props["openrouter_status"],
                    "$ai_trace_id": props["chat_id"],
                }
            ),
        }

    def rate_limited(self, t: int, chat_id: str) -> dict[str, Any] | None:
        """The server refuses a message now and then, often during a rate-limit storm."""
        storm = self.incident("rate-limit-storm", t) is not None
        if not ((storm and self.rng.random() < 0.6) or self.rng.random() < 0.004):
            return None
        return self.server(
            "chat.rate_limited",
            t + 30_000,
            chat_id=chat_id,
            limit=20,
            window_ms=60_000,
            client_ip_hash_trunc=self.ip_hash,
        )

    def attachment(self, t: int, chat_id: str) -> Generator[dict[str, Any], None, int]:
        """One message in eight comes with a file; the attachments it ends up with."""
        rng = self.rng
        if rng.random() >= 0.12:
            return 0
        mime = _weighted(rng, MIMES)
        size = int(rng.lognormvariate(13.5, 1.4))
        result = "rejected" if size > ATTACHMENT_LIMIT or mime == "video/mp4" else "accepted"
        yield self.web(
            "chat.attachment_event",
            t,
            chat_id=chat_id,
            result=result,
            file_mime=mime,
            file_size_bytes=size,
            limit_bytes=ATTACHMENT_LIMIT,
        )
        return 1 if result == "accepted" else 0

    def stream(self, t: int, chat_id: str) -> dict[str, Any]:
        """The server's answer, streamed from OpenRouter: how it ended and how long."""
        rng = self.rng
        _, median_ms, error_rate = MODELS[self.model]
        bad_model = self.incident("model-errors", t)
        if bad_model is not None and bad_model.model == self.model:
            error_rate = 0.35
        roll = rng.random()
        status = (
            "error" if roll < error_rate else "aborted" if roll < error_rate + 0.02 else "completed"
        )
        duration = int(rng.lognormvariate(0, 0.45) * median_ms)
        latency = int(duration * rng.uniform(0.08, 0.25))
        return self.server(
            "chat_message_stream",
            t + duration * 1000,
            chat_id=chat_id,
            model_id=self.model,
            status=status,
            duration_ms=duration,
            characters=0 if status == "error" else int(rng.lognormvariate(6.5, 0.8)),
            openrouter_status=502 if status == "error" else 200,
            openrouter_latency_ms=latency,
            rate_limit_bucket="default",
        )
