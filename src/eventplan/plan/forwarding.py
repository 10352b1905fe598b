"""Gateway mode's choice for each event: forwarded to PostHog, kept here only, or neither.

An event is forwarded when its `forward:` takes its verdict (`always`, `valid`,
`never`; when the event says nothing, the plan-wide `forward:`) and its person is in
the event's `sample:`. The sample is decided by a hash of the distinct id alone, so a
person is in or out of every sampled event alike and funnels stay whole. An event
that is not forwarded stays in the local store unless it says `keep_local: false`.
Every decision is counted per event and reason, for `/_health` and the plan page.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Final, Literal

from eventplan.plan.model import EventForward, Forwarding, ForwardPolicy, Plan

Route = Literal["forward", "keep", "drop"]
EVERY_VERDICT: Final = frozenset({"valid", "invalid", "unplanned"})
PLAN_VERDICTS: Final[dict[ForwardPolicy, frozenset[str]]] = {
    "all": EVERY_VERDICT,
    "valid": frozenset({"valid"}),
    "valid+invalid": frozenset({"valid", "invalid"}),
}
EVENT_VERDICTS: Final[dict[EventForward, frozenset[str]]] = {
    "always": EVERY_VERDICT,
    "valid": frozenset({"valid"}),
    "never": frozenset(),
}
FORWARDED: Final = "forwarded"
SAMPLED_OUT: Final = "sampled_out"
NEVER: Final = "never"


def in_sample(distinct_id: str, share: float) -> bool:
    """Whether a person is in a sample of `share` (the same answer for every event)."""
    if share >= 1:
        return True
    bucket = int.from_bytes(hashlib.sha256(distinct_id.encode()).digest()[:8], "big")
    return bucket < share * 2**64


class ForwardRules:
    """One plan's forwarding, with a count of every decision it made."""

    def __init__(self, plan: Plan) -> None:
        self._default = PLAN_VERDICTS[plan.forward]
        self._events = {name: event.forwarding for name, event in plan.events.items()}
        self._decisions: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()  # the writer's thread counts, /_health reads

    def route(self, event: str, verdict: str, distinct_id: str) -> Route:
        rule = self._events.get(event, Forwarding())
        reason = self._held_back(rule, verdict, distinct_id)
        with self._lock:
            self._decisions[(event, reason or FORWARDED)] += 1
        if reason is None:
            return "forward"
        return "keep" if rule.keep_local else "drop"

    def _held_back(self, rule: Forwarding, verdict: str, distinct_id: str) -> str | None:
        """Why an event is not forwarded (None: it is)."""
        verdicts = self._default if rule.when is None else EVENT_VERDICTS[rule.when]
        if not verdicts:
            return NEVER
        if verdict not in verdicts:
            return verdict  # "invalid" or "unplanned": a verdict this event does not forward
        if not in_sample(distinct_id, rule.sample):
            return SAMPLED_OUT
        return None

    def decisions(self) -> dict[str, dict[str, int]]:
        """Per event, how many were forwarded and how many held back, by reason."""
        with self._lock:
            counted = list(self._decisions.items())
        report: dict[str, dict[str, int]] = {}
        for (event, reason), count in sorted(counted):
            report.setdefault(event, {})[reason] = count
        return report
