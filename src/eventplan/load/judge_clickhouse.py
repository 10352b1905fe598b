"""The plan compiled into ClickHouse SQL: the second compilation of the judge.

The same rules as `plan.validator.Validator` and `load.judge_sql` (DuckDB), with the
same verdicts and violations (code, property, expected, received, message, severity,
in order), from the same front end: the plan as rule records (`judge_sql.rule_of`).
Written for how ClickHouse evaluates: the plan is a small constant table (one row per
planned event: its rules in order, its known property names, its renames), joined to
each event by name; the event's properties are parsed once, into a map of each key's
JSON text; an `arrayMap` over the event's rules then finds the first rule each value
breaks with cheap tests, and writes a violation only for the values that broke one.
ClickHouse runs array lambdas vectorised over all rows at once, so the generic check
that cost DuckDB a per-element lambda is its natural form here, and no per-event CASE
is needed.

Violations are built as JSON text the way msgspec writes it (the validator's
`quoted`): numbers as Python's `repr`, strings with msgspec's escapes. ClickHouse's
own spellings differ (`1e16` for `1e+16`, `2` for `2.0`, `\\/`, `\\u001F`), so
`python_float` and `json_string` rewrite them.

Judging stored events again (`stored`), property renames (`renamed_from`) are part of
the statement: an old name counts as its planned one where the planned one is
absent, as capture's `Judge.rename` moves it. (The DuckDB rejudge rewrites the
properties before its statement instead: DuckDB edits JSON, ClickHouse's JSON
functions would write its numbers again, `1.0` as `1`.)
"""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING, Any, Final

import msgspec
import pyarrow as pa

from eventplan.load.judge_sql import RFC3339, Rule, judged_properties, re2, rule_of
from eventplan.plan.model import Plan
from eventplan.plan.posthog import PLAIN_BUILTIN_PROPERTIES
from eventplan.plan.validator import RECEIVED_MAX_CHARS
from eventplan.store.clickhouse import value_sql as literal

if TYPE_CHECKING:
    from eventplan.store.clickhouse import Engine

# The control characters ClickHouse escapes with capital hex digits, msgspec with small.
CAPITAL_ESCAPES: Final = (0x0B, 0x0E, 0x0F, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F)
# A rule as the statement reads it; the JSON texts a violation shows are made here, once.
RULE_TYPE: Final = (
    "Tuple(name String, name_json String, type String, type_json String, "
    "type_expected String, required Bool, nullable Bool, enum String, enum_text String, "
    "enum_strings Array(String), enum_numbers Array(Float64), enum_booleans Array(UInt8), "
    "min_length Nullable(Int64), max_length Nullable(Int64), length_bounds String, "
    "length_json String, pattern String, pattern_json String, pattern_re2 String, "
    "minimum Nullable(Float64), maximum Nullable(Float64), bounds String, bounds_json String, "
    "hidden_json String)"
)
PLAN_TABLE: Final = (
    f"event String, rules Array({RULE_TYPE}), known Array(String), kept Array(String), "
    "renames Array(Tuple(old String, new String))"
)
# The columns `select` works with, left out of what it gives.
INTERNAL: Final = (
    "_row, _in_event, _planned, _rules, _known, _kept, _moved, _renamed, _pairs, _values, "
    "_keys, _violations"
)


def json_string(value: str) -> str:
    """SQL of a string value's JSON text as msgspec writes it."""
    sql = f"replace(toJSONString({value}), '\\\\/', '/')"
    sql = f"replace({sql}, '\\\\u2028', {literal(chr(0x2028))})"
    sql = f"replace({sql}, '\\\\u2029', {literal(chr(0x2029))})"
    for code in CAPITAL_ESCAPES:
        escape = f"\\u{code:04X}"
        sql = f"replace({sql}, {literal(escape)}, {literal(escape.lower())})"
    return sql


def let(body: str, **values: str) -> str:
    """SQL of `body` with each name bound to its value, each value written once:
    ClickHouse has no local names in an expression, but a lambda's are."""
    names = ", ".join(values)
    arrays = ", ".join(f"[{value}]" for value in values.values())
    return f"arrayMap(({names}) -> {body}, {arrays})[1]"


def python_float(number: str) -> str:
    """SQL of a Float64's text as Python's `repr` writes it (`2.0`, `1e+16`, `1e-05`).

    ClickHouse writes the same shortest digits, but plain where Python uses an
    exponent and without Python's `.0`; its text is taken apart into the digits and
    the decimal exponent of the first one, then written again as Python would."""
    scientific = (
        "concat(left(d, 1), if(length(d) > 1, concat('.', substring(d, 2)), ''), 'e', "
        "if(e < 0, '-', '+'), if(abs(e) < 10, '0', ''), toString(abs(e)))"
    )
    text = (
        f"multiIf(d = '', '0.0', e < -4 OR e >= 16, {scientific}, "
        "e < 0, concat('0.', repeat('0', toUInt32(greatest(-e - 1, 0))), d), "
        "length(d) <= e + 1, "
        "concat(d, repeat('0', toUInt32(greatest(e + 1 - length(d), 0))), '.0'), "
        "concat(left(d, e + 1), '.', substring(d, e + 2)))"
    )
    # Each step names what it finds for the next: the text, its mantissa and power of
    # ten, the digits (`led`: with leading zeros), the first digit's exponent.
    exponent = "power + length(whole) - 1 - (length(led) - length(unled))"
    step = let(text, d="replaceRegexpOne(unled, '0+$', '')", e=exponent)
    step = let(step, unled="replaceRegexpOne(led, '^0+', '')")
    step = let(step, led="concat(whole, fraction)")
    step = let(
        step,
        whole="splitByChar('.', mantissa)[1]",
        fraction="if(position(mantissa, '.') > 0, splitByChar('.', mantissa)[2], '')",
    )
    step = let(
        step,
        mantissa="splitByChar('e', plain)[1]",
        power="if(position(plain, 'e') > 0, toInt32(splitByChar('e', plain)[2]), 0)",
    )
    sign = "if(x < 0 OR (x = 0 AND 1 / x < 0), '-', '')"
    return let(f"concat({sign}, {let(step, plain='toString(abs(x))')})", x=number)


def _violation(
    code: str, prop: str, expected: str, received: str, message: str, severity: str
) -> str:
    """SQL of one violation's JSON text; every argument but `code` is SQL: `prop`,
    `expected` and `received` of JSON text, `message` and `severity` of plain text."""
    return (
        f"concat('{{\"code\":', {literal(json_text(code))}, ',\"property\":', {prop}, "
        f"',\"expected\":', {expected}, ',\"received\":', {received}, "
        f"',\"message\":', {json_string(message)}, ',\"severity\":', {json_string(severity)}, '}}')"
    )


def json_text(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def read_value(key: str, body: str) -> str:
    """SQL of `body`, with property `key` (SQL) read from the event's `_values` (each
    key's JSON text, from one parse of its properties): `_k`, `_has`, `_raw`, `_kind`
    (String, Number, Bool, Array, Object, or Null, missing too), `_str`, `_num`."""
    kind = (
        "multiIf(startsWith(_raw, '\"'), 'String', startsWith(_raw, '['), 'Array', "
        "startsWith(_raw, '{'), 'Object', _raw IN ('true', 'false'), 'Bool', "
        "_raw IN ('null', ''), 'Null', 'Number')"
    )
    body = let(body, _str="JSONExtractString(_raw)", _num="JSONExtractFloat(_raw)")
    body = let(body, _kind=kind)
    body = let(body, _has="mapContains(_values, _k)", _raw="_values[_k]")
    return let(body, _k=key)


# ClickHouse writes a number's JSON text again (`1.0` as `1`, `-0.0` as `0`), so
# whether the value was sent as a whole number or not is asked of the properties
# themselves, and only for a violation (it parses them again).
EXACT_NUMBER: Final = "toString(JSONType(properties, _k)) = 'Double'"


def number_text() -> str:
    """SQL of a number's text as the validator's `quoted` writes it."""
    return f"if({EXACT_NUMBER}, {python_float('JSONExtractFloat(properties, _k)')}, _raw)"


def shown(hidden_json: str = "''") -> str:
    """SQL of the JSON text of what a violation shows of the value (`validator._shown`),
    which is also how its message quotes it; `_number` is `number_text`."""
    cut = f"concat(leftUTF8(_str, {RECEIVED_MAX_CHARS}), {literal(chr(0x2026))})"
    text = f"if(lengthUTF8(_str) > {RECEIVED_MAX_CHARS}, {cut}, _str)"
    return (
        f"multiIf({hidden_json} != '', {hidden_json}, _kind = 'String', {json_string(text)}, "
        "_kind = 'Array', '\"array\"', _kind = 'Object', '\"object\"', "
        "_kind = 'Number', _number, _kind = 'Bool', _raw, 'null')"
    )


def type_name() -> str:
    """SQL of the value's type as the validator's `type_name` names it."""
    return (
        f"multiIf(_kind = 'Number', if({EXACT_NUMBER}, 'number', 'integer'), "
        "_kind = 'Bool', 'boolean', _kind = 'Null', 'null', lower(_kind))"
    )


def is_datetime() -> str:
    """SQL true when `_str` is RFC 3339, on a day its month has (`validator.is_datetime`).
    (ClickHouse computes an expression that is written more than once only once.)"""
    upper = "upperUTF8(_str)"
    year, month, day = (
        f"toUInt32OrZero(substring({upper}, {at}, {length}))"
        for at, length in ((1, 4), (6, 2), (9, 2))
    )
    leap = f"({year} % 4 = 0 AND {year} % 100 != 0) OR {year} % 400 = 0"
    days = f"multiIf({month} = 2, if({leap}, 29, 28), {month} IN (4, 6, 9, 11), 30, 31)"
    full = literal(f"^(?:{RFC3339})$")
    return f"(match({upper}, {full}) AND {year} > 0 AND {day} BETWEEN 1 AND {days})"


# The rules `check_value` applies in order, each with its code, what it expected,
# whether it shows the value received, and its message; a value breaks the first.
RULES: Final = (
    ("missing_required", "NOT _has", "r.type_json", False,
     "concat(r.name, ': required by ', _in_event, ' but missing')"),
    ("wrong_type", "_kind = 'Null'", "r.type_json", False,
     "concat(r.name, ': expected ', r.type, ', got null')"),
    ("wrong_type", "NOT _fits", "r.type_json", True,
     f"concat(r.name, ': expected ', r.type_expected, ', got ', {type_name()}, ' ', _shown)"),
    ("not_in_enum", "r.enum != '' AND NOT _in_enum", "r.enum", True,
     "concat(r.name, ': ', _shown, ' is not one of ', r.enum_text)"),
    ("out_of_range",
     "_kind = 'String' AND (lengthUTF8(_str) < r.min_length OR lengthUTF8(_str) > r.max_length)",
     "r.length_json", True,
     "concat(r.name, ': length ', toString(lengthUTF8(_str)), ' is outside ', r.length_bounds)"),
    ("pattern_mismatch", "_kind = 'String' AND r.pattern != '' AND NOT match(_str, r.pattern_re2)",
     "r.pattern_json", True, "concat(r.name, ': ', _shown, ' does not match ', r.pattern)"),
    ("out_of_range", "_kind = 'Number' AND (_num < r.minimum OR _num > r.maximum)",
     "r.bounds_json", True, "concat(r.name, ': ', _number, ' is outside ', r.bounds)"),
)  # fmt: skip


def _broken_rule() -> str:
    """SQL of the number of the first rule of `RULES` that rule `r`'s value breaks, 0
    for none: `check_value`'s tests, over a rule tuple and the value as `read_value`
    reads it."""
    fits = (
        "multiIf(r.type = 'string', _kind = 'String', "
        f"r.type = 'datetime', _kind = 'String' AND {is_datetime()}, "
        "r.type = 'boolean', _kind = 'Bool', "
        "r.type = 'integer', _kind = 'Number' AND _num = trunc(_num), "
        "_kind = 'Number')"
    )
    in_enum = (
        "((_kind = 'String' AND has(r.enum_strings, _str)) "
        "OR (_kind = 'Bool' AND has(r.enum_booleans, _raw = 'true')) "
        "OR (_kind = 'Number' AND has(r.enum_numbers, _num)))"
    )
    # A missing or null value breaks at most the first two rules; the others need one.
    tests = ["(NOT _has AND NOT r.required) OR (_has AND _kind = 'Null' AND r.nullable)", "0"]
    for number, (_, test, _, _, _) in enumerate(RULES, start=1):
        tests += [test.replace("_fits", f"({fits})").replace("_in_enum", in_enum), str(number)]
    return f"multiIf({', '.join(tests)}, 0)"


def _rule_violation() -> str:
    """SQL of the JSON text of the first rule of `r` the event's value breaks, '' for
    none: the number of the rule broken (`_broken_rule`), then, only for a value that
    broke one (`if` evaluates its branch for those alone), the violation's text, the
    value shown once for all of it."""

    def each(part: int) -> str:
        """multiIf over the rule broken, of one part of `RULES`."""
        cases = [f"_broken = {n}, {rule[part]}" for n, rule in enumerate(RULES, start=1)]
        return f"multiIf({', '.join(cases)}, '')"

    codes = literal([json_text(code) for code, *_ in RULES])
    shows = [n for n, rule in enumerate(RULES, start=1) if rule[3]]
    violation = (
        f"concat('{{\"code\":', {codes}[_broken], ',\"property\":', r.name_json, "
        f"',\"expected\":', {each(2)}, "
        f"',\"received\":', if(has({literal(shows)}, _broken), _shown, 'null'), "
        f'\',"message":\', {json_string(each(4))}, \',"severity":"error"}}\')'
    )
    violation = let(let(violation, _shown=shown("r.hidden_json")), _number=number_text())
    body = let(f"if(_broken = 0, '', {violation})", _broken=_broken_rule())
    return read_value("if(_renamed[r.name] != '', _renamed[r.name], r.name)", body)


class JudgeClickHouse:
    """One plan's rules as ClickHouse SQL over a relation with `event` (String, not
    empty) and `properties` (String, a JSON object) columns: `select` judges it.

    `stored`: as `JudgeSql`'s, the events are judged again as the store holds them; a
    property the privacy policy changed keeps the violations it had when captured
    (`captured`: JSON text of a list of violations, or NULL)."""

    def __init__(self, plan: Plan, *, stored: bool = False) -> None:
        self.plan = plan
        self.stored = stored

    def _plan_rows(self) -> list[str]:
        """One row per planned event: its rules in order, known names, kept names, renames."""
        rows = []
        for event in self.plan.events:
            planned = self.plan.properties_of(event)
            judged = judged_properties(self.plan, event, self.stored)
            rules = [_rule_tuple(rule_of(event, i, p)) for i, p in enumerate(judged.values())]
            known = sorted(set(planned) | PLAIN_BUILTIN_PROPERTIES)
            kept = sorted(set(planned) - set(judged))
            renames = [
                f"({literal(old)}, {literal(new)})"
                for old, new in self.plan.property_renames(event).items()
                if self.stored
            ]
            rows.append(
                f"({literal(event)}, [{', '.join(rules)}], {literal(known)}, "
                f"{literal(kept)}, [{', '.join(renames)}])"
            )
        return rows

    def _plan_table(self) -> str:
        rows = self._plan_rows()
        if not rows:  # a plan without events: a table of none
            return f"SELECT * FROM VALUES({literal(PLAN_TABLE)}, ('', [], [], [], [])) WHERE 0"
        return f"SELECT * FROM VALUES({literal(PLAN_TABLE)}, {', '.join(rows)})"

    def _unplanned(self) -> str:
        """SQL of the violations (JSON texts) of a planned event's unplanned keys."""
        plan = self.plan
        if plan.unplanned_properties == "allow":
            return "CAST([], 'Array(String)')"
        severity = literal("error" if plan.unplanned_properties == "reject" else "warning")
        bad_name = f"NOT match(_k, {literal(re2(plan.naming.property_pattern))})"
        if plan.naming.legacy_properties:
            bad_name += f" AND NOT has({literal(list(plan.naming.legacy_properties))}, _k)"
        badly_named = _violation(
            "bad_name",
            json_string("_k"),
            literal(json_text(plan.naming.property_pattern)),
            "_shown",
            "concat(_k, ': not planned for ', _in_event, ', and not a snake_case name')",
            severity,
        )
        unplanned = _violation(
            "unplanned_property",
            json_string("_k"),
            "'null'",
            "_shown",
            "concat(_k, ': not planned for ', _in_event)",
            severity,
        )
        violation = let(f"if({bad_name}, {badly_named}, {unplanned})", _shown=shown())
        keys = "arrayFilter(k -> NOT startsWith(k, '$') AND NOT has(_known, k), _keys)"
        return f"arrayMap(k -> {read_value('k', let(violation, _number=number_text()))}, {keys})"

    def _unplanned_event(self) -> str:
        """SQL of the violations (JSON texts) of an event the plan does not have."""
        naming = self.plan.naming
        event = json_string("_in_event")
        not_planned = _violation(
            "unplanned_event",
            "'null'",
            "'null'",
            event,
            "concat('event `', _in_event, '` is not in the plan')",
            "'error'",
        )
        bad_name = _violation(
            "bad_name",
            "'null'",
            literal(json_text(naming.event_pattern)),
            event,
            "concat('event `', _in_event, '` does not follow the naming convention')",
            "'error'",
        )
        system = f"[{not_planned}]" if self.plan.system_events == "unplanned" else "[]"
        return (
            f"multiIf(startsWith(_in_event, '$'), CAST({system}, 'Array(String)'), "
            f"NOT match(_in_event, {literal(re2(naming.event_pattern))}), "
            f"[{not_planned}, {bad_name}], [{not_planned}])"
        )

    def _captured(self) -> str:
        """SQL of the violations kept from capture, for the properties not judged."""
        if not self.stored:
            return "CAST([], 'Array(String)')"
        captured = "JSONExtractArrayRaw(ifNull(captured, '[]'))"
        return f"arrayFilter(v -> has(_kept, JSONExtractString(v, 'property')), {captured})"

    def select(self, source: str, *, ordered: bool = True) -> str:
        """SELECT every column of `source` with the event's `verdict` and `violations`
        (JSON text of a list; NULL when there are none), in `source`'s order when
        `ordered` (sorting them back costs ClickHouse more than the judging itself).

        From the inside out: the plan's row for the event, its properties parsed once
        into `_values` (each key's JSON text), the violations, the verdict."""
        rules = f"arrayFilter(v -> v != '', arrayMap(r -> {_rule_violation()}, _rules))"
        row = "rowNumberInAllBlocks()" if ordered else "0"
        return f"""
        SELECT * EXCEPT ({INTERNAL}),
            multiIf(NOT _planned, if(empty(_violations), 'valid', 'unplanned'),
                    arrayExists(v -> JSONExtractString(v, 'severity') = 'error', _violations),
                    'invalid', 'valid') AS verdict,
            if(empty(_violations), NULL,
               concat('[', arrayStringConcat(_violations, ','), ']')) AS violations
        FROM (
            SELECT *,
                if(_planned,
                   arrayConcat({rules}, {self._unplanned()}, {self._captured()}),
                   {self._unplanned_event()}) AS _violations
            FROM (
                SELECT *,
                    mapFromArrays(arrayMap(x -> x.1, _pairs), arrayMap(x -> x.2, _pairs))
                        AS _values,
                    arrayFilter(k -> NOT has(arrayMap(x -> x.old, _moved), k),
                                arrayMap(x -> x.1, _pairs)) AS _keys
                FROM (
                    SELECT *,
                        mapFromArrays(arrayMap(x -> x.new, _moved),
                                      arrayMap(x -> x.old, _moved)) AS _renamed,
                        JSONExtractKeysAndValuesRaw(properties) AS _pairs
                    FROM (
                        SELECT _in.*, _in.event AS _in_event,
                            ifNull(_plan.event, '') != '' AS _planned, _plan.rules AS _rules,
                            _plan.known AS _known, _plan.kept AS _kept,
                            arrayFilter(x -> JSONHas(_in.properties, x.old)
                                             AND NOT JSONHas(_in.properties, x.new),
                                        _plan.renames) AS _moved
                        FROM (SELECT *, {row} AS _row FROM ({source})) AS _in
                        LEFT JOIN ({self._plan_table()}) AS _plan ON _plan.event = _in.event
                    )
                )
            )
        )
        {"ORDER BY _row" if ordered else ""}
        """


def _rule_tuple(rule: Rule) -> str:
    """A rule as a literal of `RULE_TYPE` (text left empty where the rule has none)."""
    length = f"length {rule.length_bounds}" if rule.length_bounds else None
    values = [
        rule.name, json_text(rule.name), rule.type, json_text(rule.type), rule.type_expected,
        rule.required, rule.nullable, rule.enum or "", rule.enum_text or "",
        rule.enum_strings or [], [float(n) for n in rule.enum_numbers or []],
        [int(b) for b in rule.enum_booleans or []], rule.min_length, rule.max_length,
        rule.length_bounds or "", json_text(length) if length else "", rule.pattern or "",
        json_text(rule.pattern) if rule.pattern else "", rule.pattern_re2 or "",
        rule.minimum, rule.maximum, rule.bounds or "",
        json_text(rule.bounds) if rule.bounds else "",
        json_text(rule.hidden) if rule.hidden else "",
    ]  # fmt: skip
    return "(" + ", ".join(map(literal, values)) + ")"


def judge_events_clickhouse(
    engine: Engine,
    judge: JudgeClickHouse,
    events: list[tuple[str, str]],
    captured: list[str | None] | None = None,
) -> list[tuple[str, str | None]]:
    """The verdict and violations (JSON text) of (event, properties JSON) pairs, in their
    order (with the violations `captured` of each, when judging stored events): the
    statement over a small table of them, for tests."""
    table = f"judge_input_{os.getpid()}_{secrets.token_hex(4)}"
    columns = {
        "event": pa.array([name for name, _ in events], pa.string()),
        "properties": pa.array([properties for _, properties in events], pa.string()),
    }
    if captured is not None:
        columns["captured"] = pa.array(captured, pa.string())
    extra = ", captured Nullable(String)" if captured is not None else ""
    engine.command(f"CREATE TABLE {table} (event String, properties String{extra}) ENGINE = Memory")
    try:
        engine.insert(table, pa.table(columns))
        judged = engine.query(
            f"SELECT verdict, violations FROM ({judge.select(f'SELECT * FROM {table}')})"
        )
    finally:
        engine.command(f"DROP TABLE IF EXISTS {table}")
    return list(
        zip(
            judged.column("verdict").to_pylist(),
            judged.column("violations").to_pylist(),
            strict=True,
        )
    )
