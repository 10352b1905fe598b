"""Storage: the write-ahead log, the background writer and the event store.

`open_store` picks the backend from the `--db` value: a file path is an embedded
DuckDB file (the default), `clickhouse://user:pass@host:8123/database` a ClickHouse
server, and `chdb:DIR` the ClickHouse engine in-process (chDB, for one machine
and for tests).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from eventplan.plan.model import Plan

if TYPE_CHECKING:
    from eventplan.store.base import QueryError, Store

__all__ = ["QueryError", "Store", "is_url", "local_base", "open_store"]


def __getattr__(name: str) -> Any:
    """`Store` and `QueryError` on first use: a capture process imports the log's
    records from this package and has no use for the engines (pyarrow alone is 40 MB)."""
    if name in ("QueryError", "Store"):
        from eventplan.store import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_url(db: str) -> bool:
    return db.startswith(("clickhouse://", "clickhouses://", "chdb:"))


def local_base(db: str) -> Path:
    """The local path the write-ahead log and the server note sit beside.

    A DuckDB file or a chDB folder is local; a ClickHouse server is not, so its
    log goes under `data/`, named for the host and database (never the password).
    """
    if db.startswith("chdb:"):
        return Path(db.removeprefix("chdb:"))
    if db.startswith(("clickhouse://", "clickhouses://")):
        url = urlsplit(db)
        name = f"clickhouse-{url.hostname or 'localhost'}-{url.port or 8123}{url.path or '/'}"
        return Path("data") / re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
    return Path(db)


def open_store(
    db: str, plans: Iterable[Plan] = (), read_only: bool = False, memory_limit: str | None = None
) -> Store:
    """The store `db` names. `memory_limit` bounds DuckDB's buffer pool (e.g. "96MB");
    a ClickHouse server takes its own limits as URL settings (`?max_memory_usage=…`)."""
    if is_url(db):
        from eventplan.store.clickhouse import ClickHouseStore, Engine

        return ClickHouseStore(Engine.connect(db), plans, read_only=read_only)
    from eventplan.store.duckdb import EventStore

    return EventStore(db, plans, read_only=read_only, memory_limit=memory_limit)
