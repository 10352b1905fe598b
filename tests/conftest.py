"""Shared fixtures: the real OpenChat plan and helpers that write plan files."""

from __future__ import annotations

import contextlib
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


class SmallDisk:
    """A real file system of a few MiB (a tmpfs), to run out of space on for real."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler.bin"

    def free(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all but `leave` bytes of free space (with a file that `release` deletes)."""
        with open(self._filler, "ab") as handle:
            while (free := self.free()) > leave:
                # tmpfs counts whole pages: take what it gives, then look again
                with contextlib.suppress(OSError):
                    os.posix_fallocate(handle.fileno(), handle.tell(), free - leave)
                handle.seek(0, os.SEEK_END)
                if self.free() == free:
                    break

    def release(self) -> None:
        self._filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str, int], SmallDisk]]:
    """`small_disk(name, mib)` mounts a tmpfs of that size under tmp_path. Where this
    process may not mount (not root, no CAP_SYS_ADMIN), the test is skipped locally
    with that reason; under CI=true it fails."""
    import subprocess

    mounted: list[Path] = []

    def mount(name: str, mib: int) -> SmallDisk:
        path = tmp_path / name
        path.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(path)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            message = f"needs to mount a tmpfs (root with CAP_SYS_ADMIN): {result.stderr.strip()}"
            if os.environ.get("CI") == "true":
                pytest.fail(message)
            pytest.skip(message)
        mounted.append(path)
        return SmallDisk(path)

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)
