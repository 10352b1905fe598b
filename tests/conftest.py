"""Shared fixtures: the real OpenChat plan and helpers that write plan files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventplan.plan import Plan, load_plan
from eventplan.plan.validator import Validator

ROOT = Path(__file__).resolve().parent.parent
OPENCHAT = ROOT / "plans" / "openchat.yaml"


@pytest.fixture(scope="session")
def openchat_plan() -> Plan:
    return load_plan(OPENCHAT)


@pytest.fixture(scope="session")
def openchat_validator(openchat_plan: Plan) -> Validator:
    return Validator(openchat_plan)


@pytest.fixture
def write_plan(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "plan.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def require_tool(name: str, package: str) -> str:
    """The path of a system tool, or skip (locally) naming the package that provides it.

    Under CI=true nothing is skipped: a missing tool is a failure.
    """
    path = shutil.which(name)
    if path is None:
        message = f"needs `{name}` (Debian package `{package}`); see the README's prerequisites"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One OpenChat server per test module; tests keep apart by distinct_id."""
    from tests.servers import openchat_server

    running = openchat_server(tmp_path_factory.mktemp("server"), "--trusted-proxy", "127.0.0.0/8")
    yield running
    running.stop()


# Every backend-parametrised test runs on the embedded DuckDB file and on ClickHouse's
# engine (chDB, in-process), through the same store interface and SQL compiler.
BACKENDS = ["duckdb", "clickhouse"]


def store_url(backend: str, folder: Path) -> str:
    """What `--db` says for a fresh store of `backend` under `folder`."""
    if backend == "clickhouse":
        return f"chdb:{folder / 'clickhouse'}"
    return str(folder / "events.duckdb")


def examples(backend: str, count: int) -> int:
    """Hypothesis examples per backend: the full count on DuckDB, a third on ClickHouse.

    ClickHouse runs the same engine through the same compiler, so a few examples find
    a dialect difference; each costs more there (a chDB store per example).
    """
    return count if backend == "duckdb" else max(5, count // 3)
