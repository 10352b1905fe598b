"""A decoded capture payload turned into events: the envelope, token, ids and times.

Follows PostHog's capture rules (shared/reference/posthog-wire.md §1.3–1.4): the
payload is an array, a `{batch, api_key, sent_at}` envelope or one event; the token
comes from the envelope or the events; `distinct_id` may sit inside `properties`
(posthog-js); clock skew is corrected from `sent_at`.
"""

from __future__ import annotations

import os
import re
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from eventplan.capture.errors import BadRequest, PayloadTooLarge, Unauthorized

MAX_EVENTS_PER_REQUEST: Final = 20_000  # posthog-python cuts batches at 5 MiB, ~5k events
MAX_DISTINCT_ID_CHARS: Final = 200  # PostHog cuts longer ids to this length
MAX_PROPERTY_DEPTH: Final = 16  # nested objects/arrays inside one property value
FUTURE_CLAMP_US: Final = 23 * 3600 * 1_000_000  # PostHog: > 23 h in the future → now
SKEW_ROUNDING_US: Final = 5 * 60 * 1_000_000  # PostHog ignores skew under 2.5 min
# Times before 1900 (the start of ClickHouse's DateTime64, and older than any device
# clock) or after 9999 count as not parsed; so every stored time fits both stores.
EARLIEST_US: Final = -2_208_988_800 * 1_000_000
LATEST_US: Final = 253_402_300_800 * 1_000_000
# posthog-js's `_` (epoch ms): ASCII digits, few enough for int() (str.isdigit takes "²").
ASCII_NUMBER: Final = re.compile(r"[0-9]{1,18}").fullmatch
# The clients send canonical lowercase UUIDs; those need no parsing to be normalized.
CANONICAL_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch


@dataclass(slots=True)
class IncomingEvent:
    """One event of a request, normalized but not yet enriched or judged."""

    uuid: str
    event: str
    distinct_id: str
    timestamp_us: int
    properties: dict[str, Any]
    set: dict[str, Any] | None
    set_once: dict[str, Any] | None


@dataclass
class Batch:
    """A request's events as read. Capture v1 also keeps each one's uuid as the client
    wrote it (its answer is keyed by them), and the events it refused one by one."""

    events: list[IncomingEvent] = field(default_factory=list)
    sent_uuids: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # uuid → why


def now_us() -> int:
    return time.time_ns() // 1000


def uuid7(timestamp_us: int | None = None) -> str:
    """A UUIDv7 (time-ordered), as PostHog gives events that arrive without one."""
    millis = (timestamp_us if timestamp_us is not None else now_us()) // 1000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | (rand >> 62 & 0xFFF) << 64
    value |= 0b10 << 62 | rand & ((1 << 62) - 1)
    return str(uuidlib.UUID(int=value))


def parse_time_us(value: Any) -> int | None:
    """Epoch microseconds from an ISO 8601 string or epoch milliseconds; None if
    neither, or if it is before 1900 or after 9999."""
    result: int | None = None
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value)  # takes "Z" since Python 3.11
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.replace("z", "+00:00"))
            except ValueError:
                return None
        if moment.tzinfo is None:
            result = _naive_utc_us(moment)
        else:
            result = int(moment.timestamp() * 1_000_000)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # Compared before converting: a float past 1e305 ms is infinite in µs.
        if not EARLIEST_US / 1000 <= value <= LATEST_US / 1000:
            return None
        result = int(value * 1000)
    return result if result is not None and EARLIEST_US <= result <= LATEST_US else None


def _naive_utc_us(moment: datetime) -> int:
    return int(moment.replace(tzinfo=UTC).timestamp() * 1_000_000)


def split_payload(payload: Any) -> tuple[list[Any], dict[str, Any]]:
    """The events of a payload and its envelope (empty for a bare array or event)."""
    if isinstance(payload, list):
        return payload, {}
    if isinstance(payload, dict):
        if "batch" in payload:
            batch = payload["batch"]
            if not isinstance(batch, list):
                raise BadRequest("`batch` must be an array of events")
            return batch, payload
        return [payload], {}
    raise BadRequest("the body must be a JSON object or an array of events")


def find_token(events: list[Any], envelope: dict[str, Any]) -> str:
    """The project token of a request; 401 when missing, mixed or a personal key."""
    token = envelope.get("api_key") or envelope.get("token")
    tokens: set[str] = set()
    if isinstance(token, str) and token:
        tokens.add(token)
    else:
        for event in events:
            if not isinstance(event, dict):
                continue
            properties = event.get("properties")
            candidates = (
                event.get("token"),
                event.get("$token"),
                event.get("api_key"),
                properties.get("token") if isinstance(properties, dict) else None,
            )
            found = next((c for c in candidates if isinstance(c, str) and c), None)
            if found is not None:
                tokens.add(found)
    if not tokens:
        raise Unauthorized(
            "no project token: send it as `api_key` in the body or `token` in the properties"
        )
    if len(tokens) > 1:
        raise Unauthorized("the events of one request carry different project tokens")
    (found,) = tokens
    if found.startswith("phx_"):
        raise Unauthorized("that is a personal API key; capture takes the project token (phc_…)")
    return found


_NESTED: Final = frozenset({dict, list})  # what JSON decodes objects and arrays to


def _too_deep(value: dict[str, Any] | list[Any], limit: int) -> bool:
    """Whether objects and arrays nest `limit` levels deep in `value` (itself level 1).

    Level by level rather than recursively: most nested values are one flat level
    (`$groups`, `$set`), which this settles in one loop with no function calls."""
    level: list[Any] = [value]
    for _ in range(limit - 1):
        inner = [
            item
            for container in level
            for item in (container.values() if isinstance(container, dict) else container)
            if isinstance(item, (dict, list))
        ]
        if not inner:
            return False
        level = inner
    return True


def wide_ints_as_floats(value: Any) -> Any:
    """`value` with every integer past 64 bits made a float, as PostHog's capture
    parses them (its JSON numbers are i64, u64 or f64)."""
    if isinstance(value, dict):
        return {key: wide_ints_as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wide_ints_as_floats(item) for item in value]
    if isinstance(value, int) and not -(2**63) <= value < 2**64:
        return float(value)
    return value


def normalize(
    events: list[Any], envelope: dict[str, Any], query: dict[str, str], received_us: int
) -> list[IncomingEvent]:
    """Check and normalize every event; the whole request fails on the first bad one."""
    check_count(events)
    sent_at = sent_at_of(envelope, query)
    return [normalize_one(index, raw, sent_at, received_us) for index, raw in enumerate(events)]


def check_count(events: list[Any]) -> None:
    if len(events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadTooLarge(
            f"{len(events)} events in one request; the limit is {MAX_EVENTS_PER_REQUEST}"
        )


def sent_at_of(envelope: dict[str, Any], query: dict[str, str]) -> int | None:
    """When the client sent the request, by its own clock: `sent_at`, else `?_=`."""
    sent_at = parse_time_us(envelope.get("sent_at"))
    if sent_at is None and ASCII_NUMBER(query.get("_", "")):
        sent_at = parse_time_us(int(query["_"]))
    return sent_at


def normalize_one(index: int, raw: Any, sent_at: int | None, received_us: int) -> IncomingEvent:
    """One event checked and normalized; BadRequest names it by `index` when it is bad."""
    where = f"event {index}"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} is not a JSON object")
    name = raw.get("event")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where} has no `event` name")
    properties = raw.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, dict):
        raise BadRequest(f"{where} ({name}): `properties` must be an object")
    # Most events have no nested value at all; that is settled in C.
    if not _NESTED.isdisjoint(map(type, properties.values())):
        for key, value in properties.items():
            if type(value) in _NESTED and _too_deep(value, MAX_PROPERTY_DEPTH):
                raise BadRequest(
                    f"{where} ({name}): property `{key}` nests deeper than "
                    f"{MAX_PROPERTY_DEPTH} levels"
                )
    distinct_id = raw.get("distinct_id", raw.get("$distinct_id", properties.get("distinct_id")))
    if distinct_id is None or distinct_id == "":
        raise BadRequest(f"{where} ({name}) has no distinct_id")
    if not isinstance(distinct_id, str):
        distinct_id = str(distinct_id)
    return IncomingEvent(
        uuid=_event_uuid(raw.get("uuid"), where, name),
        event=name,
        distinct_id=distinct_id[:MAX_DISTINCT_ID_CHARS],
        timestamp_us=event_time(raw, properties, sent_at, received_us),
        properties=properties,
        set=_person_update(raw, properties, "$set"),
        set_once=_person_update(raw, properties, "$set_once"),
    )


def _event_uuid(value: Any, where: str, name: str) -> str:
    """The event's uuid in canonical form; a new UUIDv7 when it has none."""
    if value in (None, ""):
        return uuid7()
    if isinstance(value, str) and CANONICAL_UUID(value):
        return value
    try:
        return str(uuidlib.UUID(str(value)))
    except ValueError as exc:
        raise BadRequest(f"{where} ({name}): `uuid` {value!r} is not a UUID") from exc


def _person_update(
    raw: dict[str, Any], properties: dict[str, Any], key: str
) -> dict[str, Any] | None:
    # posthog-python sends $set at the top level, posthog-js inside properties;
    # top-level keys win (PostHog's ingestion does the same).
    inner = properties.get(key)
    outer = raw.get(key)
    if inner is None and outer is None:
        return None
    merged: dict[str, Any] = {}
    if isinstance(inner, dict):
        merged.update(inner)
    if isinstance(outer, dict):
        merged.update(outer)
    return merged or None


def event_time(
    raw: dict[str, Any], properties: dict[str, Any], sent_at: int | None, received_us: int
) -> int:
    """When the event happened, in server time (PostHog's clock-skew rules). A time
    that does not parse, or lands before 1900 or more than 23 h ahead, is now."""
    timestamp = parse_time_us(raw.get("timestamp"))
    offset = raw.get("offset")
    if isinstance(offset, int | float) and not isinstance(offset, bool):
        if not abs(offset) <= LATEST_US / 1000:  # also NaN, which compares false
            return received_us
        result = received_us - int(offset * 1000)
    elif timestamp is None:
        result = received_us
    elif sent_at is not None and not properties.get("$ignore_sent_at"):
        skew = sent_at - received_us
        rounded = round(skew / SKEW_ROUNDING_US) * SKEW_ROUNDING_US
        result = timestamp - rounded
    else:
        result = timestamp
    if result - received_us > FUTURE_CLAMP_US or result < EARLIEST_US:
        return received_us
    return result
