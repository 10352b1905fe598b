"""A real eventplan server in a subprocess on a loopback port, for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import OPENCHAT, store_url

TOKEN = "phc_openchat_test"
API_KEY = "phx_personal_test_key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    db: Path
    port: int
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    with_api_key: bool = True
    process: subprocess.Popen[bytes] | None = None
    store: str = ""  # what --db says; `db` itself when empty

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RunningServer:
        log = open(self.db.with_suffix(".log"), "ab")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "eventplan",
                "serve",
                "--db",
                self.store or str(self.db),
                "--port",
                str(self.port),
                *(["--api-key", API_KEY] if self.with_api_key else []),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.db.with_suffix('.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/_health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not become healthy")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
        self.process = None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def api_post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST `body` to the data API with the personal API key."""
        return httpx.post(
            f"{self.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=30,
        )

    def sql(self, query: str) -> list[list[Any]]:
        response = self.api_post("/api/sql", {"query": query})
        assert response.status_code == 200, response.text
        return list(response.json()["results"])

    def wait_for_count(self, where: str, count: int, timeout: float = 60) -> None:
        """Poll until `count` stored events match `where` (bounded; not a timing assertion)."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            seen = self.sql(f"SELECT count(*) FROM events WHERE {where}")[0][0]
            if seen >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"expected {count} events where {where}, found {seen}")

    def health(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.url}/_health", timeout=5).json())


def openchat_server(
    tmp: Path, *extra: str, env: dict[str, str] | None = None, backend: str = "duckdb"
) -> RunningServer:
    tmp.mkdir(parents=True, exist_ok=True)
    return RunningServer(
        db=tmp / "eventplan.duckdb",
        port=free_port(),
        args=["--plan", str(OPENCHAT), "--token", TOKEN, *extra],
        env=env or {},
        store="" if backend == "duckdb" else store_url(backend, tmp),
    ).start()


def simulated_server(folder: Path, users: int, days: int, seed: int, *extra: str) -> RunningServer:
    """A server over a store pre-filled by the simulator (through `eventplan import`)."""
    from click.testing import CliRunner

    from eventplan.cli import cli

    folder.mkdir(parents=True, exist_ok=True)
    runner = CliRunner()
    events = folder / "events.jsonl"
    simulated = runner.invoke(
        cli,
        [
            "simulate",
            "--users",
            str(users),
            "--days",
            str(days),
            "--seed",
            str(seed),
            "--out",
            str(events),
        ],
    )
    assert simulated.exit_code == 0, simulated.output
    imported = runner.invoke(
        cli,
        ["import", "--db", str(folder / "eventplan.duckdb"), "--plan", str(OPENCHAT), str(events)],
    )
    assert imported.exit_code == 0, imported.output
    return openchat_server(folder, "--alert-interval", "0", *extra)


@contextmanager
def logged_in(server: RunningServer) -> Iterator[httpx.Client]:
    """A browser's session: logged in through the form, cookies kept."""
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post("/login", data={"csrf": csrf, "key": API_KEY}).status_code == 303
        yield client
