"""The event store on an embedded DuckDB file.

Tables:
* `events_data` — one row per event, planned properties in typed columns
  (`store/columns.py`), the rest in `properties_rest` JSON; rows go in sorted by
  event then time, the order the insights scan in.
* `events` — a view with the columns a PostHog user knows: `uuid, event,
  distinct_id, person_id, timestamp, created_at, properties` (JSON, typed columns
  folded back in), `verdict`, `violations`; `person_id` follows identity merges.
* `person_distinct_ids`, `persons`, `groups` — identity; `quarantine` — events held
  back by a project in `quarantine` enforcement; `meta`, `column_catalog`.

One thread writes (the background writer); readers take their own cursor.
"""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from eventplan.errors import EventplanError
from eventplan.plan.model import Plan, PropertyType
from eventplan.store.columns import ARROW_TYPES, Column, new_column, planned_types, quote
from eventplan.store.records import StoredEvent

# A retried event is found by uuid among stored events within this distance of the
# batch's times: a retry re-sends the same timestamp, or (when the client sent
# none) gets a new server time minutes later. Bounding the search keeps it a scan
# of recent row groups instead of the whole table.
DEDUPE_WINDOW_US = 24 * 3600 * 1_000_000
PERSON_NAMESPACE = uuidlib.UUID("5b6b9c1e-2f0a-4c3e-9a57-0e5f1d7c6a10")
_json = msgspec.json.Encoder()


class QueryError(EventplanError):
    status = 400


FIXED_COLUMNS = """
    uuid UUID NOT NULL,
    event VARCHAR NOT NULL,
    distinct_id VARCHAR NOT NULL,
    person_id UUID,
    timestamp TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    project VARCHAR NOT NULL,
    ip_hash VARCHAR,
    verdict VARCHAR NOT NULL,
    violations JSON,
    properties_rest JSON
"""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS column_catalog (
    name VARCHAR PRIMARY KEY, property VARCHAR NOT NULL, type VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS events_data ({FIXED_COLUMNS});
CREATE TABLE IF NOT EXISTS quarantine (
    uuid UUID NOT NULL, event VARCHAR, distinct_id VARCHAR, timestamp TIMESTAMPTZ,
    created_at TIMESTAMPTZ, project VARCHAR, ip_hash VARCHAR, properties JSON,
    person_set JSON, person_set_once JSON, verdict VARCHAR, violations JSON);
CREATE TABLE IF NOT EXISTS person_distinct_ids (
    project VARCHAR, distinct_id VARCHAR, person_id UUID NOT NULL,
    PRIMARY KEY (project, distinct_id));
CREATE TABLE IF NOT EXISTS persons (
    project VARCHAR, person_id UUID, properties JSON, created_at TIMESTAMPTZ,
    PRIMARY KEY (project, person_id));
CREATE TABLE IF NOT EXISTS outbox (
    uuid VARCHAR PRIMARY KEY, project VARCHAR, payload VARCHAR, created_at TIMESTAMPTZ,
    attempts INTEGER, next_attempt TIMESTAMPTZ, state VARCHAR, last_error VARCHAR);
CREATE TABLE IF NOT EXISTS alert_history (
    project VARCHAR, alert VARCHAR, kind VARCHAR, subject VARCHAR, state VARCHAR,
    value DOUBLE, threshold VARCHAR, owner VARCHAR, changed_at TIMESTAMPTZ, notified BOOLEAN);
CREATE TABLE IF NOT EXISTS groups (
    project VARCHAR, group_type VARCHAR, group_key VARCHAR, properties JSON,
    updated_at TIMESTAMPTZ, PRIMARY KEY (project, group_type, group_key));
"""


def forward_payload(event: StoredEvent) -> dict[str, Any]:
    """The event in PostHog's capture shape, after privacy, with its verdict attached."""
    from datetime import UTC, datetime

    properties = dict(event.properties)
    properties["$eventplan_verdict"] = event.verdict
    properties["$eventplan_violations"] = [
        f"{v.code}:{v.property}" if v.property else v.code for v in event.violations or []
    ]
    payload: dict[str, Any] = {
        "uuid": event.uuid,
        "event": event.event,
        "distinct_id": event.distinct_id,
        "timestamp": datetime.fromtimestamp(event.timestamp / 1e6, UTC).isoformat(),
        "properties": properties,
    }
    if event.set:
        payload["$set"] = event.set
    if event.set_once:
        payload["$set_once"] = event.set_once
    return payload


def _fits(value: Any, type_: PropertyType) -> Any:
    """The value as its typed column stores it, or `_NO` when it does not fit."""
    if type_ in ("string", "datetime"):
        return value if isinstance(value, str) else _NO
    if type_ == "boolean":
        return value if isinstance(value, bool) else _NO
    if isinstance(value, bool):
        return _NO
    if type_ == "integer":
        if isinstance(value, int) and -(2**63) <= value < 2**63:
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
            return int(value)
        return _NO
    return float(value) if isinstance(value, int | float) else _NO


_NO = object()


class EventStore:
    def __init__(self, path: str | Path, plans: Iterable[Plan] = (), read_only: bool = False):
        self.path = str(path)
        self.read_only = read_only
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as exc:
            raise EventplanError(f"cannot open {self.path}: {exc}") from exc
        self._lock = threading.RLock()
        self.columns: list[Column] = []
        self._column_for: dict[tuple[str, str], Column] = {}
        self._plans = {plan.name: plan for plan in plans}
        self._event_columns: dict[tuple[str, str], dict[str, Column]] = {}
        self._persons: dict[tuple[str, str], str] = {}
        self._person_ids: dict[tuple[str, str], set[str]] = {}
        self._person_props: dict[tuple[str, str], dict[str, Any]] = {}
        self._identity_loaded = False
        if not read_only:
            self._ensure_schema()
        self._load_catalog()

    def _run(self, sql: str, parameters: list[Any] | None = None) -> list[Any]:
        """Execute and fetch everything (DuckDB 2 wants each result finished)."""
        return self._conn.execute(sql, parameters or []).fetchall()

    # -- schema ------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        with self._lock:
            self._conn.execute(SCHEMA).fetchall()
            catalog = self._run("SELECT name, property, type FROM column_catalog")
            taken = {name for name, _, _ in catalog}
            have = {(prop, type_) for _, prop, type_ in catalog}
            added = False
            for prop, type_ in planned_types(self._plans.values()):
                if (prop, type_) in have:
                    continue
                column = new_column(prop, type_, taken)
                taken.add(column.name)
                self._run(
                    f"ALTER TABLE events_data ADD COLUMN {quote(column.name)} {column.sql_type}"
                )
                self._run(
                    "INSERT INTO column_catalog VALUES (?, ?, ?)",
                    [column.name, column.key, column.type],
                )
                added = True
            if added or not self._view_exists():
                self._load_catalog()
                self._run(self._view_sql())

    def _view_exists(self) -> bool:
        rows = self._run(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'events' AND NOT internal"
        )
        return bool(rows[0][0])

    def _load_catalog(self) -> None:
        try:
            rows = self._run("SELECT name, property, type FROM column_catalog ORDER BY name")
        except duckdb.CatalogException:
            rows = []
        self.columns = [Column(name, prop, type_) for name, prop, type_ in rows]
        self._column_for = {(c.key, c.type): c for c in self.columns}
        self._event_columns = {}
        for plan in self._plans.values():
            for event in plan.events:
                self._event_columns[(plan.name, event)] = {
                    prop.name: self._column_for[(prop.name, prop.type)]
                    for prop in plan.properties_of(event).values()
                    if (prop.name, prop.type) in self._column_for
                }

    def _view_sql(self) -> str:
        by_property: dict[str, list[Column]] = {}
        for column in self.columns:
            by_property.setdefault(column.key, []).append(column)
        pairs = []
        for prop, columns in sorted(by_property.items()):
            values = [f"to_json(e.{quote(c.name)})" for c in columns]
            value = values[0] if len(values) == 1 else f"COALESCE({', '.join(values)})"
            pairs.append(f"'{prop.replace(chr(39), chr(39) * 2)}', {value}")
        typed = (
            f"json_merge_patch('{{}}', json_object({', '.join(pairs)}))" if pairs else "'{}'::JSON"
        )
        return f"""
            CREATE OR REPLACE VIEW events AS
            SELECT e.uuid, e.event, e.distinct_id,
                   COALESCE(m.person_id, e.person_id) AS person_id,
                   e.timestamp, e.created_at, e.project, e.ip_hash,
                   json_merge_patch(COALESCE(e.properties_rest, '{{}}'), {typed}) AS properties,
                   e.verdict, e.violations
            FROM events_data e
            LEFT JOIN person_distinct_ids m
              ON m.project = e.project AND m.distinct_id = e.distinct_id
        """

    # -- writing -----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock:
            rows = self._run("SELECT value FROM meta WHERE key = ?", [key])
        return str(rows[0][0]) if rows else None

    def meta_or_create(self, key: str, make: Callable[[], str]) -> str:
        """The stored value of `key`, made and stored on first use (salts, secrets)."""
        with self._lock:
            value = self.meta(key)
            if value is None:
                value = make()
                self.set_meta(key, value)
            return value

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def wal_seq(self) -> int:
        value = self.meta("wal_seq")
        return int(value) if value else 0

    def insert(
        self,
        events: list[StoredEvent],
        wal_seq: int,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, frozenset[str]] | None = None,
    ) -> int:
        """Store a batch in one transaction with the WAL position it reaches.

        Events of projects in `quarantine` that are not valid go to the quarantine
        table. An event whose uuid is already stored is skipped (client retries).
        Returns how many rows were added.
        """
        with self._lock, self._transaction():
            self._load_identity()
            events = sorted(events, key=lambda e: e.timestamp)
            held = [e for e in events if e.project in quarantine and e.verdict != "valid"]
            kept = [e for e in events if not (e.project in quarantine and e.verdict != "valid")]
            person_ids = self._apply_identity(kept)
            added = self._insert_events(kept, person_ids)
            if held:
                added += self._insert_quarantine(held)
            if forward:
                self._enqueue_forward(
                    [e for e in events if e.verdict in forward.get(e.project, frozenset())]
                )
            self._run("INSERT OR REPLACE INTO meta VALUES ('wal_seq', ?)", [str(wal_seq)])
            return added

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._run("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self._run("ROLLBACK")
            raise
        self._run("COMMIT")

    def _insert_events(self, events: list[StoredEvent], person_ids: list[str]) -> int:
        if not events:
            return 0
        columns = self.columns
        index_of = {column.name: i for i, column in enumerate(columns)}
        typed: list[list[Any]] = [[None] * len(events) for _ in columns]
        rest_json: list[str | None] = []
        violations: list[str | None] = []
        for row, event in enumerate(events):
            mapping = self._event_columns.get((event.project, event.event), {})
            rest: dict[str, Any] = {}
            for key, value in event.properties.items():
                column = mapping.get(key)
                if column is not None and value is not None:
                    stored = _fits(value, column.type)
                    if stored is not _NO:
                        typed[index_of[column.name]][row] = stored
                        continue
                rest[key] = value
            rest_json.append(_json.encode(rest).decode() if rest else None)
            violations.append(_json.encode(event.violations).decode() if event.violations else None)
        arrays: dict[str, pa.Array] = {
            "uuid": pa.array([e.uuid for e in events], pa.string()),
            "event": pa.array([e.event for e in events], pa.string()),
            "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
            "person_id": pa.array(person_ids, pa.string()),
            "timestamp": pa.array([e.timestamp for e in events], pa.timestamp("us", tz="UTC")),
            "created_at": pa.array([e.created_at for e in events], pa.timestamp("us", tz="UTC")),
            "project": pa.array([e.project for e in events], pa.string()),
            "ip_hash": pa.array([e.ip_hash for e in events], pa.string()),
            "verdict": pa.array([e.verdict for e in events], pa.string()),
            "violations": pa.array(violations, pa.string()),
            "properties_rest": pa.array(rest_json, pa.string()),
        }
        for column, values in zip(columns, typed, strict=True):
            arrays[column.name] = pa.array(values, ARROW_TYPES[column.type])
        staged = pa.table(arrays)
        low = min(e.timestamp for e in events) - DEDUPE_WINDOW_US
        high = max(e.timestamp for e in events) + DEDUPE_WINDOW_US
        select = ", ".join(
            [
                "s.uuid::UUID AS uuid",
                "s.event",
                "s.distinct_id",
                "s.person_id::UUID AS person_id",
                "s.timestamp",
                "s.created_at",
                "s.project",
                "s.ip_hash",
                "s.verdict",
                "s.violations::JSON AS violations",
                "s.properties_rest::JSON AS properties_rest",
                *(f"s.{quote(c.name)}" for c in columns),
            ]
        )
        self._conn.register("staged_events", staged)
        try:
            rows = self._run(
                f"""
                INSERT INTO events_data BY NAME
                SELECT * FROM (
                    SELECT {select} FROM staged_events s
                    QUALIFY row_number() OVER (PARTITION BY s.uuid ORDER BY s.created_at) = 1
                ) n
                WHERE NOT EXISTS (
                    SELECT 1 FROM events_data d
                    WHERE d.uuid = n.uuid
                      AND d.timestamp BETWEEN make_timestamptz(?::BIGINT)
                                          AND make_timestamptz(?::BIGINT)
                )
                ORDER BY n.event, n.timestamp
                """,
                [low, high],
            )
            return int(rows[0][0])
        finally:
            self._conn.unregister("staged_events")

    def _insert_quarantine(self, events: list[StoredEvent]) -> int:
        staged = pa.table(
            {
                "uuid": pa.array([e.uuid for e in events], pa.string()),
                "event": pa.array([e.event for e in events], pa.string()),
                "distinct_id": pa.array([e.distinct_id for e in events], pa.string()),
                "timestamp": pa.array([e.timestamp for e in events], pa.timestamp("us", tz="UTC")),
                "created_at": pa.array(
                    [e.created_at for e in events], pa.timestamp("us", tz="UTC")
                ),
                "project": pa.array([e.project for e in events], pa.string()),
                "ip_hash": pa.array([e.ip_hash for e in events], pa.string()),
                "properties": pa.array([_json.encode(e.properties).decode() for e in events]),
                "person_set": pa.array(
                    [_json.encode(e.set).decode() if e.set else None for e in events], pa.string()
                ),
                "person_set_once": pa.array(
                    [_json.encode(e.set_once).decode() if e.set_once else None for e in events],
                    pa.string(),
                ),
                "verdict": pa.array([e.verdict for e in events], pa.string()),
                "violations": pa.array(
                    [_json.encode(e.violations).decode() if e.violations else None for e in events],
                    pa.string(),
                ),
            }
        )
        self._conn.register("staged_quarantine", staged)
        try:
            rows = self._run(
                """
                INSERT INTO quarantine
                SELECT s.uuid::UUID, s.event, s.distinct_id, s.timestamp, s.created_at,
                       s.project, s.ip_hash, s.properties::JSON, s.person_set::JSON,
                       s.person_set_once::JSON, s.verdict, s.violations::JSON
                FROM staged_quarantine s
                WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.uuid = s.uuid::UUID)
                QUALIFY row_number() OVER (PARTITION BY s.uuid) = 1
                """
            )
            return int(rows[0][0])
        finally:
            self._conn.unregister("staged_quarantine")

    # -- identity ----------------------------------------------------------------

    def _load_identity(self) -> None:
        if self._identity_loaded:
            return
        for project, distinct_id, person_id in self._run(
            "SELECT project, distinct_id, person_id::VARCHAR FROM person_distinct_ids"
        ):
            self._persons[(project, distinct_id)] = person_id
            self._person_ids.setdefault((project, person_id), set()).add(distinct_id)
        for project, person_id, properties in self._run(
            "SELECT project, person_id::VARCHAR, properties FROM persons"
        ):
            self._person_props[(project, person_id)] = msgspec.json.decode(properties or "{}")
        self._identity_loaded = True

    def _apply_identity(self, events: list[StoredEvent]) -> list[str]:
        """Each event's person, after merging ids as `$identify` / `$create_alias` ask."""
        changed_ids: dict[tuple[str, str], str] = {}
        changed_people: set[tuple[str, str]] = set()
        result = []
        for event in events:
            project = event.project
            props = event.properties
            if event.event == "$identify":
                anon = props.get("$anon_distinct_id")
                if isinstance(anon, str) and anon and anon != event.distinct_id:
                    self._merge(project, event.distinct_id, anon, changed_ids, changed_people)
            elif event.event == "$create_alias":
                alias = props.get("alias")
                if isinstance(alias, str) and alias and alias != event.distinct_id:
                    self._merge(project, event.distinct_id, alias, changed_ids, changed_people)
            elif event.event == "$groupidentify":
                self._group(project, props, event.timestamp)
            person = self._person(project, event.distinct_id, changed_ids, changed_people)
            if event.set or event.set_once:
                current = self._person_props.setdefault((project, person), {})
                for key, value in (event.set_once or {}).items():
                    current.setdefault(key, value)
                current.update(event.set or {})
                changed_people.add((project, person))
            result.append(person)
        self._write_identity(changed_ids, changed_people)
        return result

    def _person(
        self,
        project: str,
        distinct_id: str,
        changed_ids: dict[tuple[str, str], str],
        changed_people: set[tuple[str, str]],
    ) -> str:
        person = self._persons.get((project, distinct_id))
        if person is None:
            # Deterministic, so replaying the log after a crash gives the same ids.
            person = str(uuidlib.uuid5(PERSON_NAMESPACE, f"{project}\0{distinct_id}"))
            self._assign(project, distinct_id, person, changed_ids)
            changed_people.add((project, person))
        return person

    def _assign(
        self, project: str, distinct_id: str, person: str, changed: dict[tuple[str, str], str]
    ) -> None:
        old = self._persons.get((project, distinct_id))
        if old is not None:
            self._person_ids.get((project, old), set()).discard(distinct_id)
        self._persons[(project, distinct_id)] = person
        self._person_ids.setdefault((project, person), set()).add(distinct_id)
        changed[(project, distinct_id)] = person

    def _merge(
        self,
        project: str,
        target: str,
        source: str,
        changed_ids: dict[tuple[str, str], str],
        changed_people: set[tuple[str, str]],
    ) -> None:
        """`source` becomes the same person as `target` (PostHog's identify/alias merge)."""
        target_person = self._persons.get((project, target))
        source_person = self._persons.get((project, source))
        if target_person is None:
            person = self._person(project, source, changed_ids, changed_people)
            self._assign(project, target, person, changed_ids)
        elif source_person is None:
            self._assign(project, source, target_person, changed_ids)
        elif source_person != target_person:
            for distinct_id in list(self._person_ids.get((project, source_person), ())):
                self._assign(project, distinct_id, target_person, changed_ids)
            merged = self._person_props.pop((project, source_person), {})
            kept = self._person_props.setdefault((project, target_person), {})
            for key, value in merged.items():
                kept.setdefault(key, value)
            changed_people.add((project, target_person))
            changed_people.add((project, source_person))

    def _group(self, project: str, props: dict[str, Any], timestamp: int) -> None:
        group_type, group_key = props.get("$group_type"), props.get("$group_key")
        if not isinstance(group_type, str) or group_key is None:
            return
        group_set = props.get("$group_set")
        properties = group_set if isinstance(group_set, dict) else {}
        self._run(
            """
            INSERT INTO groups VALUES (?, ?, ?, ?::JSON, make_timestamptz(?::BIGINT))
            ON CONFLICT DO UPDATE SET
              properties = json_merge_patch(groups.properties, excluded.properties),
              updated_at = excluded.updated_at
            """,
            [project, group_type, str(group_key), _json.encode(properties).decode(), timestamp],
        )

    def _write_identity(
        self, changed_ids: dict[tuple[str, str], str], changed_people: set[tuple[str, str]]
    ) -> None:
        if changed_ids:
            table = pa.table(
                {
                    "project": [p for p, _ in changed_ids],
                    "distinct_id": [d for _, d in changed_ids],
                    "person_id": list(changed_ids.values()),
                }
            )
            self._conn.register("staged_ids", table)
            self._run(
                "INSERT OR REPLACE INTO person_distinct_ids "
                "SELECT project, distinct_id, person_id::UUID FROM staged_ids"
            )
            self._conn.unregister("staged_ids")
        if changed_people:
            live = [key for key in changed_people if self._person_ids.get(key)]
            gone = [key for key in changed_people if not self._person_ids.get(key)]
            if live:
                table = pa.table(
                    {
                        "project": [p for p, _ in live],
                        "person_id": [i for _, i in live],
                        "properties": [
                            _json.encode(self._person_props.get(key, {})).decode() for key in live
                        ],
                    }
                )
                self._conn.register("staged_people", table)
                self._run(
                    """
                    INSERT INTO persons
                    SELECT project, person_id::UUID, properties::JSON, now() FROM staged_people
                    ON CONFLICT DO UPDATE SET properties = excluded.properties
                    """
                )
                self._conn.unregister("staged_people")
            for project, person in gone:
                self._run(
                    "DELETE FROM persons WHERE project = ? AND person_id = ?::UUID",
                    [project, person],
                )

    # -- the forwarding outbox (gateway mode) ----------------------------------------

    def _enqueue_forward(self, events: list[StoredEvent]) -> None:
        """Queue events for PostHog in the insert's transaction: stored means queued."""
        if not events:
            return
        table = pa.table(
            {
                "uuid": [e.uuid for e in events],
                "project": [e.project for e in events],
                "payload": [_json.encode(forward_payload(e)).decode() for e in events],
            }
        )
        self._conn.register("staged_outbox", table)
        try:
            self._run(
                "INSERT OR IGNORE INTO outbox SELECT uuid, project, payload, now(), 0, now(), "
                "'pending', NULL FROM staged_outbox"
            )
        finally:
            self._conn.unregister("staged_outbox")

    def outbox_due(self, project: str, limit: int) -> list[tuple[str, str, int]]:
        """Pending (uuid, payload, attempts) whose next attempt is due, oldest first."""
        with self._lock:
            rows = self._run(
                "SELECT uuid, payload, attempts FROM outbox "
                "WHERE project = ? AND state = 'pending' AND next_attempt <= now() "
                "ORDER BY created_at, uuid LIMIT ?",
                [project, limit],
            )
        return [(str(u), str(p), int(a)) for u, p, a in rows]

    def outbox_delivered(self, uuids: list[str]) -> None:
        with self._lock, self._transaction():
            self._outbox_update(
                "DELETE FROM outbox WHERE uuid IN (SELECT uuid FROM ids)", uuids, []
            )

    def outbox_retry_later(self, uuids: list[str], delay_seconds: float, error: str) -> None:
        with self._lock, self._transaction():
            self._outbox_update(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                "next_attempt = now() + to_microseconds(?::BIGINT) "
                "WHERE uuid IN (SELECT uuid FROM ids)",
                uuids,
                [error, int(delay_seconds * 1_000_000)],
            )

    def outbox_failed(self, uuids: list[str], error: str) -> None:
        with self._lock, self._transaction():
            self._outbox_update(
                "UPDATE outbox SET attempts = attempts + 1, state = 'failed', last_error = ? "
                "WHERE uuid IN (SELECT uuid FROM ids)",
                uuids,
                [error],
            )

    def outbox_requeue_failed(self, project: str | None = None) -> int:
        with self._lock:
            rows = self._run(
                "UPDATE outbox SET state = 'pending', next_attempt = now() "
                "WHERE state = 'failed' AND (? IS NULL OR project = ?)",
                [project, project],
            )
        return int(rows[0][0]) if rows else 0

    def outbox_status(self) -> dict[str, Any]:
        with self._lock:
            [[pending, failed, oldest]] = self._run(
                "SELECT count(*) FILTER (state = 'pending'), count(*) FILTER (state = 'failed'), "
                "min(created_at) FROM outbox"
            )
            errors = self._run(
                "SELECT state, last_error, count(*) FROM outbox WHERE last_error IS NOT NULL "
                "GROUP BY ALL ORDER BY 3 DESC LIMIT 5"
            )
        return {
            "pending": int(pending),
            "failed": int(failed),
            "oldest": oldest.isoformat() if oldest else None,
            "errors": [{"state": s, "error": e, "events": int(n)} for s, e, n in errors],
        }

    def _outbox_update(self, sql: str, uuids: list[str], params: list[Any]) -> None:
        self._conn.register("ids", pa.table({"uuid": pa.array(uuids, pa.string())}))
        try:
            self._run(sql, params)
        finally:
            self._conn.unregister("ids")

    def record_alert_changes(self, changes: list[dict[str, Any]]) -> None:
        with self._lock:
            for change in changes:
                self._run(
                    "INSERT INTO alert_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, false)",
                    [
                        change["project"],
                        change["alert"],
                        change["kind"],
                        change["subject"],
                        change["state"],
                        change["value"],
                        change["threshold"],
                        change["owner"],
                        change["at"],
                    ],
                )

    def mark_alert_notified(
        self, project: str, alert: str, subject: str, state: str, at: Any
    ) -> None:
        with self._lock:
            self._run(
                "UPDATE alert_history SET notified = true WHERE project = ? AND alert = ? "
                "AND subject = ? AND state = ? AND changed_at = ?",
                [project, alert, subject, state, at],
            )

    def delete_quarantined(self, uuids: list[str]) -> None:
        with self._lock:
            self._conn.register("moved", pa.table({"uuid": pa.array(uuids, pa.string())}))
            try:
                self._run("DELETE FROM quarantine WHERE uuid IN (SELECT uuid::UUID FROM moved)")
            finally:
                self._conn.unregister("moved")

    # -- reading -----------------------------------------------------------------

    def sql(
        self, query: str, parameters: list[Any] | None = None
    ) -> tuple[list[str], list[list[Any]]]:
        """Run one read-only statement; returns column names and rows."""
        cursor = self._conn.cursor()
        try:
            statements = cursor.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryError(f"the query does not parse: {exc}") from exc
        if len(statements) != 1:
            raise QueryError(f"send exactly one statement, not {len(statements)}")
        if statements[0].type != duckdb.StatementType.SELECT:
            raise QueryError(f"only SELECT queries are allowed here, not {statements[0].type.name}")
        try:
            result = cursor.execute(query, parameters or [])
            columns = [d[0] for d in result.description or []]
            rows = [list(row) for row in result.fetchall()]
        except duckdb.Error as exc:
            raise QueryError(str(exc).split("\n")[0]) from exc
        finally:
            cursor.close()
        return columns, rows

    def close(self) -> None:
        with self._lock:
            self._conn.close()
