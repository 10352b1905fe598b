"""Events from files: JSON lines (one event per line) or a PostHog JSON export.

A PostHog export is one JSON array of events (or `{"results": [...]}` from the
API); a capture body `{"batch": [...]}` is accepted too. Anything else is read as
JSON lines, where a line that is not JSON becomes a record with an error and its
line number, so one bad line never hides the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventplan.capture.decode import NotJSON, decode_json


@dataclass(frozen=True)
class Record:
    line: int
    event: Any = None
    error: str | None = None


def read_events(path: Path) -> Iterator[Record]:
    """The file's events in order; raises OSError at once if it cannot be read."""
    return _records(path.read_bytes())


def _records(data: bytes) -> Iterator[Record]:
    stripped = data.lstrip()
    if stripped[:1] in (b"[", b"{"):
        try:
            whole = decode_json(data)
        except NotJSON:
            whole = None
        if isinstance(whole, list):
            yield from (Record(line=index + 1, event=event) for index, event in enumerate(whole))
            return
        if isinstance(whole, dict):
            for key in ("results", "batch"):
                if isinstance(whole.get(key), list):
                    yield from (
                        Record(line=index + 1, event=event)
                        for index, event in enumerate(whole[key])
                    )
                    return
    yield from _json_lines(data)


def _json_lines(data: bytes) -> Iterator[Record]:
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield Record(line=number, event=decode_json(line))
        except NotJSON as exc:
            yield Record(line=number, error=f"not JSON: {exc}")
