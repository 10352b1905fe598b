"""The event store on ClickHouse: a server over HTTP, or the engine in-process (chDB).

The schema follows PostHog's own events table: a `ReplacingMergeTree` partitioned
by month and ordered `(project, event, day, distinct id hash, uuid hash)`, so a
per-event, per-day scan reads few granules and a re-inserted uuid collapses on
merge. Inserts are never one per request: the background writer hands over the
write-ahead log in large batches, and a batch checks the uuids it carries against
recent rows first, so a retried or replayed batch adds nothing.

ClickHouse has no transactions, so every other table is versioned
(`ReplacingMergeTree(version[, deleted])`) and read through a view with `FINAL`:
an update or a delete is one more insert, and replaying a batch after a crash
writes the same rows again harmlessly.

One adapter, clickhouse-connect, talks to both places ClickHouse runs: a server or
cluster over HTTP (`clickhouse://`), and chDB, the ClickHouse engine as a library
(`chdb:DIR`: one machine without a server, and the tests).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import pyarrow as pa

from eventplan.errors import EventplanError
from eventplan.plan.forwarding import ForwardRules
from eventplan.plan.model import Plan, PropertyType
from eventplan.store.base import DEDUPE_WINDOW_US, QueryError, Store, StoreUnavailable
from eventplan.store.columns import Column, quote
from eventplan.store.identity import GroupUpdate, IdentityChanges
from eventplan.store.records import (
    EventColumns,
    StoredEvent,
    first_received,
    first_received_columns,
)
from eventplan.store.rows import (
    TIME,
    events_table,
    identity_table,
    outbox_table,
    quarantine_table,
)

_json = msgspec.json.Encoder()
SESSION_SETTINGS = {"join_use_nulls": 1}  # an unmatched LEFT JOIN gives NULL, as in SQL
UUID_CHUNK = 4_000  # uuids per literal list (deletes, outbox updates): under max_query_size
GROUP_CHUNK = 1_000  # (project, type, key) triples per literal list, likewise

CH_TYPES: dict[str, str] = {
    "string": "Nullable(String)",
    "integer": "Nullable(Int64)",
    "number": "Nullable(Float64)",
    "boolean": "Nullable(Bool)",
    "datetime": "Nullable(String)",
}

EVENTS_COLUMNS = """
    uuid UUID,
    event LowCardinality(String),
    distinct_id String,
    person_id Nullable(UUID),
    timestamp DateTime64(6, 'UTC'),
    created_at DateTime64(6, 'UTC'),
    project LowCardinality(String),
    ip_hash Nullable(String),
    verdict LowCardinality(String),
    violations Nullable(String),
    properties_rest Nullable(String),
    plan_version LowCardinality(String)"""
EVENTS_ORDER = "(project, event, toDate(timestamp), cityHash64(distinct_id), cityHash64(uuid))"


@dataclass(frozen=True)
class VersionedTable:
    """A mutable table: `<name>_rows` (ReplacingMergeTree) read through a FINAL view `<name>`."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (name, type), as the view shows them
    order: str
    deletable: bool = False  # a `deleted` flag that FINAL honours

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]

    @property
    def engine_arguments(self) -> str:
        return "version, deleted" if self.deletable else "version"


TIME_UTC = "DateTime64(6, 'UTC')"
VERSIONED: tuple[VersionedTable, ...] = (
    VersionedTable("meta", (("key", "String"), ("value", "String")), "key"),
    VersionedTable(
        "quarantine",
        (
            ("uuid", "UUID"),
            ("event", "String"),
            ("distinct_id", "String"),
            ("timestamp", TIME_UTC),
            ("created_at", TIME_UTC),
            ("project", "LowCardinality(String)"),
            ("ip_hash", "Nullable(String)"),
            ("properties", "String"),
            ("person_set", "Nullable(String)"),
            ("person_set_once", "Nullable(String)"),
            ("verdict", "String"),
            ("violations", "Nullable(String)"),
        ),
        "(project, uuid)",
        deletable=True,
    ),
    VersionedTable(
        "person_distinct_ids",
        (("project", "LowCardinality(String)"), ("distinct_id", "String"), ("person_id", "UUID")),
        "(project, distinct_id)",
    ),
    VersionedTable(
        "person_overrides",
        (("project", "LowCardinality(String)"), ("old_person_id", "UUID"), ("person_id", "UUID")),
        "(project, old_person_id)",
    ),
    VersionedTable(
        "persons",
        (
            ("project", "LowCardinality(String)"),
            ("person_id", "UUID"),
            ("properties", "String"),
            ("created_at", TIME_UTC),
        ),
        "(project, person_id)",
        deletable=True,
    ),
    VersionedTable(
        "groups",
        (
            ("project", "LowCardinality(String)"),
            ("group_type", "String"),
            ("group_key", "String"),
            ("properties", "String"),
            ("updated_at", TIME_UTC),
        ),
        "(project, group_type, group_key)",
    ),
    VersionedTable(
        "outbox",
        (
            ("uuid", "String"),
            ("project", "LowCardinality(String)"),
            ("payload", "String"),
            ("created_at", TIME_UTC),
            ("attempts", "Int32"),
            ("next_attempt", TIME_UTC),
            ("state", "LowCardinality(String)"),
            ("last_error", "Nullable(String)"),
        ),
        "uuid",
        deletable=True,
    ),
    VersionedTable(
        "alert_history",
        (
            ("project", "LowCardinality(String)"),
            ("alert", "String"),
            ("kind", "String"),
            ("subject", "String"),
            ("state", "String"),
            ("value", "Nullable(Float64)"),
            ("threshold", "Nullable(String)"),
            ("owner", "String"),
            ("changed_at", TIME_UTC),
            ("notified", "Bool"),
        ),
        "(project, alert, subject, state, changed_at)",
    ),
)
VERSIONED_BY_NAME = {table.name: table for table in VERSIONED}


# alert_history's columns: (column, the key of an alert change, Arrow type)
ALERT_HISTORY_COLUMNS = (
    *((name, name, pa.string()) for name in ("project", "alert", "kind", "subject", "state")),
    ("value", "value", pa.float64()),
    ("threshold", "threshold", pa.string()),
    ("owner", "owner", pa.string()),
    ("changed_at", "at", pa.timestamp("us", tz="UTC")),
)


def enum_properties(plans: Iterable[Plan]) -> frozenset[str]:
    """Planned properties with a closed set of values: LowCardinality pays for them."""
    return frozenset(
        prop.name
        for plan in plans
        for event in plan.events
        for prop in plan.properties_of(event).values()
        if prop.enum
    )


def schema_ddl(
    columns: Sequence[Column] = (),
    enums: frozenset[str] = frozenset(),
    cluster: str | None = None,
    database: str | None = None,
) -> list[str]:
    """Every statement that creates the schema; with a cluster, local tables on each
    shard plus `Distributed` tables sharded by distinct id, as PostHog runs it."""
    on = f" ON CLUSTER {quote(cluster)}" if cluster else ""
    prefix = f"{quote(database)}." if database else ""
    local = "_local" if cluster else ""
    replicated = "Replicated" if cluster else ""
    typed = "".join(f",\n    {quote(c.name)} {_column_type(c, enums)}" for c in columns)
    statements = [
        f"CREATE TABLE IF NOT EXISTS {prefix}events_data{local}{on} ({EVENTS_COLUMNS}{typed}\n)"
        f" ENGINE = {replicated}ReplacingMergeTree(created_at)"
        f" PARTITION BY toYYYYMM(timestamp) ORDER BY {EVENTS_ORDER}",
        f"CREATE TABLE IF NOT EXISTS {prefix}column_catalog{local}{on} "
        "(name String, property String, type String) "
        f"ENGINE = {replicated}ReplacingMergeTree ORDER BY name",
    ]
    for table in VERSIONED:
        body = ", ".join(f"{name} {type_}" for name, type_ in table.columns)
        extra = ", version UInt64" + (", deleted UInt8" if table.deletable else "")
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {prefix}{table.name}_rows{local}{on} ({body}{extra}) "
            f"ENGINE = {replicated}ReplacingMergeTree({table.engine_arguments}) "
            f"ORDER BY {table.order}"
        )
    # A store from before plan versions were kept: its events say "" (not recorded).
    for name in ["events_data_local", "events_data"] if cluster else ["events_data"]:
        statements.append(
            f"ALTER TABLE {prefix}{name}{on} ADD COLUMN IF NOT EXISTS "
            "plan_version LowCardinality(String)"
        )
    for column in columns:  # a plan that grew: re-running the DDL adds its columns
        for name in ["events_data_local", "events_data"] if cluster else ["events_data"]:
            statements.append(
                f"ALTER TABLE {prefix}{name}{on} ADD COLUMN IF NOT EXISTS "
                f"{quote(column.name)} {_column_type(column, enums)}"
            )
    if cluster:
        home = value_sql(database) if database else "currentDatabase()"
        # Every version of a row must land on one shard, or FINAL cannot collapse it.
        names = ["events_data", "column_catalog", *(f"{t.name}_rows" for t in VERSIONED)]
        for name in names:
            key = SHARD_KEYS[name.removesuffix("_rows")]
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {prefix}{name}{on} AS {prefix}{name}_local "
                f"ENGINE = Distributed({quote(cluster)}, {home}, {name}_local, {key})"
            )
    for table in VERSIONED:
        statements.append(
            f"CREATE VIEW IF NOT EXISTS {prefix}{table.name}{on} AS "
            f"SELECT * EXCEPT (version{', deleted' if table.deletable else ''}) "
            f"FROM {prefix}{table.name}_rows FINAL"
        )
    return statements


SHARD_KEYS = {
    "events_data": "sipHash64(distinct_id)",  # a retry has the same distinct id: same shard
    "column_catalog": "sipHash64(name)",
    "meta": "sipHash64(key)",
    "quarantine": "sipHash64(uuid)",
    "person_distinct_ids": "sipHash64(distinct_id)",
    "person_overrides": "sipHash64(old_person_id)",
    "persons": "sipHash64(person_id)",
    "groups": "sipHash64(group_type, group_key)",
    "outbox": "sipHash64(uuid)",
    "alert_history": "sipHash64(alert, subject)",
}


def _column_type(column: Column, enums: frozenset[str]) -> str:
    sql = CH_TYPES[column.type]
    return f"LowCardinality({sql})" if column.type == "string" and column.key in enums else sql


# -- parameters -------------------------------------------------------------------------


def value_sql(value: Any) -> str:
    """A Python value as a ClickHouse literal (the `?` placeholders are bound here)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "NULL"
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return f"toDateTime64('{moment.strftime('%Y-%m-%d %H:%M:%S.%f')}', 6, 'UTC')"
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_sql(v) for v in value) + "]"
    text = str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unquoted(sql: str) -> str:
    """The SQL text with every quoted literal and identifier left out."""
    return "".join(piece for piece, quoted in _pieces(sql) if not quoted)


def _pieces(sql: str) -> list[tuple[str, bool]]:
    """The text cut into (piece, inside quotes) parts; quotes escape with \\ or doubling."""
    pieces: list[tuple[str, bool]] = []
    start, quote_char, i = 0, "", 0
    while i < len(sql):
        char = sql[i]
        if quote_char:
            if char == "\\":
                i += 1
            elif char == quote_char:
                pieces.append((sql[start : i + 1], True))
                start, quote_char = i + 1, ""
        elif char in "'\"`":
            pieces.append((sql[start:i], False))
            start, quote_char = i, char
        i += 1
    pieces.append((sql[start:], bool(quote_char)))
    return pieces


def bind(sql: str, parameters: Sequence[Any]) -> str:
    """Replace each `?` outside quotes with its value, in order."""
    values = list(parameters)
    out: list[str] = []
    used = 0
    for piece, quoted in _pieces(sql):
        if quoted:
            out.append(piece)
            continue
        parts = piece.split("?")
        out.append(parts[0])
        for part in parts[1:]:
            if used == len(values):
                raise QueryError("the query has more ? placeholders than values")
            out.append(value_sql(values[used]) + part)
            used += 1
    if used != len(values):
        raise QueryError(f"the query has {used} ? placeholders for {len(values)} values")
    return "".join(out)


# -- the engine --------------------------------------------------------------------------


# ClickHouse's words for a server that cannot write (error 243, a full disk).
UNAVAILABLE = ("NOT_ENOUGH_SPACE", "No space left on device", "Cannot reserve")


class Engine:
    """One clickhouse-connect client: over HTTP to a server, or chDB in this process.

    Both transports are clickhouse-connect's own, so the adapter the tests run on chDB
    is the code that talks to a production server.
    """

    def __init__(self, client: Any, location: str) -> None:
        self._client = client
        self.location = location  # for messages: never holds a password
        self._lock = threading.Lock()

    @staticmethod
    def parse_url(url: str) -> dict[str, Any]:
        """`clickhouse[s]://user:pass@host:port/database?setting=value` as client arguments."""
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouses"):
            raise EventplanError(f"not a ClickHouse URL (clickhouse://…): {redact(url)}")
        if not parts.hostname:
            raise EventplanError(f"the ClickHouse URL has no host: {redact(url)}")
        try:
            port = parts.port
        except ValueError as exc:
            raise EventplanError(f"the ClickHouse URL has a bad port: {redact(url)}") from exc
        secure = parts.scheme == "clickhouses"
        database = unquote(parts.path.strip("/")) or "default"
        if "/" in database:
            raise EventplanError(f"the ClickHouse URL names one database: {redact(url)}")
        settings = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "host": parts.hostname,
            "port": port or (8443 if secure else 8123),
            "username": unquote(parts.username or "default"),
            "password": unquote(parts.password or ""),
            "database": database,
            "secure": secure,
            "settings": {**SESSION_SETTINGS, **settings},
        }

    @classmethod
    def connect(cls, db: str) -> Engine:
        """`clickhouse://…` (a server) or `chdb:DIR` (the engine in-process)."""
        import clickhouse_connect

        if db.startswith("chdb:"):
            path = db.removeprefix("chdb:")
            arguments: dict[str, Any] = {
                "interface": "chdb",
                "path": path,
                "settings": SESSION_SETTINGS,
            }
            location = db
        else:
            arguments = cls.parse_url(db)
            location = redact(db)
        try:
            client = clickhouse_connect.get_client(**arguments)
        except ImportError as exc:
            raise EventplanError(
                "chdb:DIR needs the chdb package: pip install 'eventplan[clickhouse]'"
            ) from exc
        except Exception as exc:  # refused, auth, TLS, a locked folder: say which store
            raise EventplanError(
                f"cannot open ClickHouse at {location}: {_first_line(exc)}"
            ) from exc
        return cls(client, location)

    def query(self, sql: str, timeout: float | None = None) -> pa.Table:
        settings = {"max_execution_time": timeout} if timeout else None
        with self._lock:
            try:
                result: pa.Table = self._client.query_arrow(sql, settings=settings)
            except Exception as exc:
                self._raise_if_unavailable(exc)
                if timeout and "TIMEOUT_EXCEEDED" in str(exc):
                    raise QueryError(
                        f"the query ran longer than {timeout:g} s and was stopped"
                    ) from exc
                raise QueryError(_first_line(exc)) from exc
        return result

    def command(self, sql: str) -> None:
        with self._lock:
            try:
                self._client.command(sql)
            except Exception as exc:
                self._raise_if_unavailable(exc)
                raise EventplanError(f"{self.location}: {_first_line(exc)}") from exc

    def insert(self, table: str, data: pa.Table) -> None:
        """One insert of a whole Arrow table; columns by name, converted by ClickHouse."""
        with self._lock:
            try:
                self._client.insert_arrow(table, data)
            except Exception as exc:
                self._raise_if_unavailable(exc)
                raise EventplanError(f"{self.location}: insert failed: {_first_line(exc)}") from exc

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def _raise_if_unavailable(self, exc: Exception) -> None:
        """A server out of reach, or out of disk, as StoreUnavailable: the store is
        failing, not the statement."""
        from clickhouse_connect.driver.exceptions import OperationalError

        text = str(exc)
        if isinstance(exc, OperationalError) or any(mark in text for mark in UNAVAILABLE):
            raise StoreUnavailable(f"{self.location} is failing: {_first_line(exc)}") from exc


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.partition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.split("\n")[0] if text else type(exc).__name__


# -- the store --------------------------------------------------------------------------


class ClickHouseStore(Store):
    dialect = "clickhouse"

    def __init__(self, engine: Engine, plans: Iterable[Plan] = (), read_only: bool = False):
        super().__init__(plans)
        self.engine = engine
        self.location = engine.location
        self.read_only = read_only
        self._lock = threading.RLock()
        self._last_version = 0
        self._scratch_table: str | None = None
        if not read_only:
            self._ensure_schema()
        self._load_catalog()

    def _rows(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        table = self.engine.query(bind(sql, parameters) if parameters else sql)
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))

    def _version(self) -> int:
        """Increasing versions for ReplacingMergeTree rows: the latest write wins."""
        self._last_version = max(self._last_version + 1, time.time_ns())
        return self._last_version

    # -- schema ------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        with self._lock:
            self.engine.command(schema_ddl()[1])  # the column catalogue first
            catalog = self._catalog()
            added = self._new_columns(catalog)
            known = [Column(n, p, cast(PropertyType, t)) for n, p, t in catalog]
            # A new table gets every typed column at once; an existing one only the new.
            exists = self._rows("EXISTS TABLE events_data")[0][0]
            had_overrides = self._rows("EXISTS TABLE person_overrides_rows")[0][0]
            enums = enum_properties(self._plans.values())
            for statement in schema_ddl(known + added if not exists else added, enums):
                if exists or not statement.startswith("ALTER"):
                    self.engine.command(statement)
            if added:
                self.engine.insert(
                    "column_catalog",
                    pa.table(
                        {
                            "name": [c.name for c in added],
                            "property": [c.key for c in added],
                            "type": [c.type for c in added],
                        }
                    ),
                )
            self._use_catalog(self._catalog())
            self.engine.command(self._view_sql())
            if exists and not had_overrides:
                self._derive_overrides()

    def _derive_overrides(self) -> None:
        """A store from before person overrides: each event's stored person that is no
        longer its distinct id's person was merged into that one."""
        self.engine.command(
            f"""
            INSERT INTO person_overrides_rows (project, old_person_id, person_id, version)
            SELECT e.project, e.person_id, any(m.person_id), {self._version()}
            FROM events_data e
            JOIN person_distinct_ids m ON m.project = e.project AND m.distinct_id = e.distinct_id
            WHERE e.person_id IS NOT NULL AND e.person_id != m.person_id
            GROUP BY e.project, e.person_id
            """
        )

    def _catalog(self) -> list[tuple[str, str, str]]:
        return [
            (str(n), str(p), str(t))
            for n, p, t in self._rows("SELECT name, property, type FROM column_catalog FINAL")
        ]

    def _load_catalog(self) -> None:
        try:
            self._use_catalog(self._catalog())
        except QueryError:
            self._use_catalog([])

    def properties_sql(self, table: str = "e") -> str:
        """An event's whole `properties` as JSON text: the rest, with the typed columns
        of `events_data` (aliased `table`) folded back in."""
        pieces = []
        for column in self.columns:
            key = _json.encode(column.key).decode().replace("\\", "\\\\").replace("'", "\\'")
            pieces.append(
                f"if(isNull({table}.{quote(column.name)}), '', "
                f"concat('{key}:', toJSONString(assumeNotNull({table}.{quote(column.name)}))))"
            )
        rest = (
            f"if(isNull({table}.properties_rest), '', substring({table}.properties_rest, 2, "
            f"length({table}.properties_rest) - 2))"
        )
        parts = ", ".join([rest, *pieces])
        return f"concat('{{', arrayStringConcat(arrayFilter(x -> x != '', [{parts}]), ','), '}}')"

    def _view_sql(self) -> str:
        """`events`: PostHog's shape, the typed columns folded back into `properties`."""
        return f"""
            CREATE OR REPLACE VIEW events AS
            SELECT e.uuid AS uuid, e.event AS event, e.distinct_id AS distinct_id,
                   COALESCE(o.person_id, e.person_id) AS person_id,
                   e.timestamp AS timestamp, e.created_at AS created_at, e.project AS project,
                   e.ip_hash AS ip_hash, {self.properties_sql()} AS properties,
                   e.verdict AS verdict, e.violations AS violations,
                   e.plan_version AS plan_version
            FROM events_data e
            LEFT JOIN (SELECT project, old_person_id, argMax(person_id, version) AS person_id
                       FROM person_overrides_rows GROUP BY project, old_person_id) o
              ON o.project = e.project AND o.old_person_id = e.person_id
            SETTINGS join_use_nulls = 1
        """

    # -- meta --------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", [key])
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self.engine.insert(
                "meta_rows",
                pa.table(
                    {
                        "key": [key],
                        "value": [value],
                        "version": pa.array([self._version()], pa.uint64()),
                    }
                ),
            )

    # -- writing -----------------------------------------------------------------

    def insert_columns(
        self,
        groups: Iterable[EventColumns],
        wal_seq: int,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, ForwardRules] | None = None,
    ) -> int:
        # No transaction: each step is idempotent, and the log position is written
        # last, so a crash in between replays the batch onto what is already there.
        with self._lock:
            added = self._write_batch(groups, quarantine, forward)
            self.set_meta("wal_seq", str(wal_seq))
            return added

    def _stored_uuids(
        self, table: str, uuids: list[str], times: list[int] | None = None
    ) -> set[str]:
        """Those of `uuids` already in `table` (for events, within ±24 h of `times`).

        The uuids go in as one binary insert to a scratch table: parsing a literal
        list of 100k uuids costs ClickHouse seconds, the insert milliseconds.
        """
        scratch = self._scratch()
        self.engine.command(f"TRUNCATE TABLE {scratch}")
        self.engine.insert(scratch, pa.table({"uuid": uuids}))
        where = f"uuid GLOBAL IN (SELECT uuid FROM {scratch})"  # GLOBAL: one list for all shards
        if times is not None:
            low = min(times) - DEDUPE_WINDOW_US
            high = max(times) + DEDUPE_WINDOW_US
            where += (
                f" AND timestamp BETWEEN fromUnixTimestamp64Micro({low}, 'UTC') "
                f"AND fromUnixTimestamp64Micro({high}, 'UTC')"
            )
        return {str(u) for (u,) in self._rows(f"SELECT uuid FROM {table} WHERE {where}")}

    def _scratch(self) -> str:
        """This writer's own Memory table for lookups (two servers may share a database)."""
        if self._scratch_table is None:
            name = f"batch_uuids_{os.getpid()}_{secrets.token_hex(4)}"
            self.engine.command(f"CREATE TABLE IF NOT EXISTS {name} (uuid UUID) ENGINE = Memory")
            self._scratch_table = name
        return self._scratch_table

    def _insert_events(self, groups: list[EventColumns], person_ids: list[list[str]]) -> int:
        if not groups:
            return 0
        uuids = [uuid for group in groups for uuid in group.uuid]
        times = [time for group in groups for time in group.timestamp]
        stored = self._stored_uuids("events_data", uuids, times)
        fresh, person_ids = first_received_columns(groups, person_ids, stored)
        if not fresh:
            return 0
        staged = events_table(fresh, person_ids, self.columns, self.event_columns)
        self.engine.insert("events_data", staged)
        return sum(group.size for group in fresh)

    def _insert_quarantine(self, events: list[StoredEvent]) -> int:
        fresh = first_received(events, self._stored_uuids("quarantine", [e.uuid for e in events]))
        if not fresh:
            return 0
        staged = quarantine_table(fresh).append_column(
            "version", pa.array([self._version()] * len(fresh), pa.uint64())
        )
        self.engine.insert("quarantine_rows", staged)
        return len(fresh)

    def rejudge(
        self,
        judged: Callable[[str], str],
        tables: dict[str, pa.Table],
        project: str,
        version: str,
        since_us: int | None = None,
    ) -> list[tuple[str, str, int]]:
        """`Store.rejudge`: the judged verdicts into a `Join` table by uuid, then one
        mutation of `events_data` that reads them with `joinGet` (ClickHouse updates
        rows only by mutation; a newer copy of each row would count twice until
        merged). Not for a cluster's `Distributed` tables. `tables`: none here, the
        ClickHouse compilation carries its plan in the statement."""
        since = (
            ""
            if since_us is None
            else f"AND e.timestamp >= fromUnixTimestamp64Micro({since_us:d}, 'UTC')"
        )
        source = f"""
            SELECT e.uuid AS uuid, e.event AS event, {self.properties_sql("e")} AS properties,
                e.violations AS captured
            FROM events_data e WHERE e.project = {value_sql(project)} {since}
        """
        database = self._rows("SELECT currentDatabase()")[0][0]
        name = f"rejudged_{os.getpid()}_{secrets.token_hex(4)}"
        table = value_sql(f"{database}.{name}")
        after = f"ifNull(joinGet({table}, 'verdict', uuid), '')"
        with self._lock:
            self.engine.command(
                f"CREATE TABLE {name} (uuid UUID, verdict String, violations Nullable(String)) "
                "ENGINE = Join(ANY, LEFT, uuid)"
            )
            try:
                self.engine.command(
                    f"INSERT INTO {name} SELECT uuid, verdict, violations FROM ({judged(source)})"
                )
                changes = self._rows(
                    f"SELECT verdict, {after} AS after, count() FROM events_data "
                    f"WHERE project = {value_sql(project)} AND after != '' AND verdict != after "
                    "GROUP BY ALL ORDER BY ALL"
                )
                self._mutate(
                    f"ALTER TABLE events_data UPDATE verdict = {after}, "
                    f"violations = joinGet({table}, 'violations', uuid), "
                    f"plan_version = {value_sql(version)} "
                    f"WHERE project = {value_sql(project)} AND {after} != ''",
                    name,
                )
            finally:
                self.engine.command(f"DROP TABLE IF EXISTS {name}")
        return [(str(before), str(after), int(count)) for before, after, count in changes]

    def _mutate(self, statement: str, mark: str) -> None:
        """Run a mutation to its end; one that failed is killed rather than left to be
        retried in the background (it reads `mark`, a table about to be dropped)."""
        try:
            self.engine.command(
                f"{statement} SETTINGS mutations_sync = 2, allow_nondeterministic_mutations = 1"
            )
        except EventplanError:
            with contextlib.suppress(EventplanError):  # the mutation's own error matters
                self.engine.command(
                    "KILL MUTATION WHERE table = 'events_data' "
                    f"AND command LIKE {value_sql(f'%{mark}%')}"
                )
            raise

    def delete_quarantined(self, uuids: list[str]) -> None:
        self._copy_by_uuid("quarantine", uuids, {"deleted": "1"})

    def _copy_by_uuid(self, table: str, uuids: list[str], changes: dict[str, str]) -> None:
        with self._lock:
            for start in range(0, len(uuids), UUID_CHUNK):
                marks = ", ".join(value_sql(u) for u in uuids[start : start + UUID_CHUNK])
                self._copy_versioned(table, f"uuid IN ({marks})", changes)

    def _copy_versioned(self, name: str, where: str, changes: dict[str, str]) -> None:
        """Update rows of a versioned table: insert changed copies with a new version."""
        table = VERSIONED_BY_NAME[name]
        columns = table.column_names
        chosen = [changes.get(c, c) for c in columns]
        extra = [str(self._version())]
        names = [*columns, "version"]
        if table.deletable:
            extra.append(changes.get("deleted", "0"))
            names.append("deleted")
        self.engine.command(
            f"INSERT INTO {name}_rows ({', '.join(names)}) "
            f"SELECT {', '.join(chosen + extra)} FROM {name} WHERE {where}"
        )

    # -- identity ----------------------------------------------------------------

    def _load_identity(self) -> None:
        if self._identities.loaded:
            return
        self._identities.load(
            [
                (str(p), str(d), str(i))
                for p, d, i in self._rows(
                    "SELECT project, distinct_id, person_id FROM person_distinct_ids"
                )
            ],
            [
                (str(p), str(i), msgspec.json.decode(props or "{}"))
                for p, i, props in self._rows("SELECT project, person_id, properties FROM persons")
            ],
            [
                (str(p), str(o), str(i))
                for p, o, i in self._rows(
                    "SELECT project, old_person_id, person_id FROM person_overrides"
                )
            ],
        )

    def _write_identity(self, changes: IdentityChanges) -> None:
        if changes.groups:
            self._write_groups(changes.groups)
        for table, mapping, key in (
            ("person_distinct_ids_rows", changes.distinct_ids, "distinct_id"),
            ("person_overrides_rows", changes.overrides, "old_person_id"),
        ):
            if mapping:
                rows = identity_table(mapping, key)
                versions = pa.array([self._version()] * len(mapping), pa.uint64())
                self.engine.insert(table, rows.append_column("version", versions))
        people = [(key, props, 0) for key, props in changes.people.items()]
        people += [(key, {}, 1) for key in changes.gone]
        if people:
            version = self._version()
            now = int(time.time() * 1_000_000)
            self.engine.insert(
                "persons_rows",
                pa.table(
                    {
                        "project": [p for (p, _), _, _ in people],
                        "person_id": [i for (_, i), _, _ in people],
                        "properties": [_json.encode(v).decode() for _, v, _ in people],
                        "created_at": pa.array([now] * len(people), pa.timestamp("us", tz="UTC")),
                        "version": pa.array([version] * len(people), pa.uint64()),
                        "deleted": pa.array([d for _, _, d in people], pa.uint8()),
                    }
                ),
            )

    def _write_groups(self, updates: list[GroupUpdate]) -> None:
        """Each group's stored properties, updated by the batch's updates in order, as one
        insert: a row per group with its final state (one read, not one per update)."""
        keys = list(dict.fromkeys((g.project, g.group_type, g.group_key) for g in updates))
        merged = self._group_properties(keys)
        updated_at: dict[tuple[str, str, str], int] = {}
        for group in updates:
            key = (group.project, group.group_type, group.group_key)
            merged.setdefault(key, {}).update(group.properties)
            updated_at[key] = group.timestamp
        self.engine.insert(
            "groups_rows",
            pa.table(
                {
                    "project": [project for project, _, _ in keys],
                    "group_type": [group_type for _, group_type, _ in keys],
                    "group_key": [group_key for _, _, group_key in keys],
                    "properties": [_json.encode(merged[key]).decode() for key in keys],
                    "updated_at": pa.array([updated_at[key] for key in keys], TIME),
                    "version": pa.array([self._version()] * len(keys), pa.uint64()),
                }
            ),
        )

    def _group_properties(
        self, keys: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], dict[str, Any]]:
        """The stored properties of these groups (project, type, key), read in chunks."""
        found: dict[tuple[str, str, str], dict[str, Any]] = {}
        for start in range(0, len(keys), GROUP_CHUNK):
            wanted = ", ".join(
                f"({', '.join(value_sql(part) for part in key)})"
                for key in keys[start : start + GROUP_CHUNK]
            )
            for project, group_type, group_key, properties in self._rows(
                "SELECT project, group_type, group_key, properties FROM groups "
                f"WHERE (project, group_type, group_key) IN ({wanted})"
            ):
                key = (str(project), str(group_type), str(group_key))
                found[key] = msgspec.json.decode(properties)
        return found

    # -- the forwarding outbox (gateway mode) --------------------------------------

    def _enqueue_forward(self, events: list[StoredEvent]) -> None:
        queued = outbox_table(events)
        now = pa.array([int(time.time() * 1_000_000)] * len(events), TIME)
        columns = {
            "created_at": now,
            "attempts": pa.array([0] * len(events), pa.int32()),
            "next_attempt": now,
            "state": pa.array(["pending"] * len(events), pa.string()),
            "last_error": pa.nulls(len(events), pa.string()),
            "version": pa.array([self._version()] * len(events), pa.uint64()),
        }
        for name, values in columns.items():
            queued = queued.append_column(name, values)
        self.engine.insert("outbox_rows", queued)

    def outbox_due(self, project: str, limit: int) -> list[tuple[str, str, int]]:
        rows = self._rows(
            "SELECT uuid, payload, attempts FROM outbox WHERE project = ? AND state = 'pending' "
            "AND next_attempt <= now64(6, 'UTC') ORDER BY created_at, uuid LIMIT ?",
            [project, int(limit)],
        )
        return [(str(u), str(p), int(a)) for u, p, a in rows]

    def outbox_delivered(self, uuids: list[str]) -> None:
        self._copy_by_uuid("outbox", uuids, {"deleted": "1"})

    def outbox_retry_later(self, uuids: list[str], delay_seconds: float, error: str) -> None:
        self._copy_by_uuid(
            "outbox",
            uuids,
            {
                "attempts": "attempts + 1",
                "last_error": value_sql(error),
                "next_attempt": f"now64(6, 'UTC') + toIntervalMicrosecond("
                f"{int(delay_seconds * 1_000_000)})",
            },
        )

    def outbox_failed(self, uuids: list[str], error: str) -> None:
        self._copy_by_uuid(
            "outbox",
            uuids,
            {"attempts": "attempts + 1", "state": "'failed'", "last_error": value_sql(error)},
        )

    def outbox_requeue_failed(self, project: str | None = None) -> int:
        with self._lock:
            where = "state = 'failed'" + (f" AND project = {value_sql(project)}" if project else "")
            [(count,)] = self._rows(f"SELECT count() FROM outbox WHERE {where}")
            if count:
                self._copy_versioned(
                    "outbox",
                    where,
                    {"state": "'pending'", "next_attempt": "now64(6, 'UTC')"},
                )
        return int(count)

    # -- alerts --------------------------------------------------------------------

    def record_alert_changes(self, changes: list[dict[str, Any]]) -> None:
        if not changes:
            return
        with self._lock:
            version = self._version()
            self.engine.insert(
                "alert_history_rows",
                pa.table(
                    {
                        column: pa.array([c[key] for c in changes], kind)
                        for column, key, kind in ALERT_HISTORY_COLUMNS
                    }
                )
                .append_column("notified", pa.array([False] * len(changes)))
                .append_column("version", pa.array([version] * len(changes), pa.uint64())),
            )

    def mark_alert_notified(
        self, project: str, alert: str, subject: str, state: str, at: Any
    ) -> None:
        with self._lock:
            where = bind(
                "project = ? AND alert = ? AND subject = ? AND state = ? AND changed_at = ?",
                [project, alert, subject, state, at],
            )
            self._copy_versioned("alert_history", where, {"notified": "true"})

    # -- reading -----------------------------------------------------------------

    def sql(
        self,
        query: str,
        parameters: list[Any] | None = None,
        max_rows: int | None = None,
        timeout: float | None = None,
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        table = self.arrow(query, parameters, max_rows, timeout)
        names = list(table.column_names)
        return names, list(zip(*(c.to_pylist() for c in table.columns), strict=True))

    def arrow(
        self,
        query: str,
        parameters: list[Any] | None = None,
        max_rows: int | None = None,
        timeout: float | None = None,
    ) -> pa.Table:
        text = query.strip().rstrip(";").strip()
        if ";" in _unquoted(text):
            raise QueryError("send exactly one statement")
        first = text.split(None, 1)[0].upper() if text else ""
        if first not in ("SELECT", "WITH"):
            raise QueryError(f"only SELECT queries are allowed here, not {first or 'nothing'}")
        if max_rows is not None:  # on their own lines: a trailing comment ends at the newline
            text = f"SELECT * FROM (\n{text}\n) LIMIT {int(max_rows)}"
        return self.engine.query(bind(text, parameters or []), timeout)

    def reopen(self) -> None:
        """Nothing to do: clickhouse-connect reconnects on the next request."""
        self.broken = False

    def close(self) -> None:
        with self._lock:
            if self._scratch_table is not None:
                self.engine.command(f"DROP TABLE IF EXISTS {self._scratch_table}")
            self.engine.close()
