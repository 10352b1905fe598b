"""Loading: the plan's judgement of logged events, run inside the store's engine.

Capture acknowledges once events are in the log; loading judges them behind it, in
bulk. `judge_sql` compiles a plan into one SQL statement that gives every event its
verdict and violations, the same ones the Python `Validator` gives.
"""

from eventplan.load.judge_sql import JudgeSql, judge_events

__all__ = ["JudgeSql", "judge_events"]
