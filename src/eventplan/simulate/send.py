"""Where simulated events go: a running server through the real posthog-python
client, or a file in PostHog's event shape (JSON lines or Parquet)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

Progress = Callable[[int], None]


def write_file(events: Iterable[dict[str, Any]], path: Path, progress: Progress) -> int:
    """JSON lines (`.jsonl`) or Parquet (`.parquet`); returns the number written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        return _write_parquet(events, path, progress)
    encoder = msgspec.json.Encoder()
    count = 0
    with open(path, "wb") as out:
        buffer = bytearray()
        for event in events:
            encoder.encode_into(event, buffer, -1)
            buffer.extend(b"\n")
            count += 1
            if count % 10_000 == 0:
                out.write(buffer)
                buffer.clear()
                progress(10_000)
        out.write(buffer)
        progress(count % 10_000)
    return count


def _write_parquet(events: Iterable[dict[str, Any]], path: Path, progress: Progress) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoder = msgspec.json.Encoder()
    schema = pa.schema(
        [
            ("uuid", pa.string()),
            ("event", pa.string()),
            ("distinct_id", pa.string()),
            ("timestamp", pa.string()),
            ("properties", pa.string()),
        ]
    )
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        rows: dict[str, list[Any]] = {name: [] for name in schema.names}
        for event in events:
            for name in ("uuid", "event", "distinct_id", "timestamp"):
                rows[name].append(event[name])
            rows["properties"].append(encoder.encode(event["properties"]).decode())
            count += 1
            if len(rows["uuid"]) == 50_000:
                writer.write_table(pa.table(rows, schema=schema))
                rows = {name: [] for name in schema.names}
                progress(50_000)
        if rows["uuid"]:
            writer.write_table(pa.table(rows, schema=schema))
            progress(len(rows["uuid"]))
    return count


def send_to_server(
    events: Iterable[dict[str, Any]], host: str, token: str, rate: float, progress: Progress
) -> tuple[int, list[str]]:
    """Through posthog-python, as an app would; returns (sent, errors reported by the client)."""
    from posthog import Posthog

    errors: list[str] = []
    lock = threading.Lock()

    def on_error(error: Exception, batch: list[Any]) -> None:
        with lock:
            errors.append(f"{type(error).__name__}: {error} ({len(batch)} events)")

    client = Posthog(
        token,
        host=host,
        gzip=True,
        flush_at=500,
        flush_interval=0.2,
        max_queue_size=200_000,
        thread=2,
        on_error=on_error,
    )
    sent = 0
    started = time.monotonic()
    try:
        for event in events:
            client.capture(
                event["event"],
                distinct_id=event["distinct_id"],
                properties=event["properties"],
                timestamp=datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")),
                uuid=event["uuid"],
            )
            sent += 1
            if sent % 1000 == 0:
                progress(1000)
                if rate > 0:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        client.flush()
    finally:
        client.shutdown()
    progress(sent % 1000)
    return sent, errors
