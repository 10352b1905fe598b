"""HogQL as PostHog answers it: thirty-one queries from PostHog's documentation, run on both
engines over the same events, each against an answer computed here in plain Python.

Where each query comes from (posthog.com's repository, `contents/docs/…`):
`sql/index.mdx` (SQL insights, the query API), `api/queries.mdx` (the query API's
examples), `sql/expressions.mdx` (its functions and use cases), `sql/aggregations.mdx`
and `sql/clickhouse-functions.mdx` (aggregations, dates, JSON, arrays),
`data/sessions.mdx` (the sessions table). The events
and property names are OpenChat's; the shape of every query is the documentation's.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from statistics import mean
from typing import Any

import pytest

from eventplan.plan import Plan
from eventplan.query.hogql import HogQLError, hogql_query
from eventplan.store import Store
from tests.conftest import BACKENDS
from tests.query import reference
from tests.query.conftest import loaded_store

NOW = datetime.now(UTC).replace(microsecond=0)
PERSONS = 120  # more than the 100 rows PostHog gives by default
URLS = [
    "https://openchat.example/",
    "https://openchat.example/blog/launch?ref=hn",
    "https://openchat.example/pricing?ref=tw&x=1",
    "https://openchat.example/blog/models",
]
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "google/gemini-2.0-flash"]
PAGE = {"referrer_url": "direct", "referrer_domain": "direct", "entry_path": "/"}


def simulated_events() -> list[dict[str, Any]]:
    """A week of OpenChat-like traffic with PostHog's own properties; every event at its
    own second (no ties for argMax), the last two in the last half hour."""
    rng = random.Random(28)
    drafts: list[tuple[str, str, dict[str, Any]]] = []
    for person in range(PERSONS):
        anon, member = f"anon-{person}", f"user-{person}"
        common = {
            "app": "openchat-web",
            "$browser": rng.choice(["Chrome", "Safari", "Firefox"]),
            "$os": rng.choice(["Mac OS X", "Windows", "Android", "iOS"]),
            "$session_id": f"session-{person}",
            "$active_feature_flags": rng.choice([["new-nav"], ["new-nav", "dark-mode"], []]),
        }
        if person % 4:
            common["$feature/new-nav"] = rng.choice(["control", "test"])

        def add(
            name: str, who: str, props: dict[str, Any], common: dict[str, Any] = common
        ) -> None:
            drafts.append((name, who, {**common, "$current_url": rng.choice(URLS), **props}))

        for _ in range(rng.randrange(1, 4)):
            add("$pageview", anon, PAGE)
        if person % 3:
            identify: dict[str, Any] = {"$anon_distinct_id": anon}
            if person % 2 == 0:
                identify["$set"] = {"email": f"person{person}@example.com"}
            add("$identify", member, identify)
            for _ in range(rng.randrange(1, 5)):
                stream = {
                    "chat_id": f"chat-{person}",
                    "model_id": rng.choice(MODELS),
                    "duration_ms": rng.randrange(100, 9000),
                    "status": "completed",
                }
                add("chat_message_stream", member, stream)
            add("$pageview", member, PAGE)
    first = NOW - timedelta(minutes=10) - timedelta(seconds=700 * (len(drafts) - 1))
    return [
        {
            "event": name,
            "distinct_id": who,
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "timestamp": (first + timedelta(seconds=700 * i)).isoformat(),
            "properties": props,
        }
        for i, (name, who, props) in enumerate(drafts)
    ]


EVENTS = simulated_events()
PERSON_OF = reference.persons(EVENTS)


def at(event: dict[str, Any]) -> datetime:
    return reference.when(event)


def prop(event: dict[str, Any], key: str) -> Any:
    return event["properties"].get(key)


def counted(values: Iterator[Any]) -> list[list[Any]]:
    """`SELECT x, count() … GROUP BY x ORDER BY x` (NULL last, as both engines sort)."""
    counts = Counter(values)
    return [[k, counts[k]] for k in sorted(counts, key=lambda k: (k is None, k or ""))]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def emails() -> dict[str, str]:
    """Person key → the email a `$set` gave it."""
    found: dict[str, str] = {}
    for event in EVENTS:
        email = (prop(event, "$set") or {}).get("email")
        if email:
            found[PERSON_OF[event["distinct_id"]]] = email
    return found


def pageviews() -> list[dict[str, Any]]:
    return [e for e in EVENTS if e["event"] == "$pageview"]


def streams() -> list[dict[str, Any]]:
    return [e for e in EVENTS if e["event"] == "chat_message_stream"]


def interpolated_median(values: list[float]) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * 0.5
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def first_pageview_urls() -> list[list[Any]]:
    first: dict[str, dict[str, Any]] = {}
    for event in sorted(pageviews(), key=at):
        first.setdefault(event["distinct_id"], event)
    counts = Counter(prop(e, "$current_url") for e in first.values())
    return sorted(([u, c] for u, c in counts.items()), key=lambda r: (-r[1], r[0]))


def part_of_day(moment: datetime) -> str:
    # The documentation's own expression, conditions as written (5 >= hour, …).
    hour = moment.hour
    if hour <= 5 and hour < 12:
        return "morning"
    if hour <= 12 and hour < 17:
        return "afternoon"
    return "night"


def sunday_week(moment: datetime) -> str:
    day = moment.date()
    return (day - timedelta(days=(day.weekday() + 1) % 7)).isoformat()


def minute_diff(start: datetime, end: datetime) -> int:
    """ClickHouse's dateDiff: minute boundaries crossed."""
    return int(end.timestamp() // 60) - int(start.timestamp() // 60)


def sessions() -> list[list[Any]]:
    times: dict[str, list[datetime]] = defaultdict(list)
    for event in EVENTS:
        times[prop(event, "$session_id")].append(at(event))
    return [
        [s, int(max(t).timestamp()) - int(min(t).timestamp())] for s, t in sorted(times.items())
    ]


def people_by_email() -> list[list[Any]]:
    known = emails()
    counts = Counter(
        known[PERSON_OF[e["distinct_id"]]] for e in EVENTS if PERSON_OF[e["distinct_id"]] in known
    )
    return sorted(([m, c] for m, c in counts.items()), key=lambda r: (-r[1], r[0]))


def session_rows() -> list[list[Any]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in EVENTS:
        found[prop(event, "$session_id")].append(event)
    rows = []
    for session, events in sorted(found.items()):
        ordered = sorted(events, key=at)
        views = sum(e["event"] == "$pageview" for e in events)
        seconds = int(at(ordered[-1]).timestamp()) - int(at(ordered[0]).timestamp())
        rows.append([session, seconds, views, prop(ordered[0], "$current_url"), views <= 1])
    return rows


def last_event() -> str:
    return str(max(EVENTS, key=at)["event"])


# (query, PostHog's column names, the expected rows: a list, or a check of the rows)
Expected = list[list[Any]] | Callable[[list[list[Any]]], bool]
QUERIES: list[tuple[str, list[str], Callable[[], Expected]]] = [
    # sql/index.mdx: the query API's example
    (
        "SELECT event, COUNT() FROM events GROUP BY event ORDER BY COUNT() DESC",
        ["event", "COUNT()"],  # a call is named as written
        lambda: sorted(
            ([k, v] for k, v in Counter(e["event"] for e in EVENTS).items()), key=lambda r: -r[1]
        ),
    ),
    # api/queries.mdx: "events where the $current_url contains blog"
    (
        "select properties.$current_url from events "
        "where properties.$current_url like '%/blog%' limit 100",
        ["$current_url"],
        lambda: lambda rows: len(rows) == 100 and all("/blog" in r[0] for r in rows),
    ),
    # api/queries.mdx: "all people with the email property"
    (
        "select properties.email from persons where properties.email is not null",
        ["email"],
        lambda: lambda rows: sorted(r[0] for r in rows) == sorted(emails().values()),
    ),
    # sql/index.mdx: the most popular first pageview `current_url` values
    (
        """SELECT properties.$current_url AS current_url, count() AS url_count
        FROM events
        WHERE event = '$pageview'
            AND (distinct_id, timestamp) IN (
                SELECT distinct_id, min(timestamp) FROM events
                WHERE event = '$pageview' GROUP BY distinct_id)
            AND {filters}
        GROUP BY current_url
        ORDER BY url_count DESC, current_url""",
        ["current_url", "url_count"],
        first_pageview_urls,
    ),
    # sql/index.mdx and sql/expressions.mdx: desktop or mobile with multiIf
    (
        "SELECT multiIf(properties.$os == 'Android', 'mobile', properties.$os == 'iOS', "
        "'mobile', 'desktop') AS device, count() FROM events WHERE event = '$pageview' "
        "GROUP BY device ORDER BY device",
        ["device", "count()"],
        lambda: counted(
            "mobile" if prop(e, "$os") in ("Android", "iOS") else "desktop" for e in pageviews()
        ),
    ),
    # sql/expressions.mdx: events in the last X minutes with dateDiff and now()
    (
        "SELECT count() FROM events WHERE dateDiff('minute', timestamp, now()) < 30",
        ["count()"],
        lambda: [[sum(1 for e in EVENTS if minute_diff(at(e), datetime.now(UTC)) < 30)]],
    ),
    # sql/expressions.mdx: a percentage with sumIf
    (
        "SELECT sumIf(1, properties.$browser = 'Chrome') / sumIf(1, properties.$browser = "
        "'Safari' or properties.$browser = 'Chrome') FROM events",
        [
            "divide(sumIf(1, equals(properties.$browser, 'Chrome')), sumIf(1, "
            "or(equals(properties.$browser, 'Safari'), equals(properties.$browser, 'Chrome'))))"
        ],
        lambda: [
            [
                sum(prop(e, "$browser") == "Chrome" for e in EVENTS)
                / sum(prop(e, "$browser") in ("Safari", "Chrome") for e in EVENTS)
            ]
        ],
    ),
    # sql/expressions.mdx: binning by time of day with toHour
    (
        "SELECT multiIf(5 >= toHour(timestamp) and toHour(timestamp) < 12, 'morning', "
        "12 >= toHour(timestamp) and toHour(timestamp) < 17, 'afternoon', 'night') AS part, "
        "count() FROM events GROUP BY part ORDER BY part",
        ["part", "count()"],
        lambda: counted(part_of_day(at(e)) for e in EVENTS),
    ),
    # sql/expressions.mdx: a breakdown by two properties with concat
    (
        "SELECT concat(properties.$os, ' - ', properties.$browser) AS os_browser, count() "
        "FROM events GROUP BY os_browser ORDER BY os_browser",
        ["os_browser", "count()"],
        lambda: counted(f"{prop(e, '$os')} - {prop(e, '$browser')}" for e in EVENTS),
    ),
    # sql/expressions.mdx: filter on a person property IS NOT NULL
    (
        "SELECT count() FROM events WHERE person.properties.email IS NOT NULL",
        ["count()"],
        lambda: [[sum(1 for e in EVENTS if PERSON_OF[e["distinct_id"]] in emails())]],
    ),
    # sql/expressions.mdx: a breakdown by the values in an array with arrayJoin
    (
        "SELECT arrayJoin(JSONExtractArrayRaw(properties.$active_feature_flags ?? '[]')) "
        "AS flag, count() FROM events GROUP BY flag ORDER BY flag",
        ["flag", "count()"],
        lambda: counted(
            json.dumps(flag) for e in EVENTS for flag in prop(e, "$active_feature_flags")
        ),
    ),
    # sql/expressions.mdx: bracket notation for a flag's property
    (
        "SELECT properties['$feature/new-nav'] AS variant, count() FROM events "
        "WHERE event = '$pageview' GROUP BY variant ORDER BY variant",
        ["variant", "count()"],
        lambda: counted(prop(e, "$feature/new-nav") for e in pageviews()),
    ),
    # sql/expressions.mdx: a fragment of a string with extract
    (
        "SELECT extract(properties.$current_url, 'ref=([^&]*)') AS ref, count() FROM events "
        "GROUP BY ref ORDER BY ref",
        ["ref", "count()"],
        lambda: counted(
            (m.group(1) if (m := re.search("ref=([^&]*)", prop(e, "$current_url"))) else "")
            for e in EVENTS
        ),
    ),
    # sql/expressions.mdx: replaceOne on the current URL
    (
        "SELECT replaceOne(properties.$current_url, 'https://openchat.example', '/') AS path "
        "FROM events WHERE event = '$pageview' ORDER BY timestamp LIMIT 5",
        ["path"],
        lambda: [
            [prop(e, "$current_url").replace("https://openchat.example", "/", 1)]
            for e in sorted(pageviews(), key=at)[:5]
        ],
    ),
    # sql/expressions.mdx: toDayOfWeek
    (
        "SELECT toDayOfWeek(timestamp) AS dow, count() FROM events GROUP BY dow ORDER BY dow",
        ["dow", "count()"],
        lambda: counted(at(e).isoweekday() for e in EVENTS),
    ),
    # sql/clickhouse-functions.mdx: daily active users with toStartOfDay
    (
        "SELECT toStartOfDay(timestamp) AS day, count(DISTINCT person_id) AS dau FROM events "
        "WHERE event = '$pageview' GROUP BY day ORDER BY day",
        ["day", "dau"],
        lambda: [
            [iso(datetime.fromisoformat(day).replace(tzinfo=UTC)), len(people)]
            for day, people in sorted(
                _group(pageviews(), lambda e: at(e).date().isoformat(), PERSON_OF).items()
            )
        ],
    ),
    # sql/expressions.mdx: binning by week with toStartOfWeek (weeks start on Sunday)
    (
        "SELECT toStartOfWeek(timestamp) AS week, count() FROM events GROUP BY week ORDER BY week",
        ["week", "count()"],
        lambda: counted(sunday_week(at(e)) for e in EVENTS),
    ),
    # sql/clickhouse-functions.mdx: formatDateTime
    (
        "SELECT formatDateTime(timestamp, '%Y-%m-%d') AS date, count() FROM events "
        "GROUP BY date ORDER BY date",
        ["date", "count()"],
        lambda: counted(at(e).date().isoformat() for e in EVENTS),
    ),
    # sql/expressions.mdx and sql/aggregations.mdx: uniq
    (
        "SELECT event, uniq(distinct_id) AS users FROM events GROUP BY event ORDER BY event",
        ["event", "users"],
        lambda: [
            [k, len(v)] for k, v in sorted(_group(EVENTS, lambda e: e["event"], None).items())
        ],
    ),
    # sql/aggregations.mdx: countIf and countDistinctIf
    (
        "SELECT countIf(event = '$pageview') AS views, "
        "countDistinctIf(distinct_id, event = '$pageview') AS viewers FROM events",
        ["views", "viewers"],
        lambda: [[len(pageviews()), len({e["distinct_id"] for e in pageviews()})]],
    ),
    # sql/aggregations.mdx: quantile and avg of a converted property
    (
        "SELECT quantile(0.5)(toFloat(properties.duration_ms)) AS p50, "
        "avg(toFloat(properties.duration_ms)) AS mean FROM events "
        "WHERE event = 'chat_message_stream'",
        ["p50", "mean"],
        lambda: [
            [
                interpolated_median([prop(e, "duration_ms") for e in streams()]),
                mean(prop(e, "duration_ms") for e in streams()),
            ]
        ],
    ),
    # sql/expressions.mdx: median, by a property
    (
        "SELECT properties.model_id AS model, median(properties.duration_ms) FROM events "
        "WHERE event = 'chat_message_stream' GROUP BY model ORDER BY model",
        ["model", "median(properties.duration_ms)"],
        lambda: [
            [model, interpolated_median([prop(e, "duration_ms") for e in found])]
            for model, found in sorted(_by(streams(), lambda e: prop(e, "model_id")).items())
        ],
    ),
    # sql/clickhouse-functions.mdx: JSONExtractString on the properties
    (
        "SELECT JSONExtractString(properties, 'model_id') AS model, count() FROM events "
        "WHERE event = 'chat_message_stream' GROUP BY model ORDER BY model",
        ["model", "count()"],
        lambda: counted(prop(e, "model_id") for e in streams()),
    ),
    # sql/index.mdx ("SELECT DISTINCT person"): no LIMIT, so PostHog's 100 rows
    (
        "SELECT DISTINCT person_id FROM events",
        ["person_id"],
        lambda: lambda rows: len(rows) == 100 and len({r[0] for r in rows}) == 100,
    ),
    # sql/expressions.mdx: person properties on events, grouped
    (
        "SELECT person.properties.email AS email, count() AS c FROM events "
        "WHERE person.properties.email IS NOT NULL GROUP BY email ORDER BY c DESC, email",
        ["email", "c"],
        people_by_email,
    ),
    # sql/index.mdx (data warehouse joins): events joined to persons on the person's id
    (
        "SELECT p.properties.email, count() FROM events e JOIN persons p "
        "ON e.person_id = p.id WHERE p.properties.email IS NOT NULL "
        "GROUP BY p.properties.email ORDER BY p.properties.email",
        ["email", "count()"],
        lambda: sorted(people_by_email()),
    ),
    # sql/index.mdx (the persons tables): which distinct ids are one person
    (
        "SELECT pdi.distinct_id, pdi.person_id FROM person_distinct_ids pdi "
        "ORDER BY pdi.distinct_id LIMIT 1000",
        ["distinct_id", "person_id"],
        lambda: lambda rows: _same_partition(rows),
    ),
    # api/queries.mdx (performant queries): a time range with now() - interval
    (
        "SELECT event, count() AS c FROM events WHERE timestamp > now() - interval 3 day "
        "GROUP BY event ORDER BY c DESC, event",
        ["event", "c"],
        lambda: sorted(
            (
                [k, v]
                for k, v in Counter(
                    e["event"] for e in EVENTS if at(e) > datetime.now(UTC) - timedelta(days=3)
                ).items()
            ),
            key=lambda r: (-r[1], r[0]),
        ),
    ),
    # sql/expressions.mdx: a session's length with dateDiff over min and max
    (
        "SELECT properties.$session_id AS session, "
        "dateDiff('second', min(timestamp), max(timestamp)) AS duration FROM events "
        "WHERE properties.$session_id IS NOT NULL GROUP BY session ORDER BY session LIMIT 500",
        ["session", "duration"],
        sessions,
    ),
    # data/sessions.mdx: session properties from the `sessions` table
    (
        "SELECT session_id, $session_duration, $pageview_count, $entry_current_url, "
        "$is_bounce FROM sessions ORDER BY session_id LIMIT 500",
        ["session_id", "$session_duration", "$pageview_count", "$entry_current_url", "$is_bounce"],
        session_rows,
    ),
    # sql/clickhouse-functions.mdx: toDateTime, arithmetic (named as PostHog names it), argMax
    (
        "SELECT toDateTime('2026-11-01 00:00:00') AS start, "
        "count() - countIf(event = '$pageview'), argMax(event, timestamp) FROM events",
        [
            "start",
            "minus(count(), countIf(equals(event, '$pageview')))",
            "argMax(event, timestamp)",
        ],
        lambda: [["2026-11-01T00:00:00Z", len(EVENTS) - len(pageviews()), last_event()]],
    ),
]


def _group(
    events: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Any],
    persons: dict[str, str] | None,
) -> dict[Any, set[str]]:
    found: dict[Any, set[str]] = defaultdict(set)
    for event in events:
        who = event["distinct_id"]
        found[key(event)].add(persons[who] if persons else who)
    return found


def _by(
    events: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]
) -> dict[Any, list[dict[str, Any]]]:
    found: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        found[key(event)].append(event)
    return found


def _same_partition(rows: list[list[Any]]) -> bool:
    """The store's persons group the distinct ids as $identify merged them."""
    ours: dict[str, set[str]] = defaultdict(set)
    for distinct_id, person in rows:
        ours[person].add(distinct_id)
    theirs: dict[str, set[str]] = defaultdict(set)
    for distinct_id, person in PERSON_OF.items():
        theirs[person].add(distinct_id)
    return sorted(map(sorted, ours.values())) == sorted(map(sorted, theirs.values()))


@pytest.fixture(scope="module", params=BACKENDS)
def store(request: pytest.FixtureRequest, openchat_plan: Plan) -> Iterator[Store]:
    with loaded_store(openchat_plan, EVENTS, request.param) as loaded:
        yield loaded


def close(got: list[list[Any]], expected: list[list[Any]]) -> bool:
    """Equal, floats to 1e-9 (two engines sum in their own order), booleans as booleans."""
    if len(got) != len(expected):
        return False
    for row, want in zip(got, expected, strict=True):
        for value, wanted in zip(row, want, strict=True):
            if isinstance(wanted, bool) and value is not wanted:
                return False
            if isinstance(wanted, float):
                if not isinstance(value, int | float) or abs(value - wanted) > 1e-9 * max(
                    1, abs(wanted)
                ):
                    return False
            elif value != wanted:
                return False
    return True


@pytest.mark.parametrize(("query", "columns", "answer"), QUERIES, ids=range(len(QUERIES)))
def test_a_documentation_query_gives_posthogs_columns_and_the_independent_answer(
    store: Store,
    openchat_plan: Plan,
    query: str,
    columns: list[str],
    answer: Callable[[], Expected],
) -> None:
    result = hogql_query(query, store, openchat_plan.name)
    assert result["columns"] == columns
    expected = answer()
    if callable(expected):
        assert expected(result["results"]), result["results"][:10]
    else:
        assert close(result["results"], expected), (result["results"][:10], expected[:10])


def test_at_least_thirty_documentation_queries() -> None:
    assert len(QUERIES) >= 30


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "SELECT nosuchfunction(event) FROM events",
            "Unsupported function call 'nosuchfunction(...)'",
        ),
        ("SELECT getenv('HOME')", "Unsupported function call 'getenv(...)'"),
        ("SELECT read_text('/etc/passwd')", "Unsupported function call 'read_text(...)'"),
        ("SELECT nosuchfield FROM events", "Unable to resolve field: nosuchfield"),
        ("SELECT person.nosuch FROM events", "Unable to resolve field: person.nosuch"),
        ("SELECT count() FROM events_data", "Unknown table `events_data`."),
        ("SELECT * FROM information_schema.tables", "Unknown table"),
        ("SELECT * FROM system.tables", "Unknown table"),
        ("SELECT * FROM read_csv('/etc/passwd')", "Unsupported function call"),
        ("SELECT * FROM file('/etc/passwd')", "Unsupported function call 'file(...)'"),
        ("SELECT * FROM (SELECT 1) UNION ALL SELECT * FROM numbers(3)", "Unsupported function"),
        ("DROP TABLE events", "only SELECT"),
        ("INSERT INTO events (event) VALUES ('x')", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT event FROM events WHERE {nosuch}", "Unresolved placeholder: {nosuch}"),
        ("SELECT event FROM events LIMIT event", "LIMIT must be a whole number"),
        ("SELECT (", "Syntax error"),
    ],
)
def test_what_posthog_would_refuse_is_a_query_error_that_names_it(
    store: Store, openchat_plan: Plan, query: str, message: str
) -> None:
    with pytest.raises(HogQLError) as refused:
        hogql_query(query, store, openchat_plan.name)
    assert message in str(refused.value)
    assert refused.value.status == 400 and refused.value.code == "query_invalid"


def test_a_query_sees_only_its_own_projects_events(store: Store, openchat_plan: Plan) -> None:
    other = hogql_query("SELECT count() FROM events", store, "another-project")
    assert other["results"] == [[0]]
    persons = hogql_query("SELECT count() FROM persons", store, "another-project")
    assert persons["results"] == [[0]]
    # However the text is written: the project is part of the table, not of the WHERE.
    sneaky = "SELECT count() FROM events WHERE 1 = 1 OR project = 'openchat'"
    with pytest.raises(HogQLError, match="Unable to resolve field: project"):
        hogql_query(sneaky, store, "another-project")
    mine = hogql_query("SELECT count() FROM events", store, openchat_plan.name)
    assert mine["results"] == [[len(EVENTS)]]


def test_a_subquery_in_from_sees_the_querys_ctes(store: Store, openchat_plan: Plan) -> None:
    query = (
        "WITH views AS (SELECT distinct_id FROM events WHERE event = '$pageview') "
        "SELECT count() FROM (SELECT DISTINCT distinct_id FROM views) AS people"
    )
    result = hogql_query(query, store, openchat_plan.name)
    assert result["results"] == [[len({e["distinct_id"] for e in pageviews()})]]


def test_a_query_that_runs_too_long_is_stopped(store: Store, openchat_plan: Plan) -> None:
    heavy = (
        "SELECT count() FROM events a JOIN events b ON a.event != b.event "
        "JOIN events c ON b.event != c.event JOIN events d ON c.event != d.event"
    )
    with pytest.raises(HogQLError, match=r"ran longer than 0\.2 s"):
        hogql_query(heavy, store, openchat_plan.name, timeout=0.2)


def test_values_come_back_as_posthog_gives_them(store: Store, openchat_plan: Plan) -> None:
    result = hogql_query(
        "SELECT uuid, timestamp, toDate(timestamp), properties.duration_ms, "
        "properties.$browser, properties FROM events WHERE event = 'chat_message_stream' "
        "ORDER BY timestamp LIMIT 1",
        store,
        openchat_plan.name,
    )
    first = min(streams(), key=at)
    uuid_, timestamp, day, duration, browser, properties = result["results"][0]
    assert uuid_ == first["uuid"] and timestamp == iso(at(first))
    assert day == at(first).date().isoformat()
    assert duration == float(first["properties"]["duration_ms"])  # a number, typed by the plan
    assert browser == first["properties"]["$browser"]  # text, not JSON-quoted
    assert json.loads(properties)["model_id"] == first["properties"]["model_id"]
    assert [t for _, t in result["types"]][:4] == [
        "String",
        "DateTime64(6, 'UTC')",
        "Date",
        "Float64",
    ]
    assert result["hasMore"] is True and result["limit"] == 1


def test_hogqls_own_function_names_read_in_any_case(store: Store, openchat_plan: Plan) -> None:
    result = hogql_query("SELECT TOFLOAT('1.5'), multiif(1 = 1, 'a', 'b')", store, "openchat")
    assert result["results"] == [[1.5, "a"]]
