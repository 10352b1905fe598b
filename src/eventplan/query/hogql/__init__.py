"""HogQL, PostHog's SQL, answered as PostHog answers it, over one project's events.

`hogql_query` parses the text (`dialect`), translates it for the store's engine
(`translate`: PostHog's tables as the project's rows, fields, functions), runs it
with PostHog's default of 100 rows and gives PostHog's response: `columns` named as
PostHog names them, `results` with plain strings, numbers and ISO datetimes, `types`
and `hasMore`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlglot import exp

from eventplan.query.hogql import functions
from eventplan.query.hogql.dialect import HogQLError, parse
from eventplan.query.hogql.schema import Resolver
from eventplan.query.hogql.translate import Translator
from eventplan.query.sql import Aliases
from eventplan.store import Store
from eventplan.store.base import QueryError

DEFAULT_LIMIT = 100  # PostHog's, when the query gives none
MAX_LIMIT = 50_000  # PostHog's most rows for one query

__all__ = ["HogQLError", "Translation", "hogql_query", "translate"]


@dataclass(frozen=True)
class Translation:
    sql: str  # one SELECT in the store's dialect, fetching `limit` + 1 rows
    columns: tuple[str, ...]
    limit: int


def translate(text: str, store: Store, project: str, aliases: Aliases | None = None) -> Translation:
    """The query in the store's SQL; events and properties stored under names the plan
    renamed read as the new ones (`aliases`). A dashboard or a script asks the same text
    again and again, so translations are kept (per store, project, set of typed columns
    and renames: a plan that changes gives new ones)."""
    columns = tuple(c.name for c in store.columns)
    return _translate(text, store, project, columns, aliases or Aliases())


@lru_cache(maxsize=512)
def _translate(
    text: str, store: Store, project: str, columns: tuple[str, ...], aliases: Aliases
) -> Translation:
    parsed = parse(text)
    for node in parsed.walk():
        functions.check(node)
    tree = parsed.transform(_placeholder)
    if not isinstance(tree, exp.Query):
        raise HogQLError("only SELECT queries are allowed")
    translator = Translator(Resolver(store, project, aliases))
    names = translator.query(tree, None)
    limit = _limit(tree)
    return Translation(translator.sql(tree.limit(limit + 1, copy=False)), tuple(names), limit)


def hogql_query(
    text: str,
    store: Store,
    project: str,
    timeout: float | None = None,
    aliases: Aliases | None = None,
) -> dict[str, Any]:
    translation = translate(text, store, project, aliases)
    try:
        _, rows = store.sql(translation.sql, timeout=timeout)
    except HogQLError:
        raise
    except QueryError as exc:  # the engine refused what the translation let through
        raise HogQLError(f"the query could not run: {exc}") from exc
    rows = rows[: translation.limit + 1]
    kept = rows[: translation.limit]
    return {
        "columns": list(translation.columns),
        "results": [[_value(v) for v in row] for row in kept],
        "types": [[name, _type(kept, i)] for i, name in enumerate(translation.columns)],
        "hasMore": len(rows) > len(kept),
        "limit": translation.limit,
        "offset": 0,
        "query": text,
    }


def _placeholder(node: exp.Expr) -> exp.Expr:
    """`{filters}` is every event when the request gives no filters; nothing else is
    known."""
    if isinstance(node, exp.Placeholder):
        if node.name == "filters":
            return exp.true()
        raise HogQLError(f"Unresolved placeholder: {{{node.name}}}")
    return node


def _limit(tree: exp.Expr) -> int:
    given = tree.args.get("limit")
    if given is None:
        return DEFAULT_LIMIT
    count = given.expression if isinstance(given, exp.Limit) else given
    if not (isinstance(count, exp.Literal) and count.is_int):
        raise HogQLError("LIMIT must be a whole number")
    return min(int(count.this), MAX_LIMIT)


def _value(value: Any) -> Any:
    """A value as PostHog's API gives it: text plain, numbers numbers, times ISO."""
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [_value(v) for v in value]
    return value


TYPES = (
    (bool, "Bool"),
    (int, "Int64"),
    (float | Decimal, "Float64"),
    (str | uuid.UUID, "String"),
    (datetime, "DateTime64(6, 'UTC')"),
    (date, "Date"),
    (list | tuple, "Array"),
)


def _type(results: list[tuple[Any, ...]], index: int) -> str:
    """The column's type, as ClickHouse names it, from its first value that is set."""
    for row in results:
        value = row[index]
        if value is None:
            continue
        for kind, name in TYPES:
            if isinstance(value, kind):
                return name
    return "Nullable(Nothing)"
