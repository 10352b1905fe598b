"""HogQL's grammar: ClickHouse SQL with PostHog's additions, as a sqlglot dialect.

sqlglot parses ClickHouse SQL into a tree it can print for DuckDB and ClickHouse;
HogQL adds three things to it, and this dialect teaches the parser those only:
`$` inside names (`properties.$browser`, `$pageview` as a field), `??` for
`coalesce` (ClickHouse's tokenizer already knows it), and `{filters}`, a placeholder
without a type.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.clickhouse import ClickHouse
from sqlglot.parsers.clickhouse import ClickHouseParser
from sqlglot.tokenizer_core import TokenType

from eventplan.query.statement import one_select
from eventplan.store.base import QueryError


class HogQLError(QueryError):
    """A HogQL query PostHog would refuse too, in PostHog's words (a `query_invalid`)."""


class HogQLParser(ClickHouseParser):
    # `median` stays itself (sqlglot makes it a quantile), so the column keeps its name.
    FUNCTION_PARSERS: ClassVar = {
        k: v for k, v in ClickHouseParser.FUNCTION_PARSERS.items() if k != "MEDIAN"
    }
    FUNCTIONS: ClassVar = {
        **ClickHouseParser.FUNCTIONS,
        "MEDIAN": lambda args: exp.Anonymous(this="median", expressions=args),
    }

    def _parse_query_parameter(self) -> exp.Expr | None:
        # `{filters}`: HogQL's placeholder has no type (ClickHouse's `{x: Type}` does).
        index = self._index
        name = self._parse_id_var()
        if name is not None and self._match(TokenType.R_BRACE):
            return self.expression(exp.Placeholder(this=exp.var(name.name)))
        self._retreat(index)
        return super()._parse_query_parameter()


class HogQL(ClickHouse):
    class Tokenizer(ClickHouse.Tokenizer):
        # `$` starts a heredoc string in ClickHouse; in HogQL it is part of a name.
        SINGLE_TOKENS: ClassVar = {
            k: v for k, v in ClickHouse.Tokenizer.SINGLE_TOKENS.items() if k != "$"
        }
        HEREDOC_STRINGS: ClassVar[list[Any]] = []
        VAR_SINGLE_TOKENS: ClassVar = {"$"}

    Parser = HogQLParser


def parse(text: str) -> exp.Query:
    """One SELECT (or UNION of SELECTs); anything else is a HogQLError."""
    return one_select(text, HogQL, HogQLError, "Syntax error")
