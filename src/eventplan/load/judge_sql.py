"""The plan compiled into SQL: every event's verdict and violations in one statement.

The same rules as `plan.validator.Validator`, with the same codes, properties,
expected and received values, messages, severities and order, for events as the log
holds them (a non-empty name, properties an object). Written for how DuckDB
evaluates, in two passes:

* every event: its properties parsed once into two structs of the planned
  properties (`json_transform`: each value as JSON text, and each as its planned
  type), its keys listed once. Then one CASE on the event's name picks that event's
  checks, each a cheap test of those fields (the JSON text's first character for
  the type, the typed value for enums, lengths, patterns and bounds). Most events
  are valid, and pay for these tests alone;
* only the events a check failed: joined with a table of their event's rules, one
  row per planned property, where a single generic expression names the first rule
  each value breaks, with the validator's message. Kept apart because a violation
  spelt out per property and event made a statement of 800 KB that took DuckDB 12 s
  to bind and ran at 6,000 events/s.

Unplanned properties come from the keys and a table of each event's known names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import duckdb
import msgspec
import pyarrow as pa

from eventplan.plan.model import Plan, Property
from eventplan.plan.posthog import PLAIN_BUILTIN_PROPERTIES
from eventplan.plan.validator import RECEIVED_MAX_CHARS, bounds_text
from eventplan.store.columns import quote

# RFC 3339 date-time as `plan.validator.is_datetime` reads it (upper-cased, `re.match`
# with `$`, which also matches before a final newline).
RFC3339: Final = (
    r"\d{4}-(0[1-9]|1[0-2])-\d{2}T([01]\d|2[0123]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"(Z|[+-]([01]\d|2[0123]):[0-5]\d)\n?"
)
# What `json_type` says of a value, as the validator's `type_name` names it.
TYPE_NAMES: Final = {
    "VARCHAR": "string",
    "BIGINT": "integer",
    "UBIGINT": "integer",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "OBJECT": "object",
}
VIOLATION: Final = (
    "STRUCT(code VARCHAR, property VARCHAR, expected JSON, received JSON, "
    "message VARCHAR, severity VARCHAR)"
)
NONE: Final = f"[]::{VIOLATION}[]"
ERROR: Final = "'error'"
TYPED: Final = {"string": "VARCHAR", "datetime": "VARCHAR", "integer": "DOUBLE", "number": "DOUBLE"}
NUMBER_START: Final = "('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9')"


def text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def json_literal(value: Any) -> str:
    return f"{text(msgspec.json.encode(value).decode())}::JSON"


def json_path(name: str) -> str:
    """A JSON Pointer to one key, whatever characters it has."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def re2(pattern: str) -> str:
    """A Python `re.search` pattern as RE2 (DuckDB's regexps) reads it the same way:
    Python's `$` also matches before a final newline, and its `\\d` any Unicode digit."""
    out = []
    index = 0
    in_class = False
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            pair = pattern[index : index + 2]
            out.append("\\p{Nd}" if pair == "\\d" else pair)
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[index + 1 : index + 2] == "]":  # `[]…]`: a literal ] first
                out.append("[]")
                index += 2
                continue
        elif char == "$":
            char = "(?:\\n?\\z)"
        out.append(char)
        index += 1
    return "".join(out)


def json_text(value: str) -> str:
    """SQL of a JSON value's text as msgspec writes it (`plan.validator.quoted`):
    DuckDB writes the hex of a control character's escape in capitals."""
    for code in (0x0B, 0x0E, 0x0F, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F):
        escape = f"\\u{code:04X}"
        value = f"replace({value}, {text(escape)}, {text(escape.lower())})"
    return value


# -- the first pass: a cheap test per planned property ------------------------------


@dataclass(frozen=True)
class _Field:
    """How the first pass reads one property: its JSON text, its typed value."""

    raw: str  # JSON text; NULL when null or missing
    typed: str  # VARCHAR for text, DOUBLE for numbers

    @property
    def first(self) -> str:
        return f"left({self.raw}, 1)"


def _type_ok(prop: Property, field: _Field) -> str:
    """SQL true when a value that is not null is of the property's type."""
    if prop.type in ("string", "datetime"):
        ok = f"{field.first} = '\"'"
        if prop.type == "datetime":
            date = f"upper({field.typed})"
            ok += (
                f" AND regexp_full_match({date}, {text(RFC3339)}) "
                f"AND TRY_CAST(left({date}, 10) AS DATE) IS NOT NULL AND left({date}, 4) <> '0000'"
            )
        return ok
    if prop.type == "boolean":
        return f"{field.raw} IN ('true', 'false')"
    ok = f"{field.first} IN {NUMBER_START}"
    if prop.type == "integer":
        ok += f" AND {field.typed} = trunc({field.typed})"
    return ok


def _value_ok(prop: Property, field: _Field) -> str:
    """SQL true when a value that is not null breaks none of `check_value`'s rules."""
    tests = [_type_ok(prop, field)]
    if prop.enum is not None:
        strings, numbers, booleans = _enum_parts(prop.enum)
        options = []
        if strings and prop.type in ("string", "datetime"):
            options.append(f"{field.typed} IN ({', '.join(map(text, strings))})")
        if numbers and prop.type in ("integer", "number"):
            options.append(f"{field.typed} IN ({', '.join(repr(float(n)) for n in numbers)})")
        if booleans and prop.type == "boolean":
            options.append(f"{field.raw} IN ({', '.join(text(str(b).lower()) for b in booleans)})")
        tests.append("(" + (" OR ".join(options) or "false") + ")")
    if prop.type in ("string", "datetime"):
        if prop.min_length is not None:
            tests.append(f"length({field.typed}) >= {prop.min_length}")
        if prop.max_length is not None:
            tests.append(f"length({field.typed}) <= {prop.max_length}")
        if prop.pattern is not None:
            tests.append(f"regexp_matches({field.typed}, {text(re2(prop.pattern))})")
    if prop.type in ("integer", "number"):
        if prop.minimum is not None:
            tests.append(f"{field.typed} >= {prop.minimum!r}")
        if prop.maximum is not None:
            tests.append(f"{field.typed} <= {prop.maximum!r}")
    return " AND ".join(tests)


def _broken(prop: Property, field: _Field) -> str:
    """SQL true when an event may break the property's rules (never false when it
    does; the second pass decides)."""
    present = f"list_contains(_keys, {text(prop.name)})"
    when_null = {
        (True, False): "true",
        (True, True): f"NOT {present}",
        (False, False): present,
        (False, True): "false",
    }[(prop.required, prop.nullable)]
    return (
        f"(CASE WHEN {field.raw} IS NULL THEN {when_null} ELSE NOT ({_value_ok(prop, field)}) END)"
    )


# -- the second pass: the violations, from a table of rules -------------------------


class Rule(msgspec.Struct, array_like=True):
    """One planned property of one event, as a generic check reads it (DuckDB's second
    pass, ClickHouse's only one)."""

    event: str
    position: int
    name: str
    path: str
    type: str
    type_expected: str  # as the message words it
    required: bool
    nullable: bool
    enum: str | None  # JSON list
    enum_text: str | None  # as the message lists it
    enum_strings: list[str] | None
    enum_numbers: list[float] | None
    enum_booleans: list[bool] | None
    min_length: int | None
    max_length: int | None
    length_bounds: str | None
    pattern: str | None
    pattern_re2: str | None
    minimum: float | None
    maximum: float | None
    bounds: str | None
    hidden: str | None  # what a violation shows instead of a private value


def _enum_parts(enum: tuple[Any, ...]) -> tuple[list[str], list[float], list[bool]]:
    """An enum's text, number and boolean options (a boolean is never a number)."""
    return (
        [o for o in enum if isinstance(o, str)],
        [float(o) for o in enum if isinstance(o, int | float) and not isinstance(o, bool)],
        [o for o in enum if isinstance(o, bool)],
    )


def rule_of(event: str, position: int, prop: Property) -> Rule:
    enum = prop.enum
    strings, numbers, booleans = _enum_parts(enum) if enum is not None else (None, None, None)
    lengths = (prop.min_length, prop.max_length)
    bounds = (prop.minimum, prop.maximum)
    policy = prop.privacy.policy
    return Rule(
        event=event,
        position=position,
        name=prop.name,
        path=json_path(prop.name),
        type=prop.type,
        type_expected="RFC 3339 date-time" if prop.type == "datetime" else prop.type,
        required=prop.required,
        nullable=prop.nullable,
        enum=None if enum is None else msgspec.json.encode(list(enum)).decode(),
        enum_text=None if enum is None else ", ".join(map(str, enum)),
        enum_strings=strings,
        enum_numbers=numbers,
        enum_booleans=booleans,
        min_length=prop.min_length,
        max_length=prop.max_length,
        length_bounds=None if lengths == (None, None) else bounds_text(*lengths),
        pattern=prop.pattern,
        pattern_re2=None if prop.pattern is None else re2(prop.pattern),
        minimum=prop.minimum,
        maximum=prop.maximum,
        bounds=None if bounds == (None, None) else bounds_text(*bounds),
        hidden=None if policy == "keep" else ("[dropped]" if policy == "drop" else f"[{policy}ed]"),
    )


RULE_SCHEMA: Final = pa.schema(
    [
        ("event", pa.string()),
        ("position", pa.int32()),
        ("name", pa.string()),
        ("path", pa.string()),
        ("type", pa.string()),
        ("type_expected", pa.string()),
        ("required", pa.bool_()),
        ("nullable", pa.bool_()),
        ("enum", pa.string()),
        ("enum_text", pa.string()),
        ("enum_strings", pa.list_(pa.string())),
        ("enum_numbers", pa.list_(pa.float64())),
        ("enum_booleans", pa.list_(pa.bool_())),
        ("min_length", pa.int64()),
        ("max_length", pa.int64()),
        ("length_bounds", pa.string()),
        ("pattern", pa.string()),
        ("pattern_re2", pa.string()),
        ("minimum", pa.float64()),
        ("maximum", pa.float64()),
        ("bounds", pa.string()),
        ("hidden", pa.string()),
    ]
)


def _shown(value: str, hidden: str = "NULL") -> str:
    """SQL JSON of what a violation shows of a JSON value (`validator._shown`)."""
    kind = f"json_type({value})"
    string = f"json_extract_string({value}, '$')"
    return (
        f"(CASE WHEN {hidden} IS NOT NULL THEN to_json({hidden}) "
        f"WHEN {kind} = 'VARCHAR' AND length({string}) > {RECEIVED_MAX_CHARS} "
        f"THEN to_json(left({string}, {RECEIVED_MAX_CHARS}) || '…') "
        f"WHEN {kind} IN ('ARRAY', 'OBJECT') THEN to_json(lower({kind})) "
        f"ELSE {value} END)"
    )


def _shown_text(value: str, hidden: str = "NULL") -> str:
    """SQL of what a violation shows of a JSON value, as its message writes it
    (`plan.validator.quoted`)."""
    return (
        f"(CASE WHEN {hidden} IS NULL AND json_type({value}) = 'DOUBLE' "
        f"THEN TRY_CAST({value} AS DOUBLE)::VARCHAR "
        f"ELSE {json_text(f'{_shown(value, hidden)}::VARCHAR')} END)"
    )


def _violation(
    code: str, prop: str, expected: str, received: str, message: str, severity: str
) -> str:
    """SQL for one violation struct; every argument but `code` is already SQL."""
    return (
        f"{{'code': {text(code)}, 'property': {prop}, 'expected': {expected}, "
        f"'received': {received}, 'message': {message}, 'severity': {severity}}}"
    )


def _generic_tests(kind: str, string: str, number: str) -> tuple[str, str]:
    """SQL true when a value `v` fits rule `r`'s type, and when it is one of its enum's
    options (a boolean only a boolean), over the rules table's columns."""
    fits = (
        f"CASE r.type WHEN 'string' THEN {kind} = 'VARCHAR' "
        f"WHEN 'datetime' THEN {kind} = 'VARCHAR' AND regexp_full_match(upper({string}), "
        f"{text(RFC3339)}) AND TRY_CAST(left({string}, 10) AS DATE) IS NOT NULL "
        f"AND left({string}, 4) <> '0000' "
        f"WHEN 'boolean' THEN {kind} = 'BOOLEAN' "
        f"WHEN 'integer' THEN {kind} IN ('BIGINT', 'UBIGINT') "
        f"OR ({kind} = 'DOUBLE' AND {number} = trunc({number})) "
        f"ELSE {kind} IN ('BIGINT', 'UBIGINT', 'DOUBLE') END"
    )
    in_enum = (
        f"(({kind} = 'VARCHAR' AND list_contains(r.enum_strings, {string})) "
        f"OR ({kind} = 'BOOLEAN' AND list_contains(r.enum_booleans, TRY_CAST(v AS BOOLEAN))) "
        f"OR ({kind} IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
        f"AND list_contains(r.enum_numbers, {number})))"
    )
    return fits, in_enum


def _rule_violation() -> str:
    """SQL of the first rule `v` (a value, JSON; NULL when missing) breaks of rule
    `r`, NULL when none: `check_value` generically, over the rules table."""
    kind = "json_type(v)"
    string = "json_extract_string(v, '$')"
    number = "TRY_CAST(v AS DOUBLE)"
    shown, shown_text = _shown("v", "r.hidden"), _shown_text("v", "r.hidden")
    type_names = " ".join(f"WHEN {text(k)} THEN {text(n)}" for k, n in TYPE_NAMES.items())
    fits, in_enum = _generic_tests(kind, string, number)
    length = f"length({string})"
    outside = f"{number} < r.minimum OR {number} > r.maximum"
    got = f"(CASE {kind} {type_names} END)"
    rules = [
        ("missing_required", "v IS NULL AND r.required", "to_json(r.type)", "NULL",
         "r.name || ': required by ' || r.event || ' but missing'"),
        ("wrong_type", f"{kind} = 'NULL' AND NOT r.nullable", "to_json(r.type)", "NULL",
         "r.name || ': expected ' || r.type || ', got null'"),
        ("wrong_type", f"NOT ({fits})", "to_json(r.type)", shown,
         f"r.name || ': expected ' || r.type_expected || ', got ' || {got} || ' ' || {shown_text}"),
        ("not_in_enum", f"r.enum IS NOT NULL AND NOT {in_enum}", "r.enum::JSON", shown,
         f"r.name || ': ' || {shown_text} || ' is not one of ' || r.enum_text"),
        ("out_of_range",
         f"{kind} = 'VARCHAR' AND ({length} < r.min_length OR {length} > r.max_length)",
         "to_json('length ' || r.length_bounds)", shown,
         f"r.name || ': length ' || {length} || ' is outside ' || r.length_bounds"),
        ("pattern_mismatch", f"{kind} = 'VARCHAR' AND NOT regexp_matches({string}, r.pattern_re2)",
         "to_json(r.pattern)", shown,
         f"r.name || ': ' || {shown_text} || ' does not match ' || r.pattern"),
        ("out_of_range",
         f"{kind} IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND ({outside})",
         "to_json(r.bounds)", shown,
         f"r.name || ': ' || {_shown_text('v')} || ' is outside ' || r.bounds"),
    ]  # fmt: skip
    # A missing or null value breaks at most the first two rules; the others need one.
    cases = [
        f"WHEN {test} THEN {_violation(code, 'r.name', expected, received, message, ERROR)}"
        for code, test, expected, received, message in rules
    ]
    fine = f"(v IS NULL AND NOT r.required) OR ({kind} = 'NULL' AND r.nullable)"
    return f"CASE WHEN {fine} THEN NULL {' '.join(cases)} END"


def _structure(fields: str) -> str:
    """SQL of the properties parsed into a struct of `fields` (JSON text); NULL when
    there are none (a plan without properties), which DuckDB refuses as a structure."""
    return f"json_transform(_in.properties, {text('{' + fields + '}')})" if fields else "NULL"


def judged_properties(plan: Plan, event: str, stored: bool) -> dict[str, Property]:
    """The properties of an event that are judged: all of them, or when judging stored
    events, those the privacy policy leaves as they were sent."""
    properties = plan.properties_of(event)
    if not stored:
        return properties
    return {n: p for n, p in properties.items() if p.privacy.policy == "keep"}


class JudgeSql:
    """One plan's rules as SQL over a relation with `event` (VARCHAR, not empty) and
    `properties` (a JSON object) columns. `register` puts the plan's rule tables
    into a connection; `select` then judges any relation there.

    `stored`: the events are judged again as the store holds them, after the privacy
    policy (`Judge.rejudge_stored`). A property the policy changes (hashed, masked,
    cut, dropped) is not judged again: it keeps the violations it had when captured,
    which the relation gives as `captured` (JSON, a list of violations, or NULL)."""

    def __init__(self, plan: Plan, prefix: str = "_plan", *, stored: bool = False) -> None:
        self.plan = plan
        self.prefix = prefix
        self.stored = stored
        types: dict[str, set[str]] = {}
        for event in plan.events:
            for name, prop in plan.properties_of(event).items():
                types.setdefault(name, set()).add(TYPED.get(prop.type, "BOOLEAN"))
        folded: dict[str, int] = {}
        for name in types:
            folded[name.lower()] = folded.get(name.lower(), 0) + 1
        # A struct's field names ignore case, and have one type: other names are
        # read straight from the JSON.
        self._raw = sorted(n for n in types if folded[n.lower()] == 1)
        self._typed = {
            n: next(iter(t))
            for n, t in types.items()
            if n in self._raw and len(t) == 1 and t != {"BOOLEAN"}
        }

    def _judged(self, event: str) -> dict[str, Property]:
        return judged_properties(self.plan, event, self.stored)

    def tables(self) -> dict[str, pa.Table]:
        """The rule tables this plan's `select` reads, by the names it reads them."""
        rules = [
            rule_of(event, position, prop)
            for event in self.plan.events
            for position, prop in enumerate(self._judged(event).values())
        ]
        table = pa.Table.from_pylist(
            [msgspec.structs.asdict(rule) for rule in rules], schema=RULE_SCHEMA
        )
        events = list(self.plan.events)
        known = [sorted(set(self.plan.properties_of(e)) | PLAIN_BUILTIN_PROPERTIES) for e in events]
        kept = [sorted(set(self.plan.properties_of(e)) - set(self._judged(e))) for e in events]
        return {
            f"{self.prefix}_rules": table,
            f"{self.prefix}_known": pa.table(
                {
                    "event": pa.array(events, pa.string()),
                    "known": pa.array(known, pa.list_(pa.string())),
                    "kept": pa.array(kept, pa.list_(pa.string())),
                }
            ),
        }

    def register(self, connection: duckdb.DuckDBPyConnection) -> None:
        """The rule tables, readable in `connection`."""
        for name, table in self.tables().items():
            connection.register(name, table)

    def _field(self, name: str, prop: Property) -> _Field:
        """The property's JSON text from the struct of them all (or the JSON, for a name
        that cannot be a field), and its value as its type, typed by the same way."""
        if name in self._raw:
            raw = f"_raw.{quote(name)}::VARCHAR"
        else:
            path = text(json_path(name))
            raw = f"nullif(json_extract(properties, {path}), 'null'::JSON)::VARCHAR"
        wanted = TYPED.get(prop.type)
        if wanted is None:
            return _Field(raw, "NULL")  # a boolean is read off its text
        if self._typed.get(name) == wanted:
            return _Field(raw, f"_typed.{quote(name)}")
        if wanted == "DOUBLE":
            return _Field(raw, f"TRY_CAST({raw}::JSON AS DOUBLE)")
        return _Field(raw, f"json_extract_string({raw}::JSON, '$')")

    def _first_pass(self) -> str:
        """SQL true when an event may break a rule of its event's plan."""
        cases = []
        for event in self.plan.events:
            tests = [
                _broken(prop, self._field(name, prop)) for name, prop in self._judged(event).items()
            ]
            cases.append(f"WHEN {text(event)} THEN {' OR '.join(tests) or 'false'}")
        return f"(CASE event {' '.join(cases)} ELSE false END)"

    def _unplanned(self) -> str:
        """SQL of the violations of a planned event's `_unplanned` keys."""
        plan = self.plan
        if plan.unplanned_properties == "allow":
            return NONE
        severity = text("error" if plan.unplanned_properties == "reject" else "warning")
        value = "json_extract(properties, '/' || replace(replace(k, '~', '~0'), '/', '~1'))"
        shown = _shown(f"nullif({value}, 'null'::JSON)")
        bad_name = f"NOT regexp_matches(k, {text(re2(plan.naming.property_pattern))})"
        if plan.naming.legacy_properties:
            bad_name += f" AND k NOT IN ({', '.join(map(text, plan.naming.legacy_properties))})"
        badly_named = _violation(
            "bad_name",
            "k",
            json_literal(plan.naming.property_pattern),
            shown,
            "k || ': not planned for ' || event || ', and not a snake_case name'",
            severity,
        )
        message = "k || ': not planned for ' || event"
        unplanned = _violation("unplanned_property", "k", "NULL", shown, message, severity)
        return (
            f"list_transform(_unplanned, lambda k: CASE WHEN {bad_name} THEN {badly_named} "
            f"ELSE {unplanned} END)"
        )

    def _unplanned_event(self) -> str:
        """SQL of the violations of an event the plan does not have."""
        naming = self.plan.naming
        not_planned = _violation(
            "unplanned_event",
            "NULL",
            "NULL",
            "to_json(event)",
            "'event `' || event || '` is not in the plan'",
            "'error'",
        )
        bad_name = _violation(
            "bad_name",
            "NULL",
            json_literal(naming.event_pattern),
            "to_json(event)",
            "'event `' || event || '` does not follow the naming convention'",
            "'error'",
        )
        system = f"[{not_planned}]" if self.plan.system_events == "unplanned" else NONE
        return (
            f"CASE WHEN starts_with(event, '$') THEN {system} "
            f"WHEN NOT regexp_matches(event, {text(re2(naming.event_pattern))}) "
            f"THEN [{not_planned}, {bad_name}] ELSE [{not_planned}] END"
        )

    def _parsed(self, source: str) -> str:
        """SQL of `source`'s rows, numbered, each with its keys, its planned values (as
        JSON text and as their types), whether its event is planned, and its unplanned
        keys."""
        raw = ", ".join(f'{msgspec.json.encode(n).decode()}: "JSON"' for n in self._raw)
        typed = ", ".join(
            f'{msgspec.json.encode(n).decode()}: "{t}"' for n, t in self._typed.items()
        )
        unplanned_keys = (
            "[]::VARCHAR[]"
            if self.plan.unplanned_properties == "allow"
            else "list_filter(_keys, lambda k: NOT starts_with(k, '$') "
            "AND NOT list_contains(_known.known, k))"
        )
        return f"""
            SELECT _in.*, json_keys(_in.properties) AS _keys,
                {_structure(raw)} AS _raw, {_structure(typed)} AS _typed,
                _known.event IS NOT NULL AS _planned, _known.kept AS _kept,
                CASE WHEN _known.event IS NOT NULL THEN {unplanned_keys} END AS _unplanned
            FROM (SELECT *, row_number() OVER () AS _row FROM ({source})) AS _in
            LEFT JOIN {self.prefix}_known AS _known ON _known.event = _in.event
        """

    def _flagged(self) -> str:
        """SQL of the violations of the planned properties of each event `_first`
        flagged, a list per `_row` in the plan's order."""
        return f"""
            SELECT _row, list(_v ORDER BY position) FILTER (WHERE _v IS NOT NULL) AS _listed
            FROM (
                SELECT r._row, r.position, {_rule_violation()} AS _v
                FROM (
                    SELECT f._row, json_extract(f.properties, rule.path) AS v, rule.*
                    FROM _first AS f JOIN {self.prefix}_rules AS rule ON rule.event = f.event
                    WHERE f._broken
                ) AS r
            )
            GROUP BY _row
        """

    def _captured(self) -> str:
        """SQL of the violations kept from capture, for the properties not judged."""
        if not self.stored:
            return NONE
        fields = ", ".join(
            f'"{name}": "{kind}"'
            for name, kind in (
                ("code", "VARCHAR"), ("property", "VARCHAR"), ("expected", "JSON"),
                ("received", "JSON"), ("message", "VARCHAR"), ("severity", "VARCHAR"),
            )
        )  # fmt: skip
        captured = f"coalesce(from_json(f.captured, {text('[{' + fields + '}]')}), {NONE})"
        return (
            f"CASE WHEN len(f._kept) > 0 THEN list_filter({captured}, "
            f"lambda v: list_contains(f._kept, v.property)) ELSE {NONE} END"
        )

    def select(self, source: str, *, ordered: bool = True) -> str:
        """SELECT every column of `source` with the event's `verdict` and its
        `violations` (JSON, a list; NULL when there are none), in `source`'s order
        when `ordered`."""
        return f"""
        WITH _first AS MATERIALIZED (
            SELECT *, {self._first_pass()} AS _broken FROM ({self._parsed(source)})
        ),
        _second AS ({self._flagged()}),
        _judged AS (
            SELECT f.*,
                CASE WHEN f._planned
                     THEN coalesce(s._listed, {NONE}) || CASE WHEN len(f._unplanned) > 0
                          THEN {self._unplanned()} ELSE {NONE} END || {self._captured()}
                     ELSE {self._unplanned_event()} END AS _violations
            FROM _first AS f LEFT JOIN _second AS s ON s._row = f._row
        )
        SELECT * EXCLUDE (
                _row, _keys, _raw, _typed, _planned, _kept, _unplanned, _broken, _violations
            ),
            CASE WHEN NOT _planned
                 THEN (CASE WHEN len(_violations) = 0 THEN 'valid' ELSE 'unplanned' END)
                 WHEN list_bool_or(list_transform(_violations, lambda v: v.severity = 'error'))
                 THEN 'invalid' ELSE 'valid' END AS verdict,
            CASE WHEN len(_violations) > 0 THEN to_json(_violations) END AS violations
        FROM _judged
        {"ORDER BY _row" if ordered else ""}
        """


def judge_events(
    connection: duckdb.DuckDBPyConnection,
    judge: JudgeSql,
    events: list[tuple[str, str]],
    captured: list[str | None] | None = None,
) -> list[tuple[str, str | None]]:
    """The verdict and violations (JSON text) of (event, properties JSON) pairs, in
    their order (with the violations `captured` of each, when judging stored events):
    the statement over a small relation, for tests."""
    judge.register(connection)
    columns = {
        "event": pa.array([name for name, _ in events], pa.string()),
        "properties": pa.array([props for _, props in events], pa.string()),
    }
    read = "event, properties::JSON AS properties"
    if captured is not None:
        columns["captured"] = pa.array(captured, pa.string())
        read += ", captured::JSON AS captured"
    connection.register("_judge_input", pa.table(columns))
    try:
        source = f"SELECT {read} FROM _judge_input"
        rows = connection.sql(
            f"SELECT verdict, violations::VARCHAR FROM ({judge.select(source)})"
        ).fetchall()
    finally:
        connection.unregister("_judge_input")
    return [(verdict, violations) for verdict, violations in rows]
