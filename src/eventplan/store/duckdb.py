"""The event store on an embedded DuckDB file.

Tables:
* `events_data` — one row per event, planned properties in typed columns
  (`store/columns.py`), the rest in `properties_rest` JSON. Rows are kept sorted by
  event then time, the order the insights scan in, a row group at a time: the
  writer gathers a whole row group's worth (`insert_size`), which goes in sorted
  (`settled`) in one transaction, and DuckDB writes it straight into the file,
  compressed (6 µs per event against 37 for 20k-event appends, and 50 MB per
  million events against 89). Smaller inserts, when traffic is slow, append as
  they come (`settled = false`); once a row group's worth has gathered, or a whole
  one follows them, they are rewritten sorted. One table rather than a union of
  two: a union hides the column statistics DuckDB's planner uses (a trend took
  70% longer through one).
* `events` — a view with the columns a PostHog user knows: `uuid, event,
  distinct_id, person_id, timestamp, created_at, properties` (JSON, typed columns
  folded back in), `verdict`, `violations`; `person_id` follows identity merges.
* `person_distinct_ids`, `persons`, `groups` — identity; `quarantine` — events held
  back by a project in `quarantine` enforcement; `meta`, `column_catalog`.

One thread writes (the background writer); readers take their own cursor.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from eventplan.errors import EventplanError
from eventplan.plan.forwarding import ForwardRules
from eventplan.plan.model import Plan
from eventplan.store.base import (
    DEDUPE_WINDOW_US,
    QueryError,
    Store,
    StoreBusy,
    StoreUnavailable,
)
from eventplan.store.columns import Column, quote
from eventplan.store.identity import GroupUpdate, IdentityChanges, update_rounds
from eventplan.store.memory import release_free_memory
from eventplan.store.records import EventColumns, StoredEvent, first_received_columns
from eventplan.store.rows import (
    TIME,
    events_table,
    identity_table,
    outbox_table,
    quarantine_table,
)

_json = msgspec.json.Encoder()
log = logging.getLogger("eventplan.store")

# `person_id` is text: DuckDB dictionary-compresses text, and a person's events repeat
# its id, while a UUID column is stored uncompressed (16 bytes on every event). Stores
# from before keep their UUID column; the overrides table follows the events' type.
FIXED_COLUMNS = """
    uuid UUID NOT NULL,
    event VARCHAR NOT NULL,
    distinct_id VARCHAR NOT NULL,
    person_id VARCHAR,
    timestamp TIMESTAMPTZ NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    project VARCHAR NOT NULL,
    ip_hash VARCHAR,
    verdict VARCHAR NOT NULL,
    violations JSON,
    properties_rest JSON,
    settled BOOLEAN NOT NULL,
    plan_version VARCHAR
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


# Rows per Arrow batch when a result is read a batch at a time. Measured on the 10 M
# funnel: 16,384 peaked 13-18 MB lower than 131,072, in the same time.
READ_BATCH_ROWS = 16_384
ROW_GROUP_ROWS = 122_880  # DuckDB's
# Failures of the store rather than of a statement: a full disk (an IOException, or
# a commit that "could not write" its WAL), a database DuckDB invalidated after a
# fatal error (a failed checkpoint), a closed connection.
STORE_FAILURES = (duckdb.FatalException, duckdb.IOException, duckdb.ConnectionException)
DISK_FAILURES = ("No space left on device", "Could not write file", "Disk quota exceeded")


def is_store_failure(exc: duckdb.Error) -> bool:
    return isinstance(exc, STORE_FAILURES) or any(mark in str(exc) for mark in DISK_FAILURES)


PLAN_VERSION = "plan_version VARCHAR DEFAULT ''"
# `rejudge`: the verdicts that changed, then the new ones stored with the plan version.
REJUDGE_CHANGES = """
    SELECT d.verdict, r.verdict, count(*) FROM events_data d
    JOIN rejudged r ON r.uuid = d.uuid AND d.project = ?
    WHERE d.verdict <> r.verdict GROUP BY ALL ORDER BY ALL
"""
REJUDGE_UPDATE = """
    UPDATE events_data SET verdict = r.verdict, violations = r.violations, plan_version = ?
    FROM rejudged r WHERE events_data.uuid = r.uuid AND events_data.project = ?
"""


class EventStore(Store):
    dialect = "duckdb"
    # A row group's worth is prepared as Arrow tables a slice at a time (about 440
    # bytes per event) and inserted at the end. A slice's decoded events are held at
    # once (10k: about 20 MB); 5k saved 15-25 MB of peak RSS but made the writer,
    # the bottleneck under load, about a quarter slower.
    slice_size = 10_000

    def __init__(
        self,
        path: str | Path,
        plans: Iterable[Plan] = (),
        read_only: bool = False,
        memory_limit: str | None = None,
        sorted_rows: int = ROW_GROUP_ROWS,
        insert_size: int = ROW_GROUP_ROWS,
    ):
        super().__init__(plans)
        self.sorted_rows = sorted_rows  # unsettled rows that make the tail be rewritten
        self.insert_size = insert_size
        # One insert's events, a slice at a time, as Arrow tables until they go in.
        self._staged: dict[tuple[str, str], list[pa.Table]] = {}  # by (event, project)
        self._staged_uuids: set[str] = set()
        self._wrote_sorted = False
        self.path = self.location = str(path)
        self.read_only = read_only
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # DuckDB keeps the blocks it read in its buffer pool up to the limit (by default
        # 80% of the machine), so a long-running server grows with its store without one.
        self._config: dict[str, str | bool | int | float | list[str]] = (
            {"memory_limit": memory_limit} if memory_limit else {}
        )
        try:
            self._conn = self._connect(read_only)
        except duckdb.IOException as exc:
            raise EventplanError(f"cannot open {self.path}: {exc}") from exc
        except duckdb.Error as exc:  # a memory limit DuckDB does not understand
            raise EventplanError(f"cannot open {self.path}: {str(exc).splitlines()[0]}") from exc
        self._lock = threading.RLock()
        self._unsettled_rows = 0
        self._settle_at = sorted_rows
        if not read_only:
            self._ensure_schema()
            self._unsettled_rows = int(
                self._run("SELECT count(*) FROM events_data WHERE NOT settled")[0][0]
            )
        self._load_catalog()

    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        conn = duckdb.connect(self.path, read_only=read_only, config=self._config)
        # Days, hours and weeks of a time are UTC's (PostHog's default project time
        # zone), whatever the machine's is; GLOBAL, so that every cursor has it too.
        conn.execute("SET GLOBAL TimeZone = 'UTC'")
        return conn

    def reopen(self) -> None:
        with self._lock:
            with suppress(duckdb.Error):
                self._conn.close()
            try:
                self._conn = self._connect(False)
                self._run("SELECT 1")
                self._ensure_schema()
                self._unsettled_rows = int(
                    self._run("SELECT count(*) FROM events_data WHERE NOT settled")[0][0]
                )
                self._load_catalog()
            except duckdb.Error as exc:
                raise self._unavailable(exc) from exc
            self.broken = False
            log.warning("reopened the store %s", self.path)

    @contextmanager
    def _store_failures(self) -> Iterator[None]:
        """Failures of the store itself as StoreUnavailable; a fatal one marks it broken."""
        try:
            yield
        except duckdb.Error as exc:
            if is_store_failure(exc):
                raise self._unavailable(exc) from exc
            raise

    def _unavailable(self, exc: duckdb.Error) -> StoreUnavailable:
        if isinstance(exc, (duckdb.FatalException, duckdb.ConnectionException)):
            self.broken = True
        return StoreUnavailable(f"the store {self.path} is failing: {str(exc).splitlines()[0]}")

    def _run(self, sql: str, parameters: list[Any] | None = None) -> list[Any]:
        """Execute and fetch everything (DuckDB 2 wants each result finished)."""
        return self._conn.execute(sql, parameters or []).fetchall()

    def _run_on(self, name: str, table: pa.Table, sql: str) -> list[Any]:
        """`_run` with `table` readable as `name`. Not `register`: DuckDB holds a
        registered table until the transaction commits, so an insert's Arrow staging
        (about 64 MB a row group) stayed alive beside DuckDB's own copy of the rows."""
        result = self._conn.from_arrow(table).query(name, sql)
        return result.fetchall() if result is not None else []

    # -- schema ------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        with self._lock:
            had_events = self._table_exists("events_data")
            had_overrides = self._table_exists("person_overrides")
            self._conn.execute(SCHEMA).fetchall()
            if not self._column_type("settled"):  # a store from before: its rows stay put
                self._run("ALTER TABLE events_data ADD COLUMN settled BOOLEAN DEFAULT true")
            # A store from before plan versions were kept: its events say '' (not recorded).
            self._run(f"ALTER TABLE events_data ADD COLUMN IF NOT EXISTS {PLAN_VERSION}")
            person_type = self._column_type("person_id")
            self._run(
                f"""CREATE TABLE IF NOT EXISTS person_overrides (
                    project VARCHAR, old_person_id {person_type},
                    person_id {person_type} NOT NULL, PRIMARY KEY (project, old_person_id))"""
            )
            migrated = had_events and not had_overrides
            if migrated:
                self._derive_overrides()
            catalog = self._run("SELECT name, property, type FROM column_catalog")
            added = self._new_columns(catalog)
            for column in added:
                self._run(
                    f"ALTER TABLE events_data ADD COLUMN {quote(column.name)} {column.sql_type}"
                )
                self._run(
                    "INSERT INTO column_catalog VALUES (?, ?, ?)",
                    [column.name, column.key, column.type],
                )
            if added or migrated or not self._view_exists():
                self._load_catalog()
                self._run(self._view_sql())

    def _table_exists(self, name: str) -> bool:
        rows = self._run("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name])
        return bool(rows[0][0])

    def _derive_overrides(self) -> None:
        """A store from before person overrides: each event's stored person that is no
        longer its distinct id's person was merged into that one."""
        self._run(
            """
            INSERT INTO person_overrides
            SELECT e.project, e.person_id, any_value(m.person_id)
            FROM events_data e JOIN person_distinct_ids m
              ON m.project = e.project AND m.distinct_id = e.distinct_id
            WHERE e.person_id <> m.person_id
            GROUP BY e.project, e.person_id
            """
        )

    def _column_type(self, column: str) -> str | None:
        rows = self._run(
            "SELECT data_type FROM duckdb_columns() "
            "WHERE table_name = 'events_data' AND column_name = ?",
            [column],
        )
        return str(rows[0][0]) if rows else None

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
        self._use_catalog([tuple(row) for row in rows])

    def properties_sql(self, table: str = "e") -> str:
        """An event's whole `properties` as JSON: the rest, with the typed columns of
        `events_data` (aliased `table`) folded back in.

        Written as text, `"key":value` pieces joined: the rest's members as stored,
        then each typed value that is not NULL, in property order (what
        `json_merge_patch` of a `json_object` gave, at a third of its cost)."""
        by_property: dict[str, list[Column]] = {}
        for column in self.columns:
            by_property.setdefault(column.key, []).append(column)
        rest = f"{table}.properties_rest::VARCHAR"
        pieces = [f"nullif(substr({rest}, 2, length({rest}) - 2), '')"]
        for prop, columns in sorted(by_property.items()):
            values = [f"to_json({table}.{quote(c.name)})" for c in columns]
            value = values[0] if len(values) == 1 else f"COALESCE({', '.join(values)})"
            key = _json.encode(prop).decode().replace("'", "''")
            pieces.append(f"'{key}:' || {value}")
        members = f"list_filter([{', '.join(pieces)}], lambda piece: piece IS NOT NULL)"
        return f"('{{' || array_to_string({members}, ',') || '}}')::JSON"

    def _view_sql(self) -> str:
        return f"""
            CREATE OR REPLACE VIEW events AS
            SELECT e.uuid, e.event, e.distinct_id,
                   COALESCE(o.person_id, e.person_id) AS person_id,
                   e.timestamp, e.created_at, e.project, e.ip_hash,
                   {self.properties_sql()} AS properties,
                   e.verdict, e.violations, e.plan_version
            FROM events_data e
            LEFT JOIN person_overrides o
              ON o.project = e.project AND o.old_person_id = e.person_id
        """

    # -- writing -----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        with self._lock, self._store_failures():
            rows = self._run("SELECT value FROM meta WHERE key = ?", [key])
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock, self._store_failures():
            self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", [key, value])

    def insert_columns(
        self,
        groups: Iterable[EventColumns],
        wal_seq: int,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, ForwardRules] | None = None,
    ) -> int:
        # One transaction: the rows, the identity changes, the outbox and the log position.
        with self._lock, self._store_failures():
            self._wrote_sorted = False
            try:
                with self._transaction():
                    added = self._write_batch(groups, quarantine, forward)
                    self._run("INSERT OR REPLACE INTO meta VALUES ('wal_seq', ?)", [str(wal_seq)])
            finally:
                self._staged, self._staged_uuids = {}, set()
            # Appended rows left before a whole sorted insert are sorted now, once,
            # rather than waiting for a row group's worth of small inserts.
            after_sorted = self._wrote_sorted and self._settle_at == self.sorted_rows
            if self._unsettled_rows >= self._settle_at or (after_sorted and self._unsettled_rows):
                self._settle()
            return added

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN … COMMIT, rolled back when anything fails, the COMMIT included: a
        commit that could not write (a full disk) leaves the transaction open and
        aborted, and every later BEGIN failed on it, for good."""
        try:
            self._run("BEGIN TRANSACTION")
            yield
            self._run("COMMIT")
        except BaseException:
            with suppress(duckdb.Error):
                self._run("ROLLBACK")
            raise

    def _insert_events(self, groups: list[EventColumns], person_ids: list[list[str]]) -> int:
        """Prepare a slice's events as Arrow tables, one per event name with only the
        columns that event has; `_finish_events` inserts them."""
        groups, person_ids = first_received_columns(groups, person_ids, self._staged_uuids)
        by_name: dict[tuple[str, str], tuple[list[EventColumns], list[list[str]]]] = {}
        for group, persons in zip(groups, person_ids, strict=True):
            self._staged_uuids.update(group.uuid)
            named = by_name.setdefault((group.event, group.project), ([], []))
            named[0].append(group)
            named[1].append(persons)
        for (name, project), (named_groups, persons_of) in by_name.items():
            own = self.event_columns(project, name)
            columns = [c for c in self.columns if own.get(c.key) is c]
            self._staged.setdefault((name, project), []).append(
                events_table(named_groups, persons_of, columns, self.event_columns)
            )
        return 0

    def _finish_events(self) -> int:
        """Insert the prepared events, without those already stored. A row group's
        worth (or half of one) goes in `settled`: one event name at a time in name
        order, each sorted by time, each name's Arrow table released once DuckDB has
        its rows, so the two never hold the whole insert at once. A smaller insert is
        appended as it came, all names in one statement: a statement per name cost
        about 7 ms each, half of an insert of 10,000 events."""
        staged, self._staged = self._staged, {}
        uuids, self._staged_uuids = self._staged_uuids, set()
        if not uuids:
            return 0
        stored = self._stored_of_staged(staged, uuids)
        del uuids
        found = pa.array(sorted(stored), pa.string())
        rows: int = sum(t.num_rows for tables in staged.values() for t in tables) - len(stored)
        settled = rows >= self.insert_size // 2
        if not settled:  # the names' columns differ: each lacks the others', NULL
            every = [table for key in sorted(staged) for table in staged.pop(key)]
            staged = {("", ""): [pa.concat_tables(every, promote_options="default")]}
        for key in sorted(staged):
            table = pa.concat_tables(staged.pop(key))
            if stored:
                table = table.filter(pc.invert(pc.is_in(table["uuid"], value_set=found)))
            if settled:
                table = table.sort_by("timestamp")
            self._insert_staged(table, settled)
            del table
        if settled:
            self._wrote_sorted = True
        else:
            self._unsettled_rows += rows
        return rows

    def _stored_of_staged(
        self, staged: dict[tuple[str, str], list[pa.Table]], uuids: set[str]
    ) -> set[str]:
        """Which of the staged events' uuids are stored already (within their times)."""
        times = pc.min_max(
            pa.chunked_array(
                [t["timestamp"].cast(pa.int64()) for tables in staged.values() for t in tables]
            )
        )
        return self._stored_of(uuids, times["min"].as_py(), times["max"].as_py())

    def _insert_staged(self, table: pa.Table, settled: bool) -> None:
        typed = {c.name for c in self.columns}
        select = ", ".join(
            [
                "s.uuid::UUID AS uuid",
                "s.event",
                "s.distinct_id",
                "s.person_id",
                "s.timestamp",
                "s.created_at",
                "s.project",
                "s.ip_hash",
                "s.verdict",
                "s.violations::JSON AS violations",
                "s.plan_version",
                "s.properties_rest::JSON AS properties_rest",
                f"{str(settled).lower()} AS settled",
                *(f"s.{quote(name)}" for name in table.column_names if name in typed),
            ]
        )
        # BY NAME: the columns this event lacks are NULL. A plain projection of the
        # Arrow table, so DuckDB keeps its order.
        self._run_on(
            "staged_events",
            table,
            f"INSERT INTO events_data BY NAME SELECT {select} FROM staged_events s",
        )

    def _stored_of(self, uuids: set[str], first: int, last: int) -> set[str]:
        """Those of `uuids` already stored (a retry, or a replay of the log), looked
        for among events within a day of `first` and `last` (epoch microseconds)."""
        rows = self._run_on(
            "staged_uuids",
            pa.table({"uuid": pa.array(list(uuids), pa.string())}),
            f"""
            SELECT d.uuid::VARCHAR FROM events_data d
            WHERE d.timestamp BETWEEN make_timestamptz({int(first - DEDUPE_WINDOW_US)})
                                  AND make_timestamptz({int(last + DEDUPE_WINDOW_US)})
              AND d.uuid IN (SELECT uuid::UUID FROM staged_uuids)
            """,
        )
        return {uuid for (uuid,) in rows}

    def _settle(self) -> None:
        """Rewrite the table's tail, from the row group of its first unsettled row on,
        sorted by event then time, in a transaction of its own.

        Only the layout depends on it: when it fails (DuckDB runs out of its memory
        limit, say) the rows stay as they are and the next try waits for a row group
        more, so inserting never stops for it."""
        try:
            with self._transaction():
                # Up to the last unsettled row: whole sorted inserts after it stay put.
                [[first, last]] = self._run(
                    "SELECT min(rowid) FILTER (WHERE NOT settled), "
                    "max(rowid) FILTER (WHERE NOT settled) FROM events_data"
                )
                if first is not None:
                    start = first // ROW_GROUP_ROWS * ROW_GROUP_ROWS
                    # One event at a time: sorting the whole tail at once held every
                    # row of it (70-odd columns wide) in memory, over 122 MB for a row
                    # group's worth. The rows these statements append are the
                    # transaction's own, with row ids past every stored one: the delete
                    # below cannot reach them.
                    names = self._run(
                        "SELECT DISTINCT event FROM events_data WHERE rowid BETWEEN ? AND ? "
                        "ORDER BY event",
                        [start, last],
                    )
                    for [name] in names:
                        self._run(
                            "INSERT INTO events_data SELECT * REPLACE (true AS settled) "
                            "FROM events_data WHERE rowid BETWEEN ? AND ? AND event = ? "
                            "ORDER BY timestamp",
                            [start, last, name],
                        )
                    self._run("DELETE FROM events_data WHERE rowid BETWEEN ? AND ?", [start, last])
        except duckdb.Error as exc:
            self._settle_at = self._unsettled_rows + self.sorted_rows
            log.warning(
                "could not sort the newest %d events into place (%s); next try at %d",
                self._unsettled_rows,
                str(exc).splitlines()[0],
                self._settle_at,
            )
            return
        self._unsettled_rows = 0
        self._settle_at = self.sorted_rows

    def _insert_quarantine(self, events: list[StoredEvent]) -> int:
        rows = self._run_on(
            "staged_quarantine",
            quarantine_table(events),
            """
            INSERT INTO quarantine
            SELECT s.uuid::UUID, s.event, s.distinct_id, s.timestamp, s.created_at,
                   s.project, s.ip_hash, s.properties::JSON, s.person_set::JSON,
                   s.person_set_once::JSON, s.verdict, s.violations::JSON
            FROM staged_quarantine s
            WHERE NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.uuid = s.uuid::UUID)
            QUALIFY row_number() OVER (PARTITION BY s.uuid) = 1
            """,
        )
        return int(rows[0][0])

    # -- identity ----------------------------------------------------------------

    def _load_identity(self) -> None:
        if self._identities.loaded:
            return
        self._identities.load(
            self._run("SELECT project, distinct_id, person_id::VARCHAR FROM person_distinct_ids"),
            (
                (project, person, msgspec.json.decode(properties or "{}"))
                for project, person, properties in self._run(
                    "SELECT project, person_id::VARCHAR, properties FROM persons"
                )
            ),
            self._run(
                "SELECT project, old_person_id::VARCHAR, person_id::VARCHAR FROM person_overrides"
            ),
        )

    def _write_identity(self, changes: IdentityChanges) -> None:
        self._write_groups(changes.groups)
        for table, mapping, key in (
            ("person_distinct_ids", changes.distinct_ids, "distinct_id"),
            ("person_overrides", changes.overrides, "old_person_id"),
        ):
            if mapping:
                self._run_on(
                    "staged_identity",
                    identity_table(mapping, key),
                    f"INSERT OR REPLACE INTO {table} "
                    f"SELECT project, {key}, person_id FROM staged_identity",
                )
        if changes.people:
            self._write_people(changes.people)
        if changes.gone:  # one statement: a batch merges thousands of persons at times
            gone = pa.table(
                {
                    "project": [project for project, _ in changes.gone],
                    "person_id": [person for _, person in changes.gone],
                }
            )
            self._run_on(
                "staged_gone",
                gone,
                "DELETE FROM persons WHERE (project, person_id) IN "
                "(SELECT (project, person_id::UUID) FROM staged_gone)",
            )

    def _write_people(self, people: dict[tuple[str, str], dict[str, Any]]) -> None:
        table = pa.table(
            {
                "project": [p for p, _ in people],
                "person_id": [i for _, i in people],
                "properties": [_json.encode(v).decode() for v in people.values()],
            }
        )
        self._run_on(
            "staged_people",
            table,
            """
            INSERT INTO persons
            SELECT project, person_id, properties::JSON, now() FROM staged_people
            ON CONFLICT DO UPDATE SET properties = excluded.properties
            """,
        )

    def _write_groups(self, groups: Iterable[GroupUpdate]) -> None:
        for updates in update_rounds(groups):
            self._run_on(
                "staged_groups",
                pa.table(
                    {
                        "project": [g.project for g in updates],
                        "group_type": [g.group_type for g in updates],
                        "group_key": [g.group_key for g in updates],
                        "properties": [_json.encode(g.properties).decode() for g in updates],
                        "updated_at": pa.array([g.timestamp for g in updates], TIME),
                    }
                ),
                """
                INSERT INTO groups SELECT project, group_type, group_key, properties::JSON,
                  updated_at FROM staged_groups
                ON CONFLICT DO UPDATE SET
                  properties = json_merge_patch(groups.properties, excluded.properties),
                  updated_at = excluded.updated_at
                """,
            )

    # -- the forwarding outbox (gateway mode) ----------------------------------------

    def _enqueue_forward(self, events: list[StoredEvent]) -> None:
        """Queue events for PostHog in the insert's transaction: stored means queued."""
        if not events:
            return
        self._run_on(
            "staged_outbox",
            outbox_table(events),
            "INSERT OR IGNORE INTO outbox SELECT uuid, project, payload, now(), 0, now(), "
            "'pending', NULL FROM staged_outbox",
        )

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
            self._run("DELETE FROM outbox WHERE uuid IN (SELECT unnest(?::VARCHAR[]))", [uuids])

    def outbox_retry_later(self, uuids: list[str], delay_seconds: float, error: str) -> None:
        with self._lock, self._transaction():
            self._run(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                "next_attempt = now() + to_microseconds(?::BIGINT) "
                "WHERE uuid IN (SELECT unnest(?::VARCHAR[]))",
                [error, int(delay_seconds * 1_000_000), uuids],
            )

    def outbox_failed(self, uuids: list[str], error: str) -> None:
        with self._lock, self._transaction():
            self._run(
                "UPDATE outbox SET attempts = attempts + 1, state = 'failed', last_error = ? "
                "WHERE uuid IN (SELECT unnest(?::VARCHAR[]))",
                [error, uuids],
            )

    def outbox_requeue_failed(self, project: str | None = None) -> int:
        with self._lock:
            rows = self._run(
                "UPDATE outbox SET state = 'pending', next_attempt = now() "
                "WHERE state = 'failed' AND (? IS NULL OR project = ?)",
                [project, project],
            )
        return int(rows[0][0]) if rows else 0

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

    def rejudge(
        self,
        judged: Callable[[str], str],
        tables: dict[str, pa.Table],
        project: str,
        version: str,
        since_us: int | None = None,
    ) -> list[tuple[str, str, int]]:
        """`Store.rejudge`: the judged verdicts in a temporary table, then one UPDATE,
        in one transaction."""
        since = "" if since_us is None else f"AND e.timestamp >= make_timestamptz({since_us:d})"
        # Folded once: the judging statement reads `properties` in more than one place,
        # and DuckDB folded the typed columns back into JSON for each (300,000 events:
        # 3.45 s as a subquery, 2.20 s materialized).
        source = f"""
            WITH stored AS MATERIALIZED (
                SELECT e.uuid, e.event, {self.properties_sql("e")} AS properties,
                    e.violations AS captured
                FROM events_data e WHERE e.project = $project {since}
            )
            SELECT * FROM stored
        """
        with self._lock, self._store_failures():
            for name, table in tables.items():
                self._conn.register(name, table)
            try:
                with self._transaction():
                    self._conn.execute(
                        "CREATE OR REPLACE TEMP TABLE rejudged AS "
                        f"SELECT uuid, verdict, violations FROM ({judged(source)})",
                        {"project": project},
                    ).fetchall()
                    changes = self._run(REJUDGE_CHANGES, [project])
                    self._run(REJUDGE_UPDATE, [version, project])
                    self._run("DROP TABLE rejudged")
            finally:
                for name in tables:
                    self._conn.unregister(name)
        return [(str(before), str(after), int(count)) for before, after, count in changes]

    def delete_quarantined(self, uuids: list[str]) -> None:
        with self._lock:
            self._run(
                "DELETE FROM quarantine WHERE uuid IN (SELECT unnest(?::VARCHAR[])::UUID)",
                [uuids],
            )

    # -- reading -----------------------------------------------------------------

    def sql(
        self,
        query: str,
        parameters: list[Any] | None = None,
        max_rows: int | None = None,
        timeout: float | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only statement; returns column names and rows."""
        cursor = self._select(query)
        # DuckDB has no statement timeout of its own: a timer interrupts the cursor.
        timer = threading.Timer(timeout, cursor.interrupt) if timeout else None
        try:
            if timer is not None:
                timer.start()
            result = cursor.execute(query, parameters or [])
            columns = [d[0] for d in result.description or []]
            rows = result.fetchall() if max_rows is None else result.fetchmany(max_rows)
        except duckdb.InterruptException as exc:
            raise QueryError(f"the query ran longer than {timeout:g} s and was stopped") from exc
        except duckdb.OutOfMemoryException as exc:
            raise self._busy() from exc
        except duckdb.Error as exc:
            if is_store_failure(exc):
                raise self._unavailable(exc) from exc
            raise QueryError(str(exc).split("\n")[0]) from exc
        finally:
            if timer is not None:
                timer.cancel()
            cursor.close()
        return columns, rows

    def arrow(self, query: str, parameters: list[Any] | None = None) -> pa.Table:
        with self._reading(query) as cursor:
            table: pa.Table = cursor.sql(query, params=parameters or None).to_arrow_table()
        return table

    def arrow_batches(
        self, query: str, parameters: list[Any] | None = None
    ) -> Iterator[pa.RecordBatch]:
        try:
            with self._reading(query) as cursor:
                relation = cursor.sql(query, params=parameters or None)
                yield from relation.to_arrow_reader(READ_BATCH_ROWS)
        finally:
            # Millions of rows went through in batches; their freed pages go back now.
            release_free_memory()

    @contextmanager
    def _reading(self, query: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only cursor for `query`, closed after; the engine's errors as ours."""
        cursor = self._select(query)
        try:
            yield cursor
        except duckdb.OutOfMemoryException as exc:
            raise self._busy() from exc
        except duckdb.Error as exc:
            if is_store_failure(exc):
                raise self._unavailable(exc) from exc
            raise QueryError(str(exc).split("\n")[0]) from exc
        finally:
            cursor.close()

    def _busy(self) -> StoreBusy:
        limit = self._config.get("memory_limit", "DuckDB's default")
        return StoreBusy(
            f"the query needed more memory than the store may use ({limit}): try again, "
            "ask for a shorter range, or serve with a larger --memory-limit"
        )

    def _select(self, query: str) -> duckdb.DuckDBPyConnection:
        """A cursor for one statement that only reads."""
        with self._store_failures():
            cursor = self._conn.cursor()
        try:
            statements = cursor.extract_statements(query)
            if len(statements) != 1:
                raise QueryError(f"send exactly one statement, not {len(statements)}")
            if statements[0].type != duckdb.StatementType.SELECT:
                raise QueryError(
                    f"only SELECT queries are allowed here, not {statements[0].type.name}"
                )
        except duckdb.Error as exc:
            cursor.close()
            raise QueryError(f"the query does not parse: {exc}") from exc
        except QueryError:
            cursor.close()
            raise
        return cursor

    def close(self) -> None:
        with self._lock, suppress(duckdb.FatalException):  # an invalidated one is closed
            self._conn.close()
