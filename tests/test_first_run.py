"""A server started without any key prints a one-time admin key and keeps only its hash."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.conftest import OPENCHAT
from tests.servers import TOKEN, RunningServer, free_port


def keyless(folder: Path) -> RunningServer:
    """A server on `folder`'s store started with no --api-key at all."""
    return RunningServer(
        db=folder / "eventplan.duckdb",
        port=free_port(),
        args=["--plan", str(OPENCHAT), "--token", TOKEN, "--alert-interval", "0"],
        with_api_key=False,
    ).start()


def test_first_run_prints_an_admin_key_once(tmp_path: Path) -> None:
    server = keyless(tmp_path)
    try:
        log = server.db.with_suffix(".log").read_text()
        [key] = re.findall(r"with (phx_\S+)", log)
        ok = httpx.get(f"{server.url}/api/dashboards", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    finally:
        server.stop()
    assert key not in (tmp_path / "eventplan.duckdb").read_bytes().decode("latin-1")
    again = keyless(tmp_path)
    try:
        assert len(re.findall(r"with (phx_\S+)", server.db.with_suffix(".log").read_text())) == 1
        still = httpx.get(f"{again.url}/api/dashboards", headers={"Authorization": f"Bearer {key}"})
        assert still.status_code == 200
    finally:
        again.stop()
