"""A JSON Schema of the plan file itself, so that YAML language servers complete and
check `plans/*.yaml` as people type (a `# yaml-language-server: $schema=…` line).

Built from the loader's own key lists and vocabularies: what the schema allows is what
`load_plan` reads. The loader stays the judge (naming, cross-references, bounds); the
schema catches a misspelt key or an unknown type while the file is being written.
"""

from __future__ import annotations

from typing import Any, get_args

from eventplan.plan.loader import (
    ALERT_KEYS,
    EVENT_KEYS,
    INSIGHT_KEYS,
    PLAN_KEYS,
    PROPERTY_KEYS,
)
from eventplan.plan.model import (
    PRIVACY_POLICIES,
    PROPERTY_TYPES,
    SURFACES,
    EventForward,
    ForwardPolicy,
    SystemEventPolicy,
    UnplannedPropertyPolicy,
)

TEXT: dict[str, Any] = {"type": "string"}
NAMES: dict[str, Any] = {"type": "array", "items": TEXT}
SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean"]}
OLD_NAMES: dict[str, Any] = {"oneOf": [TEXT, NAMES]}  # `renamed_from`


def _closed(keys: tuple[str, ...], known: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object of exactly `keys` (each typed where `known` says, else anything)."""
    return {
        "type": "object",
        "properties": {key: known.get(key, {}) for key in keys},
        "additionalProperties": False,
        **extra,
    }


def _choice(vocabulary: Any) -> dict[str, Any]:
    return {"enum": list(get_args(vocabulary))}


PROPERTY: dict[str, Any] = {
    "oneOf": [
        {"enum": list(PROPERTY_TYPES)},  # the shorthand: `chat_id: string`
        _closed(
            PROPERTY_KEYS,
            {
                "type": {"enum": list(PROPERTY_TYPES)},
                "description": TEXT,
                "required": {"type": "boolean"},
                "nullable": {"type": "boolean"},
                "enum": {"type": "array", "items": SCALAR},
                "minimum": {"type": "number"},
                "maximum": {"type": "number"},
                "min_length": {"type": "integer", "minimum": 0},
                "max_length": {"type": "integer", "minimum": 0},
                "pattern": TEXT,
                "privacy": {
                    "oneOf": [
                        {"enum": list(PRIVACY_POLICIES)},
                        _closed(
                            ("policy", "keep_last", "length"),
                            {
                                "policy": {"enum": list(PRIVACY_POLICIES)},
                                "keep_last": {"type": "integer", "minimum": 0},
                                "length": {"type": "integer", "minimum": 1},
                            },
                        ),
                    ]
                },
                "examples": {"type": "array"},
                "renamed_from": OLD_NAMES,
            },
            required=["type"],
        ),
    ]
}
PROPERTIES: dict[str, Any] = {"type": "object", "additionalProperties": PROPERTY}
EVENT: dict[str, Any] = _closed(
    EVENT_KEYS,
    {
        "description": TEXT,
        "owner": TEXT,
        "surfaces": {"type": "array", "items": {"enum": list(SURFACES)}},
        "trigger": _closed(("file", "hook"), {"file": TEXT, "hook": TEXT}),
        "value": TEXT,
        "properties": PROPERTIES,
        "forward": _choice(EventForward),
        "sample": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "keep_local": {"type": "boolean"},
        "renamed_from": OLD_NAMES,
    },
)
INSIGHT: dict[str, Any] = _closed(
    INSIGHT_KEYS,
    {
        "kind": {"enum": ["trends", "funnel"]},
        "title": TEXT,
        "description": TEXT,
        "formula": TEXT,
        "breakdowns": NAMES,
        "display": TEXT,
        "options": {"type": "object"},
    },
)


NAMING: dict[str, Any] = _closed(
    ("events", "properties", "legacy_events", "legacy_properties"),
    {"events": TEXT, "properties": TEXT, "legacy_events": NAMES, "legacy_properties": NAMES},
)
APPLIES_TO: dict[str, Any] = {
    "oneOf": [
        {"const": "all"},
        _closed(
            ("surfaces", "events"),
            {"surfaces": {"type": "array", "items": {"enum": list(SURFACES)}}, "events": NAMES},
        ),
    ]
}
GROUPS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": _closed(
        ("description", "applies_to", "properties"),
        {"description": TEXT, "applies_to": APPLIES_TO, "properties": PROPERTIES},
    ),
}
DASHBOARDS: dict[str, Any] = {
    "type": "object",
    "additionalProperties": _closed(
        ("title", "description", "insights"),
        {
            "title": TEXT,
            "description": TEXT,
            "insights": {"type": "object", "additionalProperties": INSIGHT},
        },
    ),
}
ACKNOWLEDGE: dict[str, Any] = {
    "type": "array",
    "items": _closed(
        ("code", "subjects", "reason"), {"code": TEXT, "subjects": NAMES, "reason": TEXT}
    ),
}
CODE: dict[str, Any] = _closed(
    ("surfaces", "wrappers"),
    {
        "surfaces": {"type": "object", "additionalProperties": {"enum": list(SURFACES)}},
        "wrappers": {
            "type": "object",
            "additionalProperties": _closed(
                ("event", "properties"),
                {
                    "event": {"type": ["integer", "string"]},
                    "properties": {"type": ["integer", "string", "null"]},
                },
            ),
        },
    },
)


def plan_file_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a plan file."""
    return _closed(
        PLAN_KEYS,
        {
            "plan": TEXT,
            "version": {"type": ["string", "number"]},
            "description": TEXT,
            "naming": NAMING,
            "unplanned_properties": _choice(UnplannedPropertyPolicy),
            "forward": _choice(ForwardPolicy),
            "system_events": _choice(SystemEventPolicy),
            "privacy": _closed(("hash_salt_env",), {"hash_salt_env": TEXT}),
            "property_groups": GROUPS,
            "events": {"type": "object", "additionalProperties": EVENT, "minProperties": 1},
            "dashboards": DASHBOARDS,
            "alerts": {"type": "object", "additionalProperties": _closed(ALERT_KEYS, {})},
            "acknowledge": ACKNOWLEDGE,
            "code": CODE,
        },
        required=["plan", "events"],
        **{
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "eventplan plan file",
        },
    )
