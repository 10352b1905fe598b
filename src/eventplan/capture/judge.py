"""The plan's verdict on one event, the same at every door.

Capture enriches an event (`referrer_domain`, `entry_path`, UTM properties) before it
judges it, so every other door that judges an event must too: `eventplan validate`,
the server helper's strict mode, a project's pipeline. A `$pageview` without
`referrer_domain` but with a `$referrer` is valid at each of them.

An event judged again once stored (quarantine replay) is judged again only where
the store still holds what was sent: a property the privacy policy changed (hashed,
masked, cut, dropped) keeps the violations it had when it was captured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventplan.capture.enrich import Enricher
from eventplan.plan.model import Plan, PropertyType
from eventplan.plan.posthog import RENAMED, SENT_AS
from eventplan.plan.privacy import PrivacyPolicy
from eventplan.plan.validator import Validator, Verdict, Violation
from eventplan.store.columns import typed_properties
from eventplan.store.records import LoggedEvent, StoredEvent


class Judge:
    def __init__(self, plan: Plan) -> None:
        self.enricher = Enricher(plan)
        self.validator = Validator(plan)
        self._events = plan.event_renames()
        self._properties = {name: plan.property_renames(name) for name in plan.events}
        self._private = {
            name: frozenset(
                key
                for key, prop in plan.properties_of(name).items()
                if prop.privacy.policy != "keep"
            )
            for name in plan.events
        }

    def enrich_and_judge(
        self, name: Any, properties: Any, user_agent: str | None = None
    ) -> Verdict:
        """Enrich `properties` in place (when they are an object), then judge them.
        `user_agent` is the request's, for events that carry none of their own."""
        if isinstance(name, str) and isinstance(properties, dict):
            self.enricher.enrich(name, properties, user_agent)
        return self.validator.check_properties(name, properties)

    def rename(self, name: Any, properties: Any) -> Any:
        """The planned name of an event sent under an old one (`renamed_from`), and its
        old property names made the planned ones, in place; the names sent are kept
        (`$eventplan_sent_as`, `$eventplan_renamed`) so nothing sent is lost."""
        if not isinstance(name, str) or not isinstance(properties, dict):
            return name
        planned = self._events.get(name)
        if planned is not None:
            properties[SENT_AS] = name
            name = planned
        moved = {}
        for old, new in self._properties.get(name, {}).items():
            if old in properties and new not in properties:
                properties[new] = properties.pop(old)
                moved[old] = new
        if moved:
            properties[RENAMED] = moved
        return name

    def verdict(self, name: Any, properties: Any) -> Verdict:
        """The verdict on an event as sent, its properties left as they are."""
        copied = dict(properties) if isinstance(properties, Mapping) else properties
        return self.enrich_and_judge(self.rename(name, copied), copied)

    def rejudge_stored(
        self, name: str, properties: dict[str, Any], captured: list[Violation]
    ) -> Verdict:
        """The verdict on a stored event under this plan: new for what the store holds
        as sent, as at capture (`captured`) for what the privacy policy changed. An
        event stored under a name the plan has since renamed is judged as the planned
        one, its old property names read as the new ones, as capture would now."""
        properties = dict(properties)
        name = self.rename(name, properties)
        fresh = self.validator.check_properties(name, properties)
        if fresh.verdict == "unplanned":
            return fresh
        changed = self._private.get(name, frozenset())
        violations = [v for v in fresh.violations if v.property not in changed]
        violations += [v for v in captured if v.property in changed]
        failed = any(v.severity == "error" for v in violations)
        return Verdict("invalid" if failed else "valid", violations)

    def check(self, event: Any) -> Verdict:
        """The verdict on one PostHog-shaped event (`event`, `properties`, …); a
        missing `properties` is an empty one, a `null` one is a wrong type."""
        if not isinstance(event, Mapping):
            return self.validator.check(event)
        return self.verdict(event.get("event"), event.get("properties", {}))


class Pipeline:
    """A project's judgement of logged events, the same in the server and in a capture
    process: planned names, enrichment, the verdict, the privacy policy, and the plan
    version that judged them."""

    def __init__(self, plan: Plan, salt: bytes) -> None:
        self.judge = Judge(plan)
        self.privacy = PrivacyPolicy(plan, salt)
        self.version = plan.version
        self._types = {name: typed_properties(plan, name) for name in plan.events}
        self._builtin_types = typed_properties(plan, "")

    def property_types(self, project: str, event: str) -> dict[str, PropertyType]:
        """The typed properties of an event, as the store lays them out in columns."""
        return self._types.get(event, self._builtin_types)

    def stored(self, events: list[LoggedEvent]) -> list[StoredEvent]:
        """The events ready to store. Each event's properties are changed in place."""
        stored = []
        judge = self.judge
        for event in events:
            properties = event.properties
            name = judge.rename(event.event, properties)  # stored under its planned name
            verdict = judge.enrich_and_judge(name, properties, event.user_agent)
            self.privacy.apply(name, properties)
            stored.append(
                StoredEvent(
                    event.uuid,
                    name,
                    event.distinct_id,
                    event.timestamp,
                    event.created_at,
                    event.project,
                    event.ip_hash,
                    properties,
                    event.set,
                    event.set_once,
                    verdict.verdict,
                    verdict.violations or None,
                    self.version,
                )
            )
        return stored
