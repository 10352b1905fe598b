"""Loading: the plan's judgement of logged events, run inside the store's engine.

Capture acknowledges once events are in the log; loading judges them behind it, in
bulk. The plan is compiled into one SQL statement per backend that gives every
event its verdict and violations, the same ones the Python `Validator` gives:
`judge_sql` for DuckDB, `judge_clickhouse` for ClickHouse, from the same rule
records (`judge_sql.rule_of`).
"""

from eventplan.load.judge_clickhouse import JudgeClickHouse, judge_events_clickhouse
from eventplan.load.judge_sql import JudgeSql, judge_events

__all__ = ["JudgeClickHouse", "JudgeSql", "judge_events", "judge_events_clickhouse"]
