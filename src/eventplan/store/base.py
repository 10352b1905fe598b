"""The store interface every backend implements (DuckDB file, ClickHouse).

Capture's writer, the forwarder, quarantine replay, the query engine, alerts and
the UI talk to a `Store`; only the backends below it know an engine's SQL for
writing, and only `query/sql.py` knows its SQL for reading.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any, cast

import msgspec
import pyarrow as pa

from eventplan.errors import EventplanError
from eventplan.plan.forwarding import ForwardRules
from eventplan.plan.model import Plan, PropertyType
from eventplan.plan.posthog import BOT_NAME
from eventplan.plan.validator import Violation
from eventplan.store.columns import (
    BUILTIN_TYPES,
    Column,
    missing_columns,
    quote,
    typed_properties,
)
from eventplan.store.identity import Identities, IdentityChanges
from eventplan.store.memory import allocate_arrow_from_the_c_heap
from eventplan.store.records import EventColumns, StoredEvent, columns_of

allocate_arrow_from_the_c_heap()  # before any backend allocates: see store/memory.py

_violations = msgspec.json.Decoder(list[Violation])

# A retried event is found by uuid among stored events within this distance of the
# batch's times: a retry re-sends the same timestamp, or (when the client sent
# none) gets a new server time minutes later. Bounding the search keeps it a scan
# of recent parts instead of the whole table.
DEDUPE_WINDOW_US = 24 * 3600 * 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """A datetime (aware, or naive UTC) as epoch microseconds, exactly."""
    delta = moment - EPOCH if moment.tzinfo else moment - EPOCH.replace(tzinfo=None)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


class QueryError(EventplanError):
    status = 400
    code = "query_invalid"


class StoreUnavailable(EventplanError):
    """The store itself is failing (a full disk, an engine that gave up, a server out
    of reach), not the request or the events: retry later."""

    status = 503
    code = "store_unavailable"


class StoreBusy(EventplanError):
    """A query needed more memory than the store may use: the request is sound, the
    server is short; retry later, or ask for less (a shorter range, fewer values)."""

    status = 503
    code = "store_busy"


def slices(groups: Iterable[EventColumns], size: int) -> Iterator[list[EventColumns]]:
    """The groups in runs of at least `size` events (the last one may be short)."""
    part: list[EventColumns] = []
    count = 0
    for group in groups:
        part.append(group)
        count += group.size
        if count >= size:
            yield part
            part, count = [], 0
    if part:
        yield part


class Store(ABC):
    dialect: str  # the `query.sql` dialect that reads this store
    location: str  # for messages: a path, or a URL without its password
    insert_size = 20_000  # how many events the writer gathers for one insert
    # How many of them are decoded and written at a time.
    slice_size = 20_000

    # The engine gave up on its connection (DuckDB invalidates a database after a
    # fatal error): nothing works until `reopen`.
    broken = False

    def __init__(self, plans: Iterable[Plan]) -> None:
        self._plans = {plan.name: plan for plan in plans}
        self.columns: list[Column] = []
        self._event_columns: dict[tuple[str, str], dict[str, Column]] = {}
        self._builtin_columns: dict[str, Column] = {}
        self._identities = Identities()

    # -- the typed-column catalogue ------------------------------------------------

    def _new_columns(self, catalog: list[tuple[str, str, str]]) -> list[Column]:
        """Columns the plans need that the catalogue (name, property, type) lacks."""
        return missing_columns(self._plans.values(), catalog)

    def _use_catalog(self, catalog: list[tuple[str, str, str]]) -> None:
        # The catalogue is the store's own table, written from the plans' types.
        self.columns = [
            Column(name, prop, cast(PropertyType, type_)) for name, prop, type_ in sorted(catalog)
        ]
        column_for = {(c.key, c.type): c for c in self.columns}
        self._builtin_columns = {
            key: column_for[(key, type_)]
            for key, type_ in BUILTIN_TYPES
            if (key, type_) in column_for
        }
        self._event_columns = {}
        for plan in self._plans.values():
            for event in plan.events:
                self._event_columns[(plan.name, event)] = {
                    key: column_for[(key, type_)]
                    for key, type_ in typed_properties(plan, event).items()
                    if (key, type_) in column_for
                }

    def event_columns(self, project: str, event: str) -> dict[str, Column]:
        """The typed columns of an event's properties, by key: its plan's, and the
        built-in ones every event has (those alone for an event no plan has)."""
        return self._event_columns.get((project, event), self._builtin_columns)

    # -- meta ----------------------------------------------------------------------

    @abstractmethod
    def meta(self, key: str) -> str | None: ...

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    def meta_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value of `key`, made and stored on first use (salts, secrets)."""
        value = self.meta(key)
        if value is None:
            value = make()
            self.set_meta(key, value)
        return value

    def wal_seq(self) -> int:
        value = self.meta("wal_seq")
        return int(value) if value else 0

    # -- writing -------------------------------------------------------------------

    def property_types(self, project: str, event: str) -> dict[str, PropertyType]:
        """The typed properties of an event, as its columns in this store hold them."""
        return {key: column.type for key, column in self.event_columns(project, event).items()}

    def insert(
        self,
        events: Iterable[StoredEvent],
        wal_seq: int,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, ForwardRules] | None = None,
    ) -> int:
        """`insert_columns` of events given whole (an import, quarantine replay, an
        event set aside, a test's batch), laid out in columns a slice at a time as
        they are read: an import's events are judged as the insert takes them."""
        return self.insert_columns(self._columns_of(events), wal_seq, quarantine, forward)

    def _columns_of(self, events: Iterable[StoredEvent]) -> Iterator[EventColumns]:
        iterator = iter(events)
        while part := list(islice(iterator, self.slice_size)):
            yield from columns_of(part, self.property_types)

    @abstractmethod
    def insert_columns(
        self,
        groups: Iterable[EventColumns],
        wal_seq: int,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, ForwardRules] | None = None,
    ) -> int:
        """Store a batch with the WAL position it reaches; returns rows added.

        Events of projects in `quarantine` that are not valid go to the quarantine
        table; events a project's rules forward go to the outbox (and one they
        neither forward nor keep is not stored). An event whose uuid is already
        stored is skipped (client retries, log replays).
        """

    def _write_batch(
        self,
        groups: Iterable[EventColumns],
        quarantine: frozenset[str],
        forward: dict[str, ForwardRules] | None,
    ) -> int:
        """What `insert_columns` writes, in the same order on every backend: a slice at
        a time, the events (those held back to quarantine) and the outbox; then the
        identity changes of them all, and the events a backend held back until
        `_finish_events`. Rows added."""
        self._load_identity()
        added = 0
        identity = IdentityChanges([])
        for part in slices(groups, self.slice_size):
            forwarded, local = self._routed([self._laid_out(g) for g in part], forward or {})
            kept, held = self._split(local, quarantine)
            changes = self._identities.apply(kept)
            added += self._insert_events(kept, changes.person_ids)
            identity.absorb(changes)
            if held:
                added += self._insert_quarantine(held)
            if forwarded:
                self._enqueue_forward(forwarded)
        # Once per insert, not per slice: an identity statement costs about the same
        # whatever its size (a row group in 25 slices: 0.64 s of writes; once: 0.07 s).
        self._write_identity(identity)
        return added + self._finish_events()

    def _laid_out(self, group: EventColumns) -> EventColumns:
        """The group as this store's columns take it: laid out again when its typed
        properties are not the store's (a plan changed between the log and the store)."""
        own = self.event_columns(group.project, group.event)
        for typed in group.typed:
            column = own.get(typed.key)
            if column is None or column.type != typed.type:
                [group] = columns_of(group.events(), self.property_types)
                break
        return group

    def _finish_events(self) -> int:
        """Insert the events `_insert_events` held back, if it does; rows added."""
        return 0

    @abstractmethod
    def _load_identity(self) -> None: ...

    @abstractmethod
    def _write_identity(self, changes: IdentityChanges) -> None: ...

    @abstractmethod
    def _insert_events(self, groups: list[EventColumns], person_ids: list[list[str]]) -> int: ...

    @abstractmethod
    def _insert_quarantine(self, events: list[StoredEvent]) -> int: ...

    @abstractmethod
    def _enqueue_forward(self, events: list[StoredEvent]) -> None: ...

    @staticmethod
    def _split(
        groups: list[EventColumns], quarantine: frozenset[str]
    ) -> tuple[list[EventColumns], list[StoredEvent]]:
        """(kept, held back in time order): a quarantined project's events that are not
        valid are held back whole."""
        kept: list[EventColumns] = []
        held: list[StoredEvent] = []
        for group in groups:
            if group.project not in quarantine or all(v == "valid" for v in group.verdict):
                kept.append(group)
                continue
            valid = [row for row, verdict in enumerate(group.verdict) if verdict == "valid"]
            others = [row for row, verdict in enumerate(group.verdict) if verdict != "valid"]
            if valid:
                kept.append(group.take(valid))
            held += group.take(others).events()
        return kept, sorted(held, key=lambda e: e.timestamp)

    @staticmethod
    def _routed(
        groups: list[EventColumns], forward: dict[str, ForwardRules]
    ) -> tuple[list[StoredEvent], list[EventColumns]]:
        """(to forward, to store here): by each project's rules, when it forwards."""
        if not forward:
            return [], groups
        forwarded: list[StoredEvent] = []
        local: list[EventColumns] = []
        for group in groups:
            rules = forward.get(group.project)
            if rules is None:
                local.append(group)
                continue
            routes = [
                rules.route(group.event, verdict, distinct_id)
                for verdict, distinct_id in zip(group.verdict, group.distinct_id, strict=True)
            ]
            sent = [row for row, route in enumerate(routes) if route == "forward"]
            if sent:
                forwarded += group.take(sent).events()
            kept = [row for row, route in enumerate(routes) if route != "drop"]
            if kept:
                local.append(group if len(kept) == group.size else group.take(kept))
        return forwarded, local

    # -- quarantine ----------------------------------------------------------------

    def quarantined(self, project: str) -> list[StoredEvent]:
        """Every event a project holds back, whole."""
        _, rows = self.sql(
            "SELECT uuid, event, distinct_id, timestamp, created_at, ip_hash, properties, "
            "person_set, person_set_once, verdict, violations FROM quarantine WHERE project = ?",
            [project],
        )
        return [
            StoredEvent(
                uuid=str(uuid),
                event=event,
                distinct_id=distinct_id,
                timestamp=epoch_us(timestamp),
                created_at=epoch_us(created_at),
                project=project,
                ip_hash=ip_hash,
                properties=msgspec.json.decode(props or "{}"),
                set=msgspec.json.decode(set_) if set_ else None,
                set_once=msgspec.json.decode(set_once) if set_once else None,
                verdict=verdict,
                violations=_violations.decode(violations) if violations else None,
            )
            for (
                uuid,
                event,
                distinct_id,
                timestamp,
                created_at,
                ip_hash,
                props,
                set_,
                set_once,
                verdict,
                violations,
            ) in rows
        ]

    def quarantine_list(self, limit: int) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The newest held-back events for people to read."""
        columns, rows = self.sql(
            "SELECT uuid, event, distinct_id, timestamp, verdict, violations FROM quarantine "
            "ORDER BY created_at DESC LIMIT ?",
            [int(limit)],
        )
        return columns, [(str(row[0]), *row[1:]) for row in rows]

    @abstractmethod
    def delete_quarantined(self, uuids: list[str]) -> None: ...

    # -- the forwarding outbox (gateway mode) ----------------------------------------

    @abstractmethod
    def outbox_due(self, project: str, limit: int) -> list[tuple[str, str, int]]:
        """Pending (uuid, payload, attempts) whose next attempt is due, oldest first."""

    @abstractmethod
    def outbox_delivered(self, uuids: list[str]) -> None: ...

    @abstractmethod
    def outbox_retry_later(self, uuids: list[str], delay_seconds: float, error: str) -> None: ...

    @abstractmethod
    def outbox_failed(self, uuids: list[str], error: str) -> None: ...

    @abstractmethod
    def outbox_requeue_failed(self, project: str | None = None) -> int: ...

    def outbox_status(self) -> dict[str, Any]:
        """What waits for PostHog: counts per state, the oldest, the commonest errors."""
        _, states = self.sql("SELECT state, count(*), min(created_at) FROM outbox GROUP BY state")
        _, errors = self.sql(
            "SELECT state, last_error, count(*) AS n FROM outbox WHERE last_error IS NOT NULL "
            "GROUP BY state, last_error ORDER BY n DESC LIMIT 5"
        )
        counts = {state: int(n) for state, n, _ in states}
        oldest = min((first for _, _, first in states), default=None)
        return {
            "pending": counts.get("pending", 0),
            "failed": counts.get("failed", 0),
            "oldest": oldest.isoformat() if oldest else None,
            "errors": [{"state": s, "error": e, "events": int(n)} for s, e, n in errors],
        }

    # -- alerts --------------------------------------------------------------------

    @abstractmethod
    def record_alert_changes(self, changes: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    def mark_alert_notified(
        self, project: str, alert: str, subject: str, state: str, at: Any
    ) -> None: ...

    def alert_history(self, project: str, limit: int) -> list[dict[str, Any]]:
        """Alert state changes, newest first."""
        keys = ("alert", "kind", "subject", "state", "value", "threshold", "owner", "at")
        _, rows = self.sql(
            "SELECT alert, kind, subject, state, value, threshold, owner, changed_at, notified "
            "FROM alert_history WHERE project = ? ORDER BY changed_at DESC LIMIT ?",
            [project, int(limit)],
        )
        return [{**dict(zip(keys, row, strict=False)), "notified": bool(row[8])} for row in rows]

    # -- reading -------------------------------------------------------------------

    def recent_events(
        self,
        project: str,
        limit: int,
        event: str = "",
        distinct_id: str = "",
        problems_only: bool = False,
    ) -> list[dict[str, Any]]:
        """The last events received, newest first, with verdicts and the name of the
        bot that sent each one, if a bot did (the live page); of one event name, one
        distinct id, or those that break the plan, when asked."""
        bot = next(quote(c.name) for c in self.columns if c.key == BOT_NAME)
        where, params = ["project = ?"], [project]
        for column, value in (("event", event), ("distinct_id", distinct_id)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if problems_only:
            where.append("verdict <> 'valid'")
        _, rows = self.sql(
            f"SELECT uuid, event, distinct_id, timestamp, verdict, violations, plan_version, {bot} "
            f"FROM events_data WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, timestamp DESC LIMIT ?",
            [*params, int(limit)],
        )
        return [_recent(row) for row in rows]

    @abstractmethod
    def rejudge(
        self,
        judged: Callable[[str], str],
        tables: dict[str, pa.Table],
        project: str,
        version: str,
        since_us: int | None = None,
    ) -> list[tuple[str, str, int]]:
        """Judge a project's stored events (since `since_us`) again, in one statement
        inside the store, and keep the new verdicts. `judged` makes the judging SELECT
        (the plan compiled for this store's dialect) over a relation of stored events
        (`uuid`, `event`, `properties`, `captured` violations); it reads `tables`. Each
        event then says it was judged by plan `version`. Each change of verdict is
        counted: (before, after, events)."""

    @abstractmethod
    def properties_sql(self, table: str = "e") -> str:
        """An event's whole `properties` as JSON, from `events_data` aliased `table`."""

    @abstractmethod
    def sql(
        self,
        query: str,
        parameters: list[Any] | None = None,
        max_rows: int | None = None,
        timeout: float | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only statement (`?` placeholders); column names and rows, at
        most `max_rows` of them when given. A statement still running after `timeout`
        seconds is stopped with a QueryError."""

    @abstractmethod
    def arrow(self, query: str, parameters: list[Any] | None = None) -> pa.Table:
        """The same as `sql`, as an Arrow table, for results too large for Python rows."""

    def arrow_batches(
        self, query: str, parameters: list[Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """The same as `arrow`, a batch at a time, for results too large to hold whole
        beside what is made of them."""
        yield from self.arrow(query, parameters).to_batches()

    @abstractmethod
    def reopen(self) -> None:
        """Connect again after the engine gave up (`broken`); raises StoreUnavailable
        while it still cannot."""

    @abstractmethod
    def close(self) -> None: ...


def _recent(row: tuple[Any, ...]) -> dict[str, Any]:
    """A live-page row: (uuid, event, distinct_id, timestamp, verdict, violations,
    plan_version, bot name)."""
    uuid, event, distinct_id, timestamp, verdict, violations, plan_version, bot = row
    return {
        "uuid": str(uuid),
        "event": event,
        "distinct_id": distinct_id,
        "timestamp": timestamp.isoformat(),
        "verdict": verdict,
        "violations": msgspec.json.decode(violations) if violations else [],
        "plan_version": plan_version,
        "bot": bot,
    }
