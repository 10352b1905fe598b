"""The unchanged posthog-python client, pointed at eventplan, lands every event once."""

from __future__ import annotations

import json
import uuid

import pytest
from posthog import Posthog

from tests.servers import TOKEN, RunningServer

STREAM = {
    "app": "openchat-server",
    "chat_id": "c-42",
    "model_id": "openai/gpt-4o-mini",
    "status": "completed",
    "duration_ms": 950,
    "environment": "production",
}


def client(server: RunningServer, **options: object) -> Posthog:
    return Posthog(TOKEN, host=server.url, sync_mode=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("gzip", [False, True], ids=["json", "gzip"])
def test_capture_arrives_once_enriched_and_judged(server: RunningServer, gzip: bool) -> None:
    person = f"py-{uuid.uuid4()}"
    posthog = client(server, gzip=gzip, super_properties={"deployment_region": "fra1"})
    posthog.capture("chat_message_stream", distinct_id=person, properties=STREAM)
    posthog.capture(
        "chat_message_stream", distinct_id=person, properties={**STREAM, "status": "finished"}
    )
    posthog.capture("chat.stream_resumed", distinct_id=person, groups={"workspace": "w-1"})
    posthog.flush()
    posthog.shutdown()
    server.wait_for_count(f"distinct_id = '{person}'", 3)
    rows = server.sql(
        "SELECT event, verdict, violations, properties, ip_hash FROM events "
        f"WHERE distinct_id = '{person}' ORDER BY timestamp"
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("chat_message_stream", "valid"),
        ("chat_message_stream", "invalid"),
        ("chat.stream_resumed", "unplanned"),
    ]
    valid_props = json.loads(rows[0][3])
    assert valid_props["chat_id"] == "c-42" and valid_props["duration_ms"] == 950
    assert valid_props["deployment_region"] == "fra1"  # super-property
    assert valid_props["$lib"] == "posthog-python"
    (violation,) = json.loads(rows[1][2])
    assert (violation["code"], violation["property"], violation["received"]) == (
        "not_in_enum",
        "status",
        "finished",
    )
    assert json.loads(rows[2][3])["$groups"] == {"workspace": "w-1"}
    # SHA-256 of 127.0.0.1, first 8 bytes: the seed's ip_hash rule.
    assert {r[4] for r in rows} == {"12ca17b49af22894"}


def test_a_large_batch_is_stored_exactly_once(server: RunningServer) -> None:
    person = f"py-batch-{uuid.uuid4()}"
    posthog = client(server, flush_at=250, gzip=True)
    for index in range(1000):
        posthog.capture(
            "sync.connection_state",
            distinct_id=person,
            properties={"app": "openchat-web", "state": "retry", "retry_count": index},
        )
    posthog.flush()
    posthog.shutdown()
    server.wait_for_count(f"distinct_id = '{person}'", 1000)
    [[total, distinct_counts, valid]] = server.sql(
        "SELECT count(*), count(DISTINCT properties->>'retry_count'), "
        "count(*) FILTER (verdict = 'valid') "
        f"FROM events WHERE distinct_id = '{person}'"
    )
    assert (total, distinct_counts, valid) == (1000, 1000, 1000)


def test_alias_merges_two_ids_into_one_person(server: RunningServer) -> None:
    guest, member = f"guest-{uuid.uuid4()}", f"member-{uuid.uuid4()}"
    posthog = client(server)
    posthog.capture("dashboard.entered", distinct_id=guest, properties={"app": "openchat-web"})
    posthog.alias(previous_id=guest, distinct_id=member)
    posthog.capture("dashboard.entered", distinct_id=member, properties={"app": "openchat-web"})
    posthog.flush()
    posthog.shutdown()
    server.wait_for_count(f"distinct_id IN ('{guest}', '{member}')", 3)
    [[people]] = server.sql(
        f"SELECT count(DISTINCT person_id) FROM events WHERE distinct_id IN ('{guest}', '{member}')"
    )
    assert people == 1


def test_person_properties_from_set(server: RunningServer) -> None:
    person = f"py-set-{uuid.uuid4()}"
    posthog = client(server)
    posthog.set(distinct_id=person, properties={"plan": "pro"})
    posthog.set_once(distinct_id=person, properties={"first_seen_via": "landing"})
    posthog.set_once(distinct_id=person, properties={"first_seen_via": "ignored"})
    posthog.flush()
    posthog.shutdown()
    server.wait_for_count(f"distinct_id = '{person}'", 3)
    [[properties]] = server.sql(
        "SELECT p.properties FROM persons p JOIN person_distinct_ids d USING (project, person_id) "
        f"WHERE d.distinct_id = '{person}'"
    )
    assert json.loads(properties) == {"plan": "pro", "first_seen_via": "landing"}
