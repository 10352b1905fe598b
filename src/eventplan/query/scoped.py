"""Raw SQL (the engine's own dialect) narrowed to one project.

`/api/sql` is the door to DuckDB's or ClickHouse's own SQL. Asked for one project,
the statement is parsed (sqlglot, the engine's dialect) and every table it reads
becomes that table's rows of the project; anything else it could read from (the
store's bookkeeping, a file, a table function) is refused. The scope is written
into the statement, never taken from its text.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from eventplan.query.statement import one_select
from eventplan.store.base import QueryError
from eventplan.store.clickhouse import value_sql

# The store's tables and views that hold a `project` column, which one project may read.
PROJECT_TABLES = frozenset(
    {
        "events",
        "events_data",
        "persons",
        "person_distinct_ids",
        "person_overrides",
        "groups",
        "quarantine",
        "alert_history",
    }
)


def scoped_sql(sql: str, dialect: str, project: str) -> str:
    """`sql` reading only `project`'s rows; a QueryError names what it may not read."""
    tree = one_select(sql, dialect, unparsed="the query does not parse")
    ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        _scope(table, ctes, dialect, project)
    return str(tree.sql(dialect=dialect))


def _scope(table: exp.Table, ctes: set[str], dialect: str, project: str) -> None:
    plain = isinstance(table.this, exp.Identifier) and not table.args.get("catalog")
    database = table.args.get("db")
    if plain and not database and table.name in ctes:
        return
    if not plain or (database and database.name not in ("main", "default")):
        raise QueryError(_refusal(table.sql(dialect=dialect)))
    if table.name not in PROJECT_TABLES:
        raise QueryError(_refusal(table.name))
    rows = sqlglot.parse_one(
        f"SELECT * FROM {table.name} WHERE project = {value_sql(project)}", read=dialect
    )
    alias = exp.TableAlias(this=exp.to_identifier(table.alias or table.name))
    table.replace(exp.Subquery(this=rows, alias=alias))


def _refusal(name: str) -> str:
    readable = ", ".join(sorted(PROJECT_TABLES))
    return f"a project's SQL reads only its own tables ({readable}), not {name}"
