"""The background writer: durable log records of judged events in, large inserts out.

Capture judges each request's events and lays them out in the store's columns
before it logs them (in a capture process, off the server's own Python), so this
thread only joins the records' columns and inserts them. A log written by an older
version holds events not laid out, or as received; the writer judges those
(`judge`: the plan's enrichment, verdict and privacy, per project) and lays them out
as it reads each record back.

Capture hands over each acknowledged batch's log sequence number and size; this
thread gathers them into inserts of the size the store asks for
(`Store.insert_size`: a whole DuckDB row group, which DuckDB writes straight into
its file, compressed). When traffic is too slow to fill one within `max_wait`
seconds (1 s: an acknowledged event is queryable about a second later), it inserts
what came within `interval` instead, and the store sorts those into place once a
row group's worth has gathered. Waiting up to 30 s for whole row groups cost about
17% less CPU at full speed, but kept events out of the store for 22 s at 5,000
events/s (bench/fixed_rate.py). Waiting events are not held in memory: the insert
reads its records back from the log (from the page cache, one pass forward) and
decodes them a slice at a time.

An insert ends exactly at its size, so the log record that crosses it is split:
its head goes in now, its tail starts the next insert, and the log position the
store records is the last record stored whole. A crash in between replays that
record, and the store's uuid check drops its head. On start, whatever the log
holds past that position is replayed first, so an event acknowledged just before
a crash is never lost.

A failed insert is retried, since the events are safe in the log. When the store
itself fails (`StoreUnavailable`: a full disk, a server out of reach) the insert
waits and tries again, with backoff; when the engine gave up on its connection
(DuckDB invalidates a database after a failed checkpoint) the writer reopens it
first, and re-inserts whatever the log holds past the position the reopened store
recorded. So the store recovers once the disk has room, without a restart. Any
other failure that keeps coming back is tried again a record at a time, halving
any record that fails, so that one event the store cannot take (a log written by
an older version, say) does not hold back every event after it: that event is set
aside, whole, in the log directory's `unstored.jsonl`, and counted. Only once the
store has taken a write of its own, though: when it takes nothing, the insert
waits instead.
On every start the events set aside are offered to the store again, one at a time
(a newer version may take them); those it takes leave the file.

`stop` interrupts every wait: an insert that has not gone in stays in the log and
is replayed on the next start.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import msgspec

from eventplan.plan.forwarding import ForwardRules
from eventplan.store.base import Store, StoreUnavailable
from eventplan.store.memory import release_free_memory
from eventplan.store.records import (
    EventColumns,
    LoggedEvent,
    StoredEvent,
    columns_of,
    decode_columns,
    decode_logged,
    decode_stored,
    events_in,
    record_kind,
    record_size,
    slice_groups,
)
from eventplan.store.wal import WriteAheadLog, fsync_directory

log = logging.getLogger("eventplan.writer")

ISOLATE_AFTER: Final = 3  # failed tries of one insert before it is halved
# The longest wait between tries: a store back (space freed) is found within it.
MAX_RETRY_DELAY: Final = 2.0
UNSTORED: Final = "unstored.jsonl"


@dataclass
class WriterStats:
    inserted: int = 0
    duplicates: int = 0
    batches: int = 0
    last_error: str | None = None
    stored_seq: int = 0
    unstored: int = 0  # events the store refused alone, set aside in UNSTORED
    failing: bool = False  # the last insert failed, and none has gone in since
    reopened: int = 0  # times the store was reopened after its engine gave up


@dataclass
class Piece:
    """Events of one log record: all of it (`ends_record`), or its head or tail."""

    seq: int
    size: int
    groups: list[EventColumns] | None = None  # None: only in the log, read when inserted
    ends_record: bool = True
    start: int = 0  # where in the record's events it starts

    def split(self, at: int) -> tuple[Piece, Piece]:
        head = tail = None
        if self.groups is not None:
            head = slice_groups(self.groups, 0, at)
            tail = slice_groups(self.groups, at, self.size - at)
        return (
            Piece(self.seq, at, head, ends_record=False, start=self.start),
            Piece(self.seq, self.size - at, tail, self.ends_record, self.start + at),
        )


def groups_of(
    pieces: Iterable[Piece], read: Callable[[Piece], list[EventColumns]]
) -> Iterator[EventColumns]:
    """The pieces' events in order, in columns, each piece let go of once it is
    decoded (a retry reads it from the log again)."""
    for piece in pieces:
        groups = piece.groups if piece.groups is not None else read(piece)
        piece.groups = None
        yield from groups


def chunks(pieces: Iterable[Piece], size: int) -> Iterator[list[Piece]]:
    """Pieces regrouped into runs of exactly `size` events (the last one may be short)."""
    chunk: list[Piece] = []
    count = 0
    for piece in pieces:
        while count + piece.size > size:
            head, piece = piece.split(size - count)
            yield [*chunk, head]
            chunk, count = [], 0
        chunk.append(piece)
        count += piece.size
    if chunk:
        yield chunk


class BackgroundWriter:
    def __init__(
        self,
        store: Store,
        wal: WriteAheadLog,
        judge: Callable[[list[LoggedEvent]], list[StoredEvent]],
        *,
        quarantine: frozenset[str] = frozenset(),
        forward: dict[str, ForwardRules] | None = None,
        interval: float = 0.5,
        max_wait: float = 1.0,
    ) -> None:
        self.store, self.wal, self.judge = store, wal, judge
        self.quarantine, self.forward = quarantine, forward or {}
        self.interval, self.max_wait = interval, max_wait
        self.stats = WriterStats(stored_seq=store.wal_seq())
        wal.continue_after(self.stats.stored_seq)
        self._queue: queue.Queue[tuple[int, int] | None] = queue.Queue()
        self._log = wal.reader()
        self._pending_events = 0
        self._pending_lock = threading.Lock()
        # (log record, when submitted) of records not yet stored whole, oldest first.
        self._waiting: deque[tuple[int, float]] = deque()
        self._thread = threading.Thread(target=self._run, name="eventplan-writer", daemon=True)
        self._idle = threading.Event()
        self._idle.set()
        self._hurry = threading.Event()  # flush() waits: insert what there is now
        self._stopping = threading.Event()  # stop(): end every wait, leave the rest in the log
        self._replay_left = False  # the start's replay met a failing store: finish it later

    @property
    def pending_events(self) -> int:
        """Acknowledged events not yet in the store (for back-pressure and /_health)."""
        return self._pending_events

    def lag_seconds(self) -> float:
        """How long the oldest acknowledged record not yet stored has waited."""
        try:
            _, submitted = self._waiting[0]
        except IndexError:
            return 0.0
        return max(0.0, time.monotonic() - submitted)

    def replay(self) -> int:
        """Load whatever the log holds past the store's position; returns events replayed.
        While the store itself fails, the writer's thread finishes it once it can: the
        server starts and acknowledges into the log meanwhile."""
        try:
            return self._replay()
        except StoreUnavailable as exc:
            self._failed(exc, 0.0)
            self._replay_left = True
            return 0

    def _replay(self) -> int:
        after = self.store.wal_seq()
        replayed = 0
        for chunk in chunks(self._logged(after), self.store.insert_size):
            try:
                replayed += self._insert(chunk)
            except StoreUnavailable:
                raise  # the store, not the events: replayed again once it takes writes
            except Exception as exc:  # one event may be refused: find it, or fail the start
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("replaying the log failed; inserting it a record at a time")
                replayed += self._insert_isolating(chunk, None)
        self.wal.release_through(self.stats.stored_seq)
        return replayed

    def retry_set_aside(self) -> int:
        """Offer each event in UNSTORED to the store again; returns how many it took.
        The file keeps, once each, the events still refused and any line it cannot read."""
        path = self.wal.directory / UNSTORED
        if not path.exists():
            return 0
        lines = path.read_bytes().splitlines()
        kept: dict[str, bytes] = {}
        seen: set[str] = set()
        taken = 0
        for number, line in enumerate(lines):
            try:
                entry = msgspec.json.decode(line)
                fields = entry["event"]
                # An event set aside before plan versions were kept has none: "".
                event = msgspec.convert(
                    [fields[name] for name in StoredEvent.__struct_fields__ if name in fields],
                    StoredEvent,
                )
            except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError):
                kept[f"line {number}"] = line  # a torn last line, say: kept as it is
                continue
            if event.uuid in seen:
                continue
            seen.add(event.uuid)
            try:
                self.store.insert([event], self.stats.stored_seq, self.quarantine, self.forward)
            except Exception as exc:
                log.warning("set-aside event %s still refused: %s", event.uuid, exc)
                kept[event.uuid] = line
            else:
                taken += 1
        if len(kept) < len(lines):
            replacement = path.with_suffix(".new")
            with replacement.open("wb") as out:
                out.writelines(line + b"\n" for line in kept.values())
                out.flush()
                os.fsync(out.fileno())
            replacement.replace(path)
            fsync_directory(path.parent)
        self.stats.unstored = len(kept)
        return taken

    def start(self) -> None:
        self._thread.start()

    def submit(self, seq: int, count: int) -> None:
        """Hand over durable log record `seq`, of `count` events."""
        with self._pending_lock:
            self._pending_events += count
        self._waiting.append((seq, time.monotonic()))
        self._idle.clear()
        self._queue.put((seq, count))

    def flush(self, timeout: float = 60.0, while_failing: bool = True) -> bool:
        """Wait until everything submitted so far is in the store (or, unless
        `while_failing`, until an insert fails)."""
        deadline = time.monotonic() + timeout
        if self._pending_events:
            self._hurry.set()  # insert what has come rather than wait to fill a row group
        while self._pending_events and time.monotonic() < deadline:
            if self.stats.failing and not while_failing:
                break
            self._idle.wait(0.05)
        return self._pending_events == 0

    def stop(self) -> None:
        """End after the insert in flight; what is not stored stays in the log (call
        `flush` first to store it now)."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join()
        self._log.close()

    def _run(self) -> None:
        if not self._finish_replay():
            return  # stopped first: the log keeps it all
        carry: Piece | None = None
        stopping = False
        while not stopping or carry is not None:
            pieces, carry, stopping = self._gather(carry, stopping)
            if pieces and not self._insert_with_retry(pieces, carry):
                return  # stopped while the store failed: the log keeps the rest
            if self._stopping.is_set():
                return  # stopped: what waits is in the log, replayed on the next start

    def _logged(self, after: int, through: int | None = None) -> Iterator[Piece]:
        """The log's records past `after` (up to `through`), as pieces to insert.
        Counted now, decoded again when inserted: holding a row group's worth of
        decoded events would take hundreds of megabytes."""
        for seq, payload in self.wal.replay(after):
            if through is not None and seq > through:
                return
            yield Piece(seq, record_size(payload))

    def _finish_replay(self) -> bool:
        """The replay the start could not do, once the store takes writes; False when
        stopped first."""
        delay = 0.1
        while self._replay_left:
            if self._stopping.wait(delay):
                return False
            try:
                if self.store.broken:
                    self._reopen()
                replayed = self._replay()
            except StoreUnavailable as exc:
                self._failed(exc, delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            log.warning("replayed %d acknowledged events from the log, late", replayed)
            self._replay_left = self.stats.failing = False
        return True

    def _gather(
        self, carry: Piece | None, stopping: bool
    ) -> tuple[list[Piece], Piece | None, bool]:
        """The next insert's pieces, the tail of a record it split, and whether to stop."""
        size = self.store.insert_size
        pieces: list[Piece] = []
        count = 0
        started: float | None = None
        while count < size:
            if carry is not None:
                piece, carry = carry, None
            elif stopping:
                break
            else:
                try:
                    item = self._queue.get(timeout=self._wait(started, count, size))
                except queue.Empty:
                    if self._wait(started, count, size) == 0:
                        break
                    continue
                if item is None:
                    stopping = True
                    continue
                piece = Piece(*item)
                if piece.seq <= self.stats.stored_seq:  # the start's replay stored it
                    self._stored(piece.size)
                    continue
            if started is None:
                started = time.monotonic()
            if count + piece.size > size:
                piece, carry = piece.split(size - count)
            pieces.append(piece)
            count += piece.size
        return pieces, carry, stopping

    def _wait(self, started: float | None, count: int, size: int) -> float | None:
        """How long to wait for more: None while nothing waits; 0 to insert now."""
        if started is None:
            return None
        if self._hurry.is_set():
            return 0
        elapsed = time.monotonic() - started
        if elapsed < self.interval:
            return self.interval - elapsed
        # Keep filling while the arrivals so far would fill the insert in time.
        if elapsed < self.max_wait and count / elapsed * self.max_wait >= size:
            return min(self.interval, self.max_wait - elapsed)
        return 0

    def _insert_with_retry(self, pieces: list[Piece], carry: Piece | None) -> bool:
        """Insert until it goes in (True), or until stopped (False)."""
        delay = 0.1
        failures = 0
        while True:
            try:
                if self.store.broken:
                    self._reopen()
                if failures < ISOLATE_AFTER:
                    self._insert(pieces, carry)
                else:
                    self._insert_isolating(pieces, carry)
                break
            except StoreUnavailable as exc:  # the store, not the events: wait for it
                failures = min(failures, ISOLATE_AFTER - 1)
                self._failed(exc, delay)
            except Exception as exc:  # the events are safe in the log; keep trying
                failures += 1
                self._failed(exc, delay)
            if self._stopping.wait(delay):
                return False
            delay = min(delay * 2, MAX_RETRY_DELAY)
        self.stats.failing = False
        release_free_memory()
        self._stored(sum(piece.size for piece in pieces))
        return True

    def _stored(self, events: int) -> None:
        """`events` are in the store: fewer pending, and the log holds less."""
        while self._waiting and self._waiting[0][0] <= self.stats.stored_seq:
            self._waiting.popleft()
        with self._pending_lock:
            self._pending_events -= events
            if self._pending_events <= 0:
                self._pending_events = 0
                self._hurry.clear()
                self._idle.set()
        self.wal.release_through(self.stats.stored_seq)

    def _failed(self, exc: Exception, delay: float) -> None:
        self.stats.failing = True
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, StoreUnavailable):
            log.error("the store is failing (%s); retrying in %.1fs", exc, delay)
        else:
            log.exception("store insert failed; retrying in %.1fs", delay)

    def _reopen(self) -> None:
        """Reopen a store whose engine gave up, and put back what it lost with it:
        records past the position it recorded, up to where the writer had got."""
        self.store.reopen()
        self.stats.reopened += 1
        recorded = self.store.wal_seq()
        if recorded >= self.stats.stored_seq:
            return
        log.warning("the reopened store is at log record %d; re-inserting from there", recorded)
        target, self.stats.stored_seq = self.stats.stored_seq, recorded
        for chunk in chunks(self._logged(recorded, through=target), self.store.insert_size):
            self._insert(chunk)
        self.stats.stored_seq = max(self.stats.stored_seq, target)

    def _insert_isolating(self, pieces: list[Piece], carry: Piece | None) -> int:
        """`_insert_halving`, once the store has shown it takes a write at all: over an
        unreachable server each halving step would wait out its timeout."""
        self._probe()
        return self._insert_halving(pieces, carry)

    def _insert_halving(self, pieces: list[Piece], carry: Piece | None) -> int:
        """Insert the pieces one at a time, halving each that fails down to single
        events; one the store refuses alone is set aside. Raises (to wait and try
        again) when the store takes no write at all. Returns the events added."""
        added = 0
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            try:
                added += self._insert([piece], carry if last else None)
                continue
            except Exception as exc:
                error = exc
            if isinstance(error, StoreUnavailable):
                raise error  # the store, not this piece: wait for it
            groups = self._read(piece)
            if piece.size > 1:
                piece.groups = groups  # so the halves carry their slices
                added += self._insert_halving(
                    list(piece.split(piece.size // 2)), carry if last else None
                )
                continue
            self._probe()  # raises if the store takes nothing now
            self._set_aside(piece.seq, events_in(groups), error)
            self._insert(
                [Piece(piece.seq, 0, [], piece.ends_record, piece.start)], carry if last else None
            )
        return added

    def _probe(self) -> None:
        """A write of the writer's own: raises when the store takes none."""
        self.store.set_meta("writer_probe", str(time.time()))

    def _set_aside(self, seq: int, events: list[StoredEvent], error: Exception) -> None:
        """Keep events the store refused, durably, before the log lets go of them."""
        path = self.wal.directory / UNSTORED
        with path.open("ab") as out:
            for event in events:
                line = {
                    "seq": seq,
                    "error": f"{type(error).__name__}: {error}",
                    "event": msgspec.structs.asdict(event),
                }
                out.write(msgspec.json.encode(line) + b"\n")
                log.error("event %s set aside in %s: %s", event.uuid, path, error)
            out.flush()
            os.fsync(out.fileno())
        self.stats.unstored += len(events)

    def _read(self, piece: Piece) -> list[EventColumns]:
        if piece.groups is not None:
            return piece.groups
        return self._judged(self._log.read(piece.seq), piece.start, piece.size)

    def _judged(self, payload: bytes, start: int, size: int) -> list[EventColumns]:
        """A log record's events from `start` on, `size` of them, judged and laid out in
        columns as capture logs them. Only those: the halves of a split record are each
        judged, and counted, once. (An older version's log holds its events judged but
        not laid out, or neither.)"""
        kind = record_kind(payload)
        if kind == "columns":
            return slice_groups(decode_columns(payload), start, size)
        if kind == "logged":
            events = self.judge(decode_logged(payload)[start : start + size])
        else:
            events = decode_stored(payload)[start : start + size]
        return columns_of(events, self.store.property_types)

    def _insert(self, pieces: list[Piece], carry: Piece | None = None) -> int:
        """Insert the pieces; the log position becomes the last record stored whole."""
        whole = [piece.seq for piece in pieces if piece.ends_record]
        position = max(whole, default=self.stats.stored_seq)
        split = [piece.seq for piece in pieces if not piece.ends_record]
        if carry is not None:
            split.append(carry.seq)
        if split:
            position = min(position, min(split) - 1)
        position = max(position, self.stats.stored_seq)
        count = sum(piece.size for piece in pieces)
        added = self.store.insert_columns(
            groups_of(pieces, self._read), position, self.quarantine, self.forward
        )
        self.stats.inserted += added
        self.stats.duplicates += count - added
        self.stats.batches += 1
        self.stats.stored_seq = position
        return added
