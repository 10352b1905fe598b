"""Normalizing a request's events: ids as PostHog keeps them."""

from __future__ import annotations

import uuid

import pytest

from eventplan.capture.errors import BadRequest
from eventplan.capture.events import normalize

RECEIVED = 1_764_000_000_000_000


def one(**fields: object) -> dict[str, object]:
    return {"event": "chat.created", "distinct_id": "u1", "properties": {}, **fields}


def test_uuids_are_kept_canonical_in_any_spelling_the_clients_use() -> None:
    value = uuid.uuid4()
    spellings = [str(value), str(value).upper(), "{" + str(value) + "}", value.hex]
    events = normalize([one(uuid=s) for s in spellings], {}, {}, RECEIVED)
    assert [e.uuid for e in events] == [str(value)] * len(spellings)


def test_a_missing_uuid_gets_a_time_ordered_one_and_a_bad_one_is_refused() -> None:
    [event] = normalize([one()], {}, {}, RECEIVED)
    assert uuid.UUID(event.uuid).version == 7
    with pytest.raises(BadRequest, match="is not a UUID"):
        normalize([one(uuid="0000-not-a-uuid")], {}, {}, RECEIVED)
