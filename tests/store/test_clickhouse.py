"""The ClickHouse adapter itself: URLs, secrets, literals, cluster DDL, errors, batching.

The adapter is clickhouse-connect's client; here it runs on chDB (the ClickHouse
engine in-process), the same code that talks HTTP to a server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from eventplan.errors import EventplanError
from eventplan.plan import Plan
from eventplan.store import QueryError, local_base
from eventplan.store.clickhouse import (
    SHARD_KEYS,
    Engine,
    bind,
    enum_properties,
    redact,
    schema_ddl,
)
from eventplan.store.columns import missing_columns
from tests.servers import TOKEN, free_port, openchat_server


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    opened = Engine.connect(f"chdb:{tmp_path / 'clickhouse'}")
    yield opened
    opened.close()


def test_a_url_names_server_credentials_database_and_settings() -> None:
    parsed = Engine.parse_url(
        "clickhouse://eventplan:p%40ss@ch1.internal:9000/analytics?max_threads=4"
    )
    assert parsed == {
        "host": "ch1.internal",
        "port": 9000,
        "username": "eventplan",
        "password": "p@ss",
        "database": "analytics",
        "secure": False,
        "settings": {"join_use_nulls": 1, "max_threads": "4"},
    }
    tls = Engine.parse_url("clickhouses://ch.example.com")
    assert (tls["port"], tls["secure"], tls["username"], tls["database"]) == (
        8443,
        True,
        "default",
        "default",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://u:secret@host/db", "not a ClickHouse URL"),
        ("clickhouse://u:secret@:8123/db", "has no host"),
        ("clickhouse://u:secret@host:port/db", "bad port"),
        ("clickhouse://u:secret@host/a/b", "names one database"),
    ],
)
def test_a_bad_url_says_what_is_wrong_without_the_password(url: str, message: str) -> None:
    with pytest.raises(EventplanError, match=message) as caught:
        Engine.parse_url(url)
    assert "secret" not in str(caught.value)


def test_the_password_never_reaches_messages_or_file_names() -> None:
    url = "clickhouse://eventplan:hunter2@ch1:8123/analytics"
    assert redact(url) == "clickhouse://eventplan:***@ch1:8123/analytics"
    assert "hunter2" not in str(local_base(url))
    assert local_base(url) == Path("data/clickhouse-ch1-8123-analytics")


def test_an_unreachable_server_is_a_clear_error() -> None:
    url = f"clickhouse://eventplan:hunter2@127.0.0.1:{free_port()}/analytics"
    with pytest.raises(EventplanError, match="cannot open ClickHouse at") as caught:
        Engine.connect(url)
    assert "hunter2" not in str(caught.value)
    assert "eventplan:***@127.0.0.1" in str(caught.value)


def test_bound_values_come_back_exactly_from_clickhouse(engine: Engine) -> None:
    values = [
        "it's \\ a 'test' ?",
        "line\nbreak",
        42,
        -1.5,
        True,
        None,
        datetime(2026, 11, 25, 12, 30, 1, 123456, tzinfo=UTC),
    ]
    sql = bind("SELECT '?' AS literal, " + ", ".join(f"? AS v{i}" for i in range(7)), values)
    row = list(engine.query(sql).to_pylist()[0].values())
    assert row == ["?", *values]


def test_placeholders_and_values_must_agree() -> None:
    with pytest.raises(QueryError, match="more \\? placeholders"):
        bind("SELECT ?, ?", [1])
    with pytest.raises(QueryError, match="1 \\? placeholders for 2 values"):
        bind("SELECT ?", [1, 2])


def test_the_cluster_ddl_parses_and_shards_every_table_by_its_key(
    engine: Engine, openchat_plan: Plan
) -> None:
    columns = missing_columns([openchat_plan])
    statements = schema_ddl(
        columns, enum_properties([openchat_plan]), cluster="analytics", database="events"
    )
    for statement in statements:
        engine.command(f"EXPLAIN AST {statement}")  # ClickHouse's own parser accepts it
    distributed = [s for s in statements if "ENGINE = Distributed" in s]
    assert len(distributed) == len(SHARD_KEYS)  # every table, each by its own key
    assert any(
        s.startswith('CREATE TABLE IF NOT EXISTS "events".events_data ON CLUSTER')
        and s.endswith("'events', events_data_local, sipHash64(distinct_id))")
        for s in distributed
    )
    assert all("rand()" not in s for s in distributed)
    assert sum("ReplicatedReplacingMergeTree" in s for s in statements) == len(SHARD_KEYS)
    # Enums become LowCardinality; free text (a chat id) does not.
    created = statements[0]
    assert '"p_storage_backend" LowCardinality(Nullable(String))' in created
    assert '"p_chat_id" Nullable(String)' in created


def test_engine_errors_name_the_problem(engine: Engine) -> None:
    with pytest.raises(QueryError, match=r"UNKNOWN_TABLE|does not exist"):
        engine.query("SELECT * FROM no_such_table")
    with pytest.raises(EventplanError, match="insert failed"):
        engine.insert("no_such_table", pa.table({"a": [1]}))


def test_capture_inserts_in_batches_not_one_per_request(tmp_path: Path) -> None:
    server = openchat_server(tmp_path, backend="clickhouse")
    person = f"batch-{uuid.uuid4()}"

    def post(number: int) -> int:
        body = {
            "api_key": TOKEN,
            "batch": [
                {"event": "chat.created", "distinct_id": person, "properties": {"n": i}}
                for i in range(10 * number, 10 * number + 10)
            ],
        }
        return httpx.post(f"{server.url}/batch/", content=json.dumps(body), timeout=30).status_code

    try:
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(60))) == {200}
        server.wait_for_count(f"distinct_id = '{person}'", 600)
        # Every insert takes the table's next block number; merges keep the range.
        [[inserts]] = server.sql(
            "SELECT max(max_block_number) FROM system.parts WHERE database = currentDatabase() "
            "AND table = 'events_data' AND active"
        )
    finally:
        server.stop()
    assert 1 <= inserts < 30
