"""PostHog's Capture v1, read into the events capture already knows, and its answer.

posthog-python (`capture_mode="v1"`) and posthog-node (`POSTHOG_CAPTURE_MODE=v1`)
post to `/i/v1/analytics/events` with `Authorization: Bearer <project token>`,
`PostHog-Sdk-Info: <library>/<version>` and `PostHog-Attempt` / `-Request-Id` /
`-Request-Timestamp`; the body is `{created_at, historical_migration?, batch}`. Each
event carries `options` (typed sentinels) and its `session_id` / `window_id` at the
top level, and no `$lib` / `$lib_version` (the header names them). Here each event is
put back into the `/batch/` shape, so one pipeline reads both.

The answer is per event, by uuid: `ok` (valid by the plan) and `warning` (it breaks
the plan) end the event's delivery, `drop` too (it could not be read; the SDK reports
it), `retry` has the SDK send it again. Beyond PostHog, each result carries
`eventplan`: the plan's verdict and violations, for the SDK's debug log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from eventplan.capture.errors import BadRequest, Unauthorized
from eventplan.capture.events import Batch, check_count, normalize_one, parse_time_us
from eventplan.plan.validator import Violation
from eventplan.store.records import StoredEvent

V1_PATH: Final = "/i/v1/analytics/events"
# v1's typed options, back under the property names the `/batch/` shape uses.
OPTION_PROPERTIES: Final = {
    "cookieless_mode": "$cookieless_mode",
    "disable_skew_correction": "$ignore_sent_at",
    "process_person_profile": "$process_person_profile",
    "product_tour_id": "$product_tour_id",
}
TOP_LEVEL_PROPERTIES: Final = {"session_id": "$session_id", "window_id": "$window_id"}


@dataclass(frozen=True)
class V1Headers:
    """What Capture v1 sends in its headers."""

    authorization: str = ""
    sdk_info: str = ""  # PostHog-Sdk-Info: "posthog-python/7.91.1"
    request_timestamp: str = ""  # PostHog-Request-Timestamp: this attempt's send time

    def token(self) -> str:
        scheme, _, token = self.authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "Capture v1 takes the project token as `Authorization: Bearer <token>`"
            )
        return token.strip()

    def library(self) -> dict[str, str]:
        """`$lib` and `$lib_version` from PostHog-Sdk-Info, as PostHog's capture fills them."""
        name, _, version = self.sdk_info.strip().partition("/")
        library = {"$lib": name} if name else {}
        if name and version:
            library["$lib_version"] = version
        return library


def read_batch(payload: Any, headers: V1Headers, received_us: int) -> Batch:
    """The events of a v1 body. A body that is not a v1 batch, or an event without a
    uuid to answer it by, is a BadRequest; any other bad event is dropped alone."""
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise BadRequest("a Capture v1 body is an object with a `batch` array of events")
    check_count(payload["batch"])
    # The attempt's own send time, so a retried request corrects the skew it has now.
    sent_at = parse_time_us(headers.request_timestamp) or parse_time_us(payload.get("created_at"))
    library = headers.library()
    read = Batch()
    for index, raw in enumerate(payload["batch"]):
        uuid = raw.get("uuid") if isinstance(raw, dict) else None
        if not isinstance(uuid, str) or not uuid:
            raise BadRequest(f"event {index} has no `uuid`; Capture v1 answers each event by it")
        try:
            read.events.append(
                normalize_one(index, as_batch_event(index, raw, library), sent_at, received_us)
            )
            read.sent_uuids.append(uuid)
        except BadRequest as exc:
            read.dropped[uuid] = exc.message
    return read


def as_batch_event(index: int, raw: dict[str, Any], library: dict[str, str]) -> dict[str, Any]:
    """A v1 event in the `/batch/` shape, in place: options and top-level ids become
    properties, and `$lib` / `$lib_version` come from the header unless sent."""
    properties = raw.get("properties")
    if properties is None:
        properties = raw["properties"] = {}
    elif not isinstance(properties, dict):
        raise BadRequest(f"event {index}: `properties` must be an object")
    options = raw.get("options")
    if options is None:
        options = {}
    elif not isinstance(options, dict):
        raise BadRequest(f"event {index}: `options` must be an object")
    for key, name in OPTION_PROPERTIES.items():
        if options.get(key) is not None:
            properties[name] = options[key]
    for key, name in TOP_LEVEL_PROPERTIES.items():
        if isinstance(raw.get(key), str):
            properties[name] = raw[key]
    for key, value in library.items():
        properties.setdefault(key, value)
    return raw


def results(
    uuids: list[str],
    dropped: dict[str, str],
    judged: list[StoredEvent] | None,
    retry_reason: str | None = None,
) -> dict[str, Any]:
    """The per-event answer: `drop` for each of `dropped`; for the events read
    (`uuids`), `retry` when the log could not take them (`retry_reason`), else `ok`
    (valid by the plan) or `warning` (it breaks the plan: `details` says how)."""
    answer: dict[str, dict[str, Any]] = {
        uuid: {"result": "drop", "details": reason} for uuid, reason in dropped.items()
    }
    if judged is None:
        for uuid in uuids:
            answer[uuid] = {"result": "retry", "details": retry_reason}
        return {"results": answer}
    for uuid, event in zip(uuids, judged, strict=True):
        violations = event.violations or []
        answer[uuid] = {
            "result": "ok" if event.verdict == "valid" else "warning",
            "details": _summary(event.verdict, violations),
            "eventplan": {"verdict": event.verdict, "violations": violations},
        }
    return {"results": answer}


def _summary(verdict: str, violations: list[Violation]) -> str | None:
    if verdict == "valid":
        return None
    messages = "; ".join(v.message for v in violations if v.severity == "error")
    return f"{verdict}: {messages}" if messages else verdict
