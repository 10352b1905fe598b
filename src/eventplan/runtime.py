"""The running system: projects, the write-ahead log, the store, the writer, the
forwarder and the alert monitor, started and stopped together.

This is what `eventplan serve` runs; `eventplan.web` puts HTTP in front of it (no
HTTP here). Capture's acknowledgement is `accept`: the events are normalized,
written to the log and acknowledged; the writer judges them by their project's plan
and stores them behind it. Capture v1 (`accept_v1`) answers with each event's
verdict, so it judges them first and hands the writer the judged events. While a
live page watches a project, its events are judged for it too, beside the
acknowledgement, so the page shows them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from eventplan.capture.enrich import TrustedProxies
from eventplan.capture.errors import Unavailable
from eventplan.capture.events import now_us
from eventplan.capture.ingest import (
    CaptureRequest,
    Envelope,
    Ingested,
    Ingestor,
    TokenBudget,
    verdict_counts,
)
from eventplan.capture.processes import CaptureProcesses
from eventplan.capture.v1 import results
from eventplan.config import Settings
from eventplan.errors import EventplanError
from eventplan.keys import EVERY_PROJECT, Access, ApiKeys
from eventplan.plan import Plan, load_plan
from eventplan.project import Project, UnknownProject
from eventplan.query.monitor import AlertMonitor
from eventplan.store import Store, local_base, open_store
from eventplan.store.forward import Forwarder, Target, pause
from eventplan.store.records import LoggedEvent, StoredEvent
from eventplan.store.wal import LogFull, WriteAheadLog
from eventplan.store.writer import UNSTORED, BackgroundWriter
from eventplan.web.live import LiveFeed

log = logging.getLogger("eventplan.runtime")

# How long shutdown waits for the alert check or a forward in flight (then cancels it).
BACKGROUND_STOP_SECONDS = 3.0
# How long shutdown lets the writer store what is acknowledged; the rest stays in the
# log and is replayed on the next start. Together these keep SIGTERM within 10 s.
STOP_FLUSH_SECONDS = 4.0
# Rows a SQL answer holds at most; `hasMore` says when there were more.
MAX_API_ROWS = 100_000


class Server:
    """Every project of one `serve`, over one store and one log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        plans = [load_plan(p.plan) for p in settings.projects]
        self.store = open_store(settings.db, plans, memory_limit=settings.memory_limit)
        self.projects = projects_of(settings, plans, self.store)
        self.ingestor = Ingestor(
            {token: p.name for p in self.projects for token in p.tokens},
            {p.name: p.pipeline for p in self.projects},
        )
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.budget = TokenBudget(settings.token_rate)
        # Started while running (`running`); until then requests are read in-process.
        self.capture: CaptureProcesses | None = None
        self.wal = WriteAheadLog(settings.wal_dir, reserve_bytes=settings.log_reserve)
        forwarded = [
            (project, config)
            for project, config in zip(self.projects, settings.projects, strict=True)
            if config.forward
        ]
        self.writer = BackgroundWriter(
            self.store,
            self.wal,
            self.judge,
            quarantine=frozenset(p.name for p in self.projects if p.enforcement == "quarantine"),
            forward={p.name: p.forward_rules for p, _ in forwarded},
        )
        self.forwarder = Forwarder(
            self.store,
            [Target(p.name, str(c.forward), str(c.forward_token)) for p, c in forwarded],
        )
        self.keys = ApiKeys(
            settings.api_keys,
            settings.api_key_hashes,
            [
                (project.name, config.api_keys)
                for project, config in zip(self.projects, settings.projects, strict=True)
            ],
            lambda make: self.store.meta_or_create("admin_key_sha256", make),
        )
        self.monitor = AlertMonitor(
            self.store, {p.name: p.plan for p in self.projects}, settings.webhook
        )
        self.live = LiveFeed()
        self._loop: asyncio.AbstractEventLoop | None = None  # the live feed's, while running
        # Decodes the records a capture process judged, for the live feed.
        self._live_reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-reader")
        self._named = {p.name: p for p in self.projects}
        # Capture (and the writer's thread, for an older log) counts verdicts: every key
        # exists before either starts.
        self.counters = Counter({f"events_{v}": 0 for v in ("valid", "invalid", "unplanned")})
        self.recordings: Counter[str] = Counter()
        self.started = False

    @property
    def first_run_key(self) -> str | None:
        return self.keys.first_run_key

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
        self._live_reader.shutdown(wait=True, cancel_futures=True)
        self.wal.close()
        try:
            self.store.close()
        except Exception:  # a failing store may not close cleanly; the log holds the rest
            log.exception("closing the store failed")
        self.started = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Started, with the alert checks and the forwarder in the background, and a
        note that says where the server is; stopped in order on the way out."""
        self._loop = asyncio.get_running_loop()
        self.start()
        # Where `eventplan sql` finds the server holding the store. Removed here, not
        # after uvicorn returns: on SIGTERM uvicorn shuts down, then re-raises the
        # signal, and the process ends before any code after it.
        note = serve_info_path(self.settings.db)
        note.parent.mkdir(parents=True, exist_ok=True)
        address = f"http://{self.settings.host}:{self.settings.port}"
        note.write_bytes(msgspec.json.encode({"url": address, "pid": os.getpid()}))
        if self.settings.capture_processes > 0:
            plans = {p.name: (p.plan, p.salt) for p in self.projects}
            self.capture = CaptureProcesses(
                (self.ingestor.projects, plans), self.settings.capture_processes
            )
            await self.capture.start()
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
            await _finish(background)
            if self.capture is not None:
                await self.capture.stop()
                self.capture = None
            try:
                self.stop()
            finally:
                note.unlink(missing_ok=True)

    async def _check_alerts_forever(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                changes = await asyncio.to_thread(self.monitor.check)
                await self.monitor.notify(changes)
            except EventplanError as exc:
                log.error("alert check failed: %s", exc)
            except Exception:  # the next check may well work: never let the loop die
                log.exception("alert check failed unexpectedly")
            await pause(stopping, self.settings.alert_interval)

    # -- capture -------------------------------------------------------------------

    async def accept(
        self, body: bytes, request: CaptureRequest, event_limit: int | None = None
    ) -> int:
        """Log a capture request's events and acknowledge: the count of events taken.
        A CaptureError says why nothing was taken."""
        ingested = await self._read(body, request, event_limit)
        await self._log(ingested)
        return ingested.count

    async def accept_v1(self, body: bytes, request: CaptureRequest) -> dict[str, Any]:
        """Capture v1: log what can be read, and answer each event by its uuid, with the
        verdict it is stored with. Events the log could not take are `retry`; a request
        that cannot be read at all is a CaptureError."""
        ingested = await self._read(body, request)
        try:
            await self._log(ingested)
        except Unavailable as exc:
            return results(ingested.sent_uuids, ingested.dropped, None, retry_reason=exc.message)
        return results(ingested.sent_uuids, ingested.dropped, ingested.stored_events())

    async def _read(
        self, body: bytes, request: CaptureRequest, event_limit: int | None = None
    ) -> Ingested:
        """The request read into its log record, in a capture process when there is one."""
        if self.writer.pending_events > self.settings.max_pending_events:
            raise Unavailable("the server is catching up on writes; retry shortly", 2)
        envelope = Envelope.of(request, self.proxies, now_us())
        limit = self.body_limit(event_limit)
        if self.capture is not None and not self.capture.broken:
            ingested = await self.capture.ingest(
                body, request, envelope, limit=limit, event_limit=event_limit
            )
        else:
            ingested = self.ingestor.ingest(
                body, request, envelope, limit=limit, event_limit=event_limit
            )
        self.budget.take(ingested.project, ingested.count)
        return ingested

    def body_limit(self, event_limit: int | None = None) -> int:
        """The largest request body, decompressed: the setting, or room for two of the
        largest events an endpoint takes when that is more."""
        return max(self.settings.max_body_bytes, 2 * (event_limit or 0))

    async def _log(self, ingested: Ingested) -> None:
        """Make `ingested` durable in the log, then hand it to the writer and the live
        feed; Unavailable when the log cannot take it."""
        if ingested.count:
            await self._append(ingested)
        self.counters["requests_ok"] += 1
        self.counters["events_accepted"] += ingested.count
        self._count(ingested.verdicts)

    async def _append(self, ingested: Ingested) -> None:
        try:
            seq = await self.wal.append(ingested.record)
        except LogFull as exc:
            raise Unavailable(
                f"the server's disk is nearly full ({exc.strerror}); retry", 5
            ) from exc
        except OSError as exc:
            raise Unavailable(
                f"the server could not write the events to disk ({exc.strerror or exc}); retry", 5
            ) from exc
        self.writer.submit(seq, ingested.count)
        if not self.live.watching(ingested.project):
            return
        if ingested.events is not None:
            self.live.publish(ingested.events)
        else:  # decoded beside the loop, not awaited: the answer goes now
            asyncio.get_running_loop().run_in_executor(self._live_reader, self._show_live, ingested)

    def judge(self, events: list[LoggedEvent]) -> list[StoredEvent]:
        """Logged events judged by their projects' plans, and their verdicts counted: the
        writer's thread asks for a log written before capture judged its records. An
        event of a project no longer configured is refused, and the writer sets it aside."""
        judged = self._judged(events)
        self._count(verdict_counts(judged))
        return judged

    def _judged(self, events: list[LoggedEvent]) -> list[StoredEvent]:
        judged: list[StoredEvent] = []
        start = 0
        for end in range(1, len(events) + 1):  # each run of one project's events at once
            if end == len(events) or events[end].project != events[start].project:
                project = self._named.get(events[start].project)
                if project is None:
                    raise UnknownProject(f"no project {events[start].project!r} in this server")
                judged += project.judge(events[start:end])
                start = end
        return judged

    def _count(self, verdicts: dict[str, int]) -> None:
        for verdict, count in verdicts.items():
            self.counters[f"events_{verdict}"] += count

    def _show_live(self, ingested: Ingested) -> None:
        """A request's judged events for the live feed, decoded off the event loop."""
        judged = ingested.stored_events()
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed while stopping
                self._loop.call_soon_threadsafe(self.live.publish, judged)

    # -- asking ---------------------------------------------------------------------

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

    def sql_answer(self, query: str) -> dict[str, Any]:
        """Up to MAX_API_ROWS rows of a read-only statement, one more read to know
        whether there were more."""
        columns, rows = self.store.sql(
            query, max_rows=MAX_API_ROWS + 1, timeout=self.settings.query_timeout or None
        )
        return {
            "columns": columns,
            "results": rows[:MAX_API_ROWS],
            "hasMore": len(rows) > MAX_API_ROWS,
        }

    def health(self) -> dict[str, Any]:
        """`ok`, or `degraded` with the reasons; the log's and the store's positions."""
        stats = self.writer.stats
        forwarding = self.forwarder.status() if self.forwarder.targets else None
        if forwarding is not None:  # what the plans forwarded and held back, per event
            forwarding["decisions"] = {
                name: rules.decisions() for name, rules in self.writer.forward.items()
            }
        free, damaged = self.wal.free_bytes(), self.wal.damaged_parts()  # each read once
        reasons = [
            reason
            for reason, present in (
                ("log_not_writable", self.wal.last_error is not None),
                ("disk_low", self.wal.below_reserve(free)),
                ("store_failing", stats.failing),
                ("events_set_aside", stats.unstored > 0),
                ("log_damaged", damaged > 0),
                ("forward_failing", forwarding is not None and not forwarding["healthy"]),
            )
            if present
        ]
        return {
            "status": "degraded" if reasons else "ok",
            "reasons": reasons,
            "forward": forwarding,
            "projects": [p.name for p in self.projects],
            "wal_seq": self.wal.last_seq,
            "stored_seq": stats.stored_seq,
            "pending_events": self.writer.pending_events,
            # Acknowledged, not yet judged and stored: how many, and for how long.
            "loader_lag": {
                "events": self.writer.pending_events,
                "seconds": round(self.writer.lag_seconds(), 3),
            },
            "inserted": stats.inserted,
            "duplicates_skipped": stats.duplicates,
            "unstored": stats.unstored,
            "log": {
                "free_bytes": free,
                "reserve_bytes": self.wal.reserve_bytes,
                "error": self.wal.last_error,
                "damaged_parts": damaged,
                "trimmed_bytes": self.wal.recovery.trimmed_bytes,
            },
            "store_error": stats.last_error,
            "store_reopened": stats.reopened,
            "counters": dict(self.counters),
            "recordings": dict(self.recordings),
        }


def projects_of(settings: Settings, plans: list[Plan], store: Store) -> list[Project]:
    """The configured projects over the store, each ready to judge its events."""
    projects = [
        Project(
            config.name or plan.name,
            plan,
            store,
            salt_setting=settings.hash_salt,
            tokens=config.tokens,
            enforcement=config.enforcement,
        )
        for config, plan in zip(settings.projects, plans, strict=True)
    ]
    for project in projects:
        project.prepare_to_judge()
    return projects


async def _finish(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        try:
            await asyncio.wait_for(task, timeout=BACKGROUND_STOP_SECONDS)
        except TimeoutError:
            log.warning("a background task did not stop in time; cancelled")
        except Exception:  # whatever ended it, the store is still flushed afterwards
            log.exception("a background task had failed")


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
