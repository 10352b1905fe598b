"""`eventplan demo`: the server on the embedded store, fed a simulated month of OpenChat.

The first run creates the data; later runs reuse it (the store remembers), so the
demo never duplicates events. The demo's API key is printed once and kept only as
its hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


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
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server stopped; see {db.with_suffix('.log')}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_health", timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the server did not start within a minute")
    except BaseException:  # Ctrl-C (or SIGTERM) while it starts: stop it too
        process.terminate()
        process.wait(timeout=60)
        raise


def load_state(path: Path) -> dict[str, Any]:
    return dict(msgspec.json.decode(path.read_bytes())) if path.exists() else {}


def new_key() -> tuple[str, str]:
    key = "phx_" + secrets.token_urlsafe(24)
    return key, hashlib.sha256(key.encode()).hexdigest()


@contextlib.contextmanager
def stopping_like_ctrl_c() -> Iterator[None]:
    """While the demo runs, SIGTERM and SIGHUP (`kill`, `docker stop`, a closed
    terminal) end it as Ctrl-C does, so its server is stopped and flushed rather than
    left running; Ctrl-C works even where SIGINT was ignored (started in the background)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    for number in STOP_SIGNALS:
        signal.signal(number, signal.default_int_handler if number == signal.SIGINT else interrupt)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def wait(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Replaced whole, so a reader (or a crash) never meets half a file."""
    written = path.with_suffix(".new")
    written.write_bytes(msgspec.json.encode(state))
    os.chmod(written, 0o600)
    written.replace(path)
