"""The background writer: durable log records in, large inserts out.

Capture hands over each acknowledged batch as the bytes it wrote to the log, with
their sequence number; this thread gathers them until it has `batch_events` events
or `interval` seconds have passed, decodes them and inserts them into the store in
one transaction that also records the sequence it reached. Waiting batches stay
encoded (240 bytes per simulated event, a third of the decoded objects) and give
the garbage collector nothing to walk. On start, whatever the log holds past that
sequence is replayed first, so an event acknowledged just before a crash is never
lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from eventplan.store.base import Store
from eventplan.store.records import StoredEvent, decode_events
from eventplan.store.wal import WriteAheadLog

log = logging.getLogger("eventplan.writer")


@dataclass
class WriterStats:
    inserted: int = 0
    duplicates: int = 0
    batches: int = 0
    last_error: str | None = None
    stored_seq: int = 0


class BackgroundWriter:
    def __init__(
        self,
        store: Store,
        wal: WriteAheadLog,
        *,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, frozenset[str]] | None = None,
        batch_events: int = 20_000,
        interval: float = 0.5,
    ) -> None:
        self.store = store
        self.wal = wal
        self.quarantine = quarantine
        self.forward = forward or {}
        self.batch_events = batch_events
        self.interval = interval
        self.stats = WriterStats(stored_seq=store.wal_seq())
        self._queue: queue.Queue[tuple[int, bytes, int] | None] = queue.Queue()
        self._pending_events = 0
        self._pending_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="eventplan-writer", daemon=True)
        self._idle = threading.Event()
        self._idle.set()

    @property
    def pending_events(self) -> int:
        """Acknowledged events not yet in the store (for back-pressure and /_health)."""
        return self._pending_events

    def replay(self) -> int:
        """Load whatever the log holds past the store's position; returns events replayed."""
        after = self.store.wal_seq()
        replayed = 0
        chunk: list[StoredEvent] = []
        last = after
        for seq, payload in self.wal.replay(after):
            chunk.extend(decode_events(payload))
            last = seq
            if len(chunk) >= self.batch_events:
                replayed += self._insert(chunk, last)
                chunk = []
        if chunk or last != after:
            replayed += self._insert(chunk, last)
        self.wal.release_through(last)
        return replayed

    def start(self) -> None:
        self._thread.start()

    def submit(self, seq: int, payload: bytes, count: int) -> None:
        """Hand over log record `seq`: `payload` as `encode_events` made it, of `count` events."""
        with self._pending_lock:
            self._pending_events += count
        self._idle.clear()
        self._queue.put((seq, payload, count))

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until everything submitted so far is in the store."""
        deadline = time.monotonic() + timeout
        while self._pending_events and time.monotonic() < deadline:
            self._idle.wait(0.05)
        return self._pending_events == 0

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            payloads: list[bytes] = []
            count = 0
            last_seq = 0
            deadline = None
            while count < self.batch_events:
                timeout: float | None = None
                if deadline is not None:
                    timeout = max(deadline - time.monotonic(), 0)
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                seq, payload, size = item
                payloads.append(payload)
                count += size
                last_seq = max(last_seq, seq)
                if deadline is None:
                    deadline = time.monotonic() + self.interval
            if last_seq:
                chunk = [event for payload in payloads for event in decode_events(payload)]
                del payloads
                self._insert_with_retry(chunk, last_seq)

    def _insert_with_retry(self, chunk: list[StoredEvent], last_seq: int) -> None:
        delay = 0.1
        while True:
            try:
                self._insert(chunk, last_seq)
                break
            except Exception as exc:  # the events are safe in the log; keep trying
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("store insert failed; retrying in %.1fs", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        with self._pending_lock:
            self._pending_events -= len(chunk)
            if self._pending_events <= 0:
                self._pending_events = 0
                self._idle.set()
        self.wal.release_through(last_seq)

    def _insert(self, chunk: list[StoredEvent], last_seq: int) -> int:
        added = self.store.insert(chunk, last_seq, self.quarantine, self.forward)
        self.stats.inserted += added
        self.stats.duplicates += len(chunk) - added
        self.stats.batches += 1
        self.stats.stored_seq = last_seq
        return added
