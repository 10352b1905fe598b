"""One SELECT read from text by sqlglot, or a QueryError that says what it is instead.

HogQL (`query/hogql`) and a project's raw SQL (`query/scoped.py`) both take exactly
one statement that only reads; each names a parse error in its own words.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from eventplan.store.base import QueryError


def one_select(
    text: str, read: Any, error: type[QueryError] = QueryError, unparsed: str = "Syntax error"
) -> exp.Query:
    """The statement of `text` in the dialect `read`: a SELECT or a set of SELECTs."""
    try:
        statements = [s for s in sqlglot.parse(text, read=read) if s is not None]
    except (ParseError, TokenError) as exc:
        raise error(f"{unparsed}: {str(exc).splitlines()[0]}") from exc
    if len(statements) != 1:
        raise error(f"send exactly one statement, not {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise error(f"only SELECT queries are allowed here, not {statement.key.upper()}")
    return statement
