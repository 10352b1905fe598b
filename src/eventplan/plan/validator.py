"""The plan compiled into a validator: event in, verdict and violations out.

Compiled once per plan. Two paths give the same answers:

* the fast path decodes an event's properties straight into a msgspec Struct made
  for that event (types, enums, bounds, patterns, required keys checked in C) and
  only looks at key names for unplanned properties;
* the exact path walks the properties in Python and lists every violation. It runs
  only when the fast path fails, so valid traffic never pays for it.

The JSON Schema export (`schema.py`) states the same rules; a property-based test
checks that `jsonschema` and this validator agree on valid versus not.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

from eventplan.plan.model import Event, Plan, Property, Scalar
from eventplan.plan.posthog import (
    COMMON_DOLLAR_PROPERTIES,
    PLAIN_BUILTIN_PROPERTIES,
    SERVER_LIBRARY_PROPERTIES,
)

VerdictName = Literal["valid", "invalid", "unplanned"]
VIOLATION_CODES: Final = (
    "missing_required",
    "wrong_type",
    "not_in_enum",
    "out_of_range",
    "pattern_mismatch",
    "unplanned_property",
    "unplanned_event",
    "bad_name",
)
RECEIVED_MAX_CHARS: Final = 200  # a violation shows the received value, cut to this length

# RFC 3339 date-time, as JSON Schema's `format: date-time` checks it (the
# rfc3339-validator rules jsonschema uses, letters compared case-insensitively).
_RFC3339: Final = re.compile(
    r"^(\d{4})-(0[1-9]|1[0-2])-(\d{2})T(?:[01]\d|2[0123]):(?:[0-5]\d):(?:[0-5]\d)(?:\.\d+)?"
    r"(?:Z|[+-](?:[01]\d|2[0123]):[0-5]\d)$",
    re.ASCII,
)


class Violation(msgspec.Struct, frozen=True):
    code: str
    property: str | None
    expected: Any
    received: Any
    message: str
    severity: Literal["error", "warning"] = "error"


class Verdict(msgspec.Struct, frozen=True):
    verdict: VerdictName
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return self.verdict == "valid"


VALID: Final = Verdict("valid", [])


def is_datetime(value: str) -> bool:
    match = _RFC3339.match(value.upper())
    if match is None:
        return False
    year, month, day = (int(part) for part in match.groups())
    return year > 0 and 1 <= day <= calendar.monthrange(year, month)[1]


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def fits_type(value: Any, type_: str) -> bool:
    """JSON Schema's notion of a type: 2.0 is an integer, True is not."""
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "datetime":
        return isinstance(value, str) and is_datetime(value)
    if type_ == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if type_ == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return isinstance(value, int | float)


def _shown(prop: Property | None, value: Any) -> Any:
    """What a violation may show of a received value: never a secret, never a novel."""
    if prop is not None and prop.privacy.policy != "keep":
        return f"[{prop.privacy.policy}ed]" if prop.privacy.policy != "drop" else "[dropped]"
    if isinstance(value, str) and len(value) > RECEIVED_MAX_CHARS:
        return value[:RECEIVED_MAX_CHARS] + "…"
    if isinstance(value, list | dict):
        return type_name(value)
    return value


_JSON: Final = msgspec.json.Encoder()


def quoted(value: Any) -> str:
    """A value as a message shows it: text and booleans as JSON (`"completed"`,
    `true`), numbers as Python writes them (`12`, `1e+16`), which is also how the
    SQL compilation of the plan writes them (DuckDB's DOUBLE text is Python's repr)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return _JSON.encode(value).decode()


def check_value(prop: Property, value: Any) -> Violation | None:
    """The first rule `value` breaks for `prop`, or None."""
    name = prop.name
    if value is None:
        if prop.nullable:
            return None
        return Violation(
            "wrong_type", name, prop.type, None, f"{name}: expected {prop.type}, got null"
        )
    if not fits_type(value, prop.type):
        expected = "RFC 3339 date-time" if prop.type == "datetime" else prop.type
        return Violation(
            "wrong_type",
            name,
            prop.type,
            _shown(prop, value),
            f"{name}: expected {expected}, got {type_name(value)} {quoted(_shown(prop, value))}",
        )
    if prop.enum is not None and not _in_enum(value, prop.enum):
        return Violation(
            "not_in_enum",
            name,
            list(prop.enum),
            _shown(prop, value),
            f"{name}: {quoted(_shown(prop, value))} is not one of {', '.join(map(str, prop.enum))}",
        )
    if isinstance(value, str):
        if (prop.min_length is not None and len(value) < prop.min_length) or (
            prop.max_length is not None and len(value) > prop.max_length
        ):
            bounds = bounds_text(prop.min_length, prop.max_length)
            return Violation(
                "out_of_range",
                name,
                f"length {bounds}",
                _shown(prop, value),
                f"{name}: length {len(value)} is outside {bounds}",
            )
        if prop.pattern is not None and re.search(prop.pattern, value) is None:
            return Violation(
                "pattern_mismatch",
                name,
                prop.pattern,
                _shown(prop, value),
                f"{name}: {quoted(_shown(prop, value))} does not match {prop.pattern}",
            )
    elif isinstance(value, int | float) and (
        (prop.minimum is not None and value < prop.minimum)
        or (prop.maximum is not None and value > prop.maximum)
    ):
        bounds = bounds_text(prop.minimum, prop.maximum)
        return Violation(
            "out_of_range",
            name,
            bounds,
            _shown(prop, value),
            f"{name}: {quoted(value)} is outside {bounds}",
        )
    return None


def accepts(prop: Property) -> Callable[[Any], bool]:
    """A quick test that passes only values `check_value` accepts (it may refuse some
    that `check_value` accepts; `check_value` then decides). It lets the exact path
    skip the full check for the many properties of an invalid event that are fine."""
    nullable = prop.nullable
    if prop.enum is not None:
        if not all(isinstance(option, str) for option in prop.enum):
            return _refuse
        # A str is only ever equal to a str, so membership is exact for text enums;
        # an option the property's own length, pattern or type rules refuse is left out.
        options = frozenset(o for o in prop.enum if check_value(prop, o) is None)
        return lambda v: (type(v) is str and v in options) or (v is None and nullable)
    if prop.type == "boolean":
        return (lambda v: v is True or v is False or v is None) if nullable else _is_bool
    low, high = prop.minimum, prop.maximum
    if prop.type in ("integer", "number"):
        kinds = (int,) if prop.type == "integer" else (int, float)
        low_ = -math.inf if low is None else low
        high_ = math.inf if high is None else high
        return lambda v: (type(v) in kinds and low_ <= v <= high_) or (v is None and nullable)
    return _accepts_text(prop)


def _accepts_text(prop: Property) -> Callable[[Any], bool]:
    """`accepts` for a string or datetime property without an enum."""
    nullable = prop.nullable
    shortest = prop.min_length or 0
    longest = math.inf if prop.max_length is None else prop.max_length
    search = re.compile(prop.pattern).search if prop.pattern is not None else None
    is_date = prop.type == "datetime"
    return lambda v: (
        (
            type(v) is str
            and shortest <= len(v) <= longest
            and (search is None or search(v) is not None)
            and (not is_date or is_datetime(v))
        )
        or (v is None and nullable)
    )


def _envelope_problem(name: Any, properties: Any) -> Violation:
    """What is wrong with an event's name, else with its `properties`."""
    if not isinstance(name, str) or not name:
        return Violation(
            "missing_required" if not name else "wrong_type",
            "event",
            "string",
            _shown(None, name),
            "the event has no name (`event` must be a non-empty string)",
        )
    return Violation(
        "wrong_type",
        "properties",
        "object",
        type_name(properties),
        f"`properties` must be an object, got {type_name(properties)}",
    )


def _refuse(value: Any) -> bool:
    return False


def _is_bool(value: Any) -> bool:
    return value is True or value is False


def _in_enum(value: Any, enum: tuple[Scalar, ...]) -> bool:
    # `True == 1` in Python; JSON does not think so, and neither do we.
    return any(
        value == option and isinstance(option, bool) == isinstance(value, bool) for option in enum
    )


def bounds_text(low: float | None, high: float | None) -> str:
    """How a message words a range: `[1, 5]`, `>= 1` or `<= 5`."""
    if low is not None and high is not None:
        return f"[{_num(low)}, {_num(high)}]"
    if low is not None:
        return f">= {_num(low)}"
    return f"<= {_num(high)}"


def _num(value: float | None) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# -- the fast path: one msgspec Struct per planned event ---------------------------


def _fast_type(prop: Property) -> Any:
    """The msgspec annotation that accepts exactly what `check_value` accepts, or None.

    It may accept less than the exact path (msgspec's `int` refuses 2.0, which JSON
    Schema calls an integer): what it refuses goes to the exact path, which decides.
    It must never accept more. None means no msgspec equivalent: exact path only.
    """
    if prop.enum is not None:
        if prop.type != "string":
            return None  # integer enums accept 2.0 for 2 (JSON Schema): exact path only
        base: Any = Literal[tuple(prop.enum)]
    else:
        base = {"string": str, "datetime": str, "boolean": bool, "integer": int}.get(
            prop.type, float
        )
    meta = _fast_constraints(prop) if prop.enum is None else {}
    annotated = Annotated[base, msgspec.Meta(**meta)] if meta else base
    return annotated | None if prop.nullable else annotated


def _fast_constraints(prop: Property) -> dict[str, Any]:
    """msgspec.Meta's arguments for the property's lengths, pattern and bounds."""
    pairs: list[tuple[str, Any]]
    if prop.type in ("string", "datetime"):
        pairs = [
            ("min_length", prop.min_length),
            ("max_length", prop.max_length),
            ("pattern", prop.pattern),
        ]
    elif prop.type in ("integer", "number"):
        pairs = [("ge", prop.minimum), ("le", prop.maximum)]
    else:
        pairs = []
    return {key: value for key, value in pairs if value is not None}


class _CompiledEvent:
    __slots__ = (
        "checks",
        "converters",
        "datetime_fields",
        "decoders",
        "known",
        "name",
        "properties",
    )

    def __init__(self, plan: Plan, event: Event) -> None:
        self.name = event.name
        self.properties = plan.properties_of(event.name)
        self.checks = tuple((name, prop, accepts(prop)) for name, prop in self.properties.items())
        self.known = frozenset(self.properties) | PLAIN_BUILTIN_PROPERTIES
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        rename: dict[str, str] = {}
        datetime_fields: list[str] = []
        # Tried in order; an unknown key moves on to the next (see `_tiers`).
        self.decoders: tuple[msgspec.json.Decoder[Any], ...] = ()
        self.converters: tuple[type[msgspec.Struct], ...] = ()
        for index, prop in enumerate(self.properties.values()):
            annotation = _fast_type(prop)
            if annotation is None:
                return  # exact path only
            field = f"p{index}"
            rename[field] = prop.name
            fields.append((field, annotation) if prop.required else (field, annotation, None))
            if prop.type == "datetime":
                datetime_fields.append(field)
        self.datetime_fields = tuple(datetime_fields)
        name = "Props_" + re.sub(r"\W", "_", event.name)
        decoders = []
        converters = []
        for tier in _tiers(plan):
            # PostHog's own keys are declared so they are not unknown: skipped
            # undecoded as Raw from JSON bytes, passed through as Any from objects.
            for extra_type in (msgspec.Raw, Any):
                all_fields = list(fields)
                all_rename = dict(rename)
                for index, key in enumerate(k for k in tier if k not in self.properties):
                    all_rename[f"b{index}"] = key
                    all_fields.append((f"b{index}", extra_type, None))
                struct = msgspec.defstruct(
                    name,
                    all_fields,
                    rename=all_rename,
                    forbid_unknown_fields=plan.unplanned_properties != "allow",
                    gc=False,
                    kw_only=True,  # required and optional fields in any order
                )
                if extra_type is Any:
                    converters.append(struct)
                else:
                    decoders.append(msgspec.json.Decoder(struct))
        self.decoders = tuple(decoders)
        self.converters = tuple(converters)

    # The first Struct that knows every key decides; none decides no (the exact path will).

    def fits(self, properties: Mapping[str, Any]) -> bool:
        for struct in self.converters:
            try:
                return self._datetimes_ok(msgspec.convert(properties, struct))
            except msgspec.ValidationError as error:
                if not _unknown_key(error):
                    return False
        return False

    def fits_raw(self, raw_properties: bytes | msgspec.Raw) -> bool:
        for decoder in self.decoders:
            try:
                return self._datetimes_ok(decoder.decode(raw_properties))
            except msgspec.ValidationError as error:
                if not _unknown_key(error):
                    return False
        return False

    def _datetimes_ok(self, props: Any) -> bool:
        return not self.datetime_fields or all(
            getattr(props, f) is None or is_datetime(getattr(props, f))
            for f in self.datetime_fields
        )


def _tiers(plan: Plan) -> tuple[tuple[str, ...], ...]:
    """The PostHog keys each fast-path Struct declares besides the plan's, in the order
    they are tried. An unknown key makes the fast check fail (the exact path then
    decides), so every usual key must be declared, but each declared field costs every
    decode (msgspec fills its default): the server libraries' few keys go first, a
    browser's dozens second. A browser event fails the first within its first keys."""
    if plan.unplanned_properties == "allow":
        return ((),)  # unknown keys are fine: nothing to declare
    return (
        (*PLAIN_BUILTIN_PROPERTIES, *SERVER_LIBRARY_PROPERTIES),
        (*PLAIN_BUILTIN_PROPERTIES, *COMMON_DOLLAR_PROPERTIES),
    )


def _unknown_key(error: msgspec.ValidationError) -> bool:
    return str(error).startswith("Object contains unknown field")


class RawEvent(msgspec.Struct, gc=False):
    """A PostHog event as sent, with its properties left undecoded for the fast path."""

    event: Any = None
    properties: msgspec.Raw = msgspec.Raw(b"{}")
    distinct_id: Any = None
    uuid: Any = None
    timestamp: Any = None


class _Envelope(msgspec.Struct, gc=False):
    batch: list[RawEvent]


_ENVELOPE_DECODER: Final = msgspec.json.Decoder(_Envelope)
_PROPERTIES_DECODER: Final = msgspec.json.Decoder(dict[str, Any])


class Validator:
    """The plan's rules, compiled. Thread-safe and reusable; build one per plan version."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._events = {name: _CompiledEvent(plan, event) for name, event in plan.events.items()}
        self._event_name = re.compile(plan.naming.event_pattern)
        self._property_name = re.compile(plan.naming.property_pattern)
        self._legacy_properties = frozenset(plan.naming.legacy_properties)

    # -- public API --------------------------------------------------------------

    def check(self, event: Any) -> Verdict:
        """The verdict for one PostHog-shaped event (`event`, `properties`, ...)."""
        if not isinstance(event, Mapping):
            return Verdict(
                "invalid",
                [
                    Violation(
                        "wrong_type",
                        None,
                        "object",
                        type_name(event),
                        f"an event must be a JSON object, got {type_name(event)}",
                    )
                ],
            )
        # A missing `properties` is an empty one; a `null` one is a wrong type.
        return self.check_properties(event.get("event"), event.get("properties", {}))

    def check_properties(self, name: Any, properties: Any) -> Verdict:
        if not isinstance(name, str) or not name or not isinstance(properties, Mapping):
            return Verdict("invalid", [_envelope_problem(name, properties)])
        compiled = self._events.get(name)
        if compiled is None:
            return self._unplanned_event(name)
        if compiled.fits(properties):
            return VALID
        return self._exact(compiled, properties)

    def check_raw(self, name: Any, raw_properties: bytes | msgspec.Raw) -> Verdict:
        """The verdict for an event whose properties are still JSON bytes (the fast path)."""
        compiled = self._events.get(name) if isinstance(name, str) else None
        if compiled is not None and compiled.fits_raw(raw_properties):
            return VALID
        try:
            properties = _PROPERTIES_DECODER.decode(raw_properties)
        except msgspec.ValidationError:
            properties = None
        if compiled is not None and isinstance(properties, dict):
            return self._exact(compiled, properties)  # the fast path has had its say
        return self.check_properties(name, properties)

    def check_batch(self, body: bytes) -> list[tuple[RawEvent, Verdict]]:
        """Decode a `/batch/` body (`{"batch": [...]}`) and judge every event in it."""
        envelope = _ENVELOPE_DECODER.decode(body)
        return [(event, self.check_raw(event.event, event.properties)) for event in envelope.batch]

    # -- the exact path ----------------------------------------------------------

    def _exact(self, compiled: _CompiledEvent, properties: Mapping[str, Any]) -> Verdict:
        violations: list[Violation] = []
        for name, prop, accept in compiled.checks:
            if name not in properties:
                if prop.required:
                    violations.append(
                        Violation(
                            "missing_required",
                            name,
                            prop.type,
                            None,
                            f"{name}: required by {compiled.name} but missing",
                        )
                    )
                continue
            value = properties[name]
            if accept(value):
                continue
            problem = check_value(prop, value)
            if problem is not None:
                violations.append(problem)
        violations += self._unplanned_properties(compiled, properties)
        if any(v.severity == "error" for v in violations):
            return Verdict("invalid", violations)
        return Verdict("valid", violations)

    def _unplanned_properties(
        self, compiled: _CompiledEvent, properties: Mapping[str, Any]
    ) -> list[Violation]:
        """The properties the event's plan does not name, as the plan's policy says."""
        policy = self.plan.unplanned_properties
        if policy == "allow":
            return []
        severity: Literal["error", "warning"] = "error" if policy == "reject" else "warning"
        return [
            self._unplanned_property(compiled.name, key, properties[key], severity)
            for key in properties
            if key not in compiled.known and not key.startswith("$")
        ]

    def _unplanned_property(
        self, event: str, key: str, value: Any, severity: Literal["error", "warning"]
    ) -> Violation:
        if not self._property_name.search(key) and key not in self._legacy_properties:
            return Violation(
                "bad_name",
                key,
                self.plan.naming.property_pattern,
                _shown(None, value),
                f"{key}: not planned for {event}, and not a snake_case name",
                severity,
            )
        return Violation(
            "unplanned_property",
            key,
            None,
            _shown(None, value),
            f"{key}: not planned for {event}",
            severity,
        )

    def _unplanned_event(self, name: str) -> Verdict:
        if name.startswith("$") and self.plan.system_events == "valid":
            return VALID
        violations = [
            Violation("unplanned_event", None, None, name, f"event `{name}` is not in the plan")
        ]
        if not name.startswith("$") and not self._event_name.search(name):
            violations.append(
                Violation(
                    "bad_name",
                    None,
                    self.plan.naming.event_pattern,
                    name,
                    f"event `{name}` does not follow the naming convention",
                )
            )
        return Verdict("unplanned", violations)


def summarize(verdicts: Iterable[Verdict]) -> dict[str, int]:
    counts = {"valid": 0, "invalid": 0, "unplanned": 0}
    for verdict in verdicts:
        counts[verdict.verdict] += 1
    return counts
