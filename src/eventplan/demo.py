"""`eventplan demo`: the server on the embedded store, fed a simulated month of OpenChat.

The first run creates the data; later runs reuse it (the store remembers), so the
demo never duplicates events. The demo's API key is printed once and kept only as
its hash.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

TOKEN = "phc_openchat_demo"
INCIDENTS = (
    "models-fetch-down@day=8,hours=2",
    "db-outage@day=12,hours=3",
    "model-errors@day=20",
    "rate-limit-storm@day=25,hours=3",
)


def start_server(plan: Path, db: Path, port: int, key_hash: str) -> subprocess.Popen[bytes]:
    log = open(db.with_suffix(".log"), "ab")  # noqa: SIM115 - owned by the server process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "eventplan",
            "serve",
            "--plan",
            str(plan),
            "--db",
            str(db),
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--api-key-sha256",
            key_hash,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped; see {db.with_suffix('.log')}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("the server did not start within a minute")


def load_state(path: Path) -> dict[str, Any]:
    return dict(msgspec.json.decode(path.read_bytes())) if path.exists() else {}


def new_key() -> tuple[str, str]:
    key = "phx_" + secrets.token_urlsafe(24)
    return key, hashlib.sha256(key.encode()).hexdigest()


def wait(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def save_state(path: Path, state: dict[str, Any]) -> None:
    path.write_bytes(msgspec.json.encode(state))
    os.chmod(path, 0o600)
