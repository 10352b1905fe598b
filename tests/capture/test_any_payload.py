"""Whatever JSON a client sends, capture answers with a 4xx that says why, or its
events go into the log and from there into the store: never a crash on the way.

A crash in the request is a 500 (posthog-js then retries the batch for ever); a crash
in the writer is worse, since it retries the same insert and every event after it
waits. So each accepted payload here goes all the way: the log's encoding, then a
real store, read back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventplan.capture.enrich import TrustedProxies
from eventplan.capture.errors import CaptureError
from eventplan.capture.events import now_us
from eventplan.capture.ingest import CaptureRequest, Envelope, Ingestor
from eventplan.capture.v1 import V1Headers
from eventplan.plan import Plan
from eventplan.project import Project
from eventplan.store import Store, open_store
from eventplan.store.records import decode_columns, events_in
from tests.conftest import BACKENDS, examples, store_url

TOKEN = "phc_any_payload"

# Values of every JSON type, with the edges that broke capture once: integers past 64
# bits, times before 1900 or past 9999, epoch numbers near int64's limits.
ODD_STRINGS = [
    "",
    "direct",
    "https://openchat.example/c/1?utm_source=news&utm_medium=email",
    "2026-11-20T12:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-12:00",
    "not a url",
    "http://[::1",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([-9223371950454778, 2**63, -(2**63) - 1, 2**64]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(ODD_STRINGS),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# Keys capture and the writer read: enrichment, identity, groups, the token.
SPECIAL_KEYS = [
    "$set",
    "$set_once",
    "$groups",
    "$group_type",
    "$group_key",
    "$group_set",
    "alias",
    "$anon_distinct_id",
    "$ip",
    "$referrer",
    "$current_url",
    "distinct_id",
    "token",
]


def payloads(plan: Plan, door: str = "batch") -> st.SearchStrategy[dict[str, Any]]:
    """Bodies as `door` takes them: `batch` (and the AI lane) or Capture `v1`."""
    names = [*plan.events, "$identify", "$create_alias", "$groupidentify", "unplanned.event"]
    keys = sorted({key for name in plan.events for key in plan.properties_of(name)})
    v1_fields = {"options": VALUES, "session_id": VALUES, "window_id": VALUES}
    event = st.fixed_dictionaries(
        {
            "event": st.one_of(st.sampled_from(names), VALUES),
            "distinct_id": st.one_of(st.text(min_size=1, max_size=8), VALUES),
        },
        optional={
            "properties": st.one_of(
                st.dictionaries(st.sampled_from(keys + SPECIAL_KEYS), VALUES, max_size=8), VALUES
            ),
            "timestamp": VALUES,
            "offset": VALUES,
            "uuid": st.one_of(st.uuids().map(str), VALUES),
            "$set": VALUES,
            "$set_once": VALUES,
            **(v1_fields if door == "v1" else {}),
        },
    )
    if door == "v1":
        return st.fixed_dictionaries(
            {"batch": st.lists(event, min_size=1, max_size=4)}, optional={"created_at": VALUES}
        )
    return st.fixed_dictionaries(
        {"api_key": st.just(TOKEN), "batch": st.lists(event, min_size=1, max_size=4)},
        optional={"sent_at": VALUES},
    )


DOORS = {
    "batch": CaptureRequest("application/json", "", {}, "203.0.113.9", None),
    "v1": CaptureRequest(
        "application/json",
        "",
        {},
        "203.0.113.9",
        None,
        v1=V1Headers(f"Bearer {TOKEN}", "posthog-python/7.91.1", "2026-12-07T10:00:00Z"),
    ),
    "ai": CaptureRequest("application/json", "", {}, "203.0.113.9", None),
}


@pytest.fixture(params=BACKENDS, scope="module")
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, openchat_plan: Plan
) -> Iterator[Store]:
    opened = open_store(store_url(request.param, tmp_path_factory.mktemp("any")), [openchat_plan])
    yield opened
    opened.close()


@pytest.mark.parametrize("door", sorted(DOORS))
def test_any_payload_is_refused_with_a_4xx_or_stored_whole(
    store: Store, openchat_plan: Plan, tmp_path: Path, door: str
) -> None:
    project = Project("openchat", openchat_plan, store, salt=b"salt", tokens=(TOKEN,))
    ingestor = Ingestor({TOKEN: project.name}, {project.name: project.pipeline})
    proxies = TrustedProxies([])
    log_position = [store.wal_seq()]

    @settings(
        max_examples=examples(store.dialect, 150),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(payloads(openchat_plan, door))
    def check(payload: dict[str, Any]) -> None:
        for event in payload["batch"]:
            # Hypothesis repeats uuids across examples; a repeat with another time is
            # another event to the store (the uuid check looks a day either side).
            if isinstance(event.get("uuid"), str) and event["uuid"].count("-") == 4:
                event["uuid"] = str(uuid.uuid4())
        body = json.dumps(payload).encode()  # json writes integers past 64 bits; orjson won't
        try:
            ingested = ingestor.ingest(
                body,
                DOORS[door],
                Envelope.of(DOORS[door], proxies, now_us()),
                limit=1 << 20,
                event_limit=200 if door == "ai" else None,  # small, to refuse some
            )
        except CaptureError as refused:
            assert 400 <= refused.status < 500 and refused.message
            return
        groups = decode_columns(ingested.record)  # the log's record: the events as judged
        events = events_in(groups)
        judged = ingested.stored_events()
        assert sorted(e.uuid for e in events) == sorted(e.uuid for e in judged)
        if door == "v1":  # every event answered by its uuid as sent: stored, or dropped (why)
            answered = set(ingested.sent_uuids) | set(ingested.dropped)
            assert answered == {e["uuid"] for e in payload["batch"]}
            assert len(ingested.sent_uuids) == len(events) and all(ingested.dropped.values())
        log_position[0] += 1
        store.insert_columns(groups, log_position[0])  # as the writer stores the record
        uuids = sorted({e.uuid for e in events})
        marks = ", ".join("?" for _ in uuids)
        _, rows = store.sql(f"SELECT uuid, timestamp FROM events WHERE uuid IN ({marks})", uuids)
        assert sorted(str(stored) for stored, _ in rows) == uuids
        assert all(1900 <= timestamp.year <= 9999 for _, timestamp in rows)

    check()
