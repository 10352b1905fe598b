"""The plan's privacy policies, applied to an event's properties before storage.

`keep` leaves a value alone; `hash` replaces it with a salted SHA-256 (hex);
`mask` keeps the last N characters and stars the rest; `truncate` cuts it to N
characters; `drop` removes it. Compiled once per plan: only the properties that
need work are visited.
"""

from __future__ import annotations

import hashlib
from typing import Any

from eventplan.plan.model import Plan, Privacy


def hash_value(value: Any, salt: bytes) -> str:
    text = value if isinstance(value, str) else repr(value)
    return hashlib.sha256(salt + text.encode("utf-8", "surrogatepass")).hexdigest()


def mask_value(value: Any, keep_last: int) -> str:
    text = value if isinstance(value, str) else str(value)
    visible = text[-keep_last:] if keep_last else ""
    # Never reveal more than half of a short secret.
    if len(visible) * 2 > len(text):
        visible = visible[len(visible) - len(text) // 2 :] if len(text) > 1 else ""
    return "*" * (len(text) - len(visible)) + visible


def apply_policy(privacy: Privacy, value: Any, salt: bytes) -> Any:
    if value is None or privacy.policy == "keep":
        return value
    if privacy.policy == "hash":
        return hash_value(value, salt)
    if privacy.policy == "mask":
        return mask_value(value, privacy.keep_last)
    if privacy.policy == "truncate":
        return value[: privacy.length] if isinstance(value, str) else value
    raise ValueError(f"apply_policy does not handle {privacy.policy}")


class PrivacyPolicy:
    """Per event, the properties whose values must change before they are stored."""

    def __init__(self, plan: Plan, salt: bytes) -> None:
        self.salt = salt
        self._rules: dict[str, list[tuple[str, Privacy]]] = {}
        for name in plan.events:
            rules = [
                (prop.name, prop.privacy)
                for prop in plan.properties_of(name).values()
                if prop.privacy.policy != "keep"
            ]
            if rules:
                self._rules[name] = rules

    def apply(self, event: str, properties: dict[str, Any]) -> None:
        """Rewrite `properties` in place."""
        for name, privacy in self._rules.get(event, ()):
            if name not in properties:
                continue
            if privacy.policy == "drop":
                del properties[name]
            else:
                properties[name] = apply_policy(privacy, properties[name], self.salt)
