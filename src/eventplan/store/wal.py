"""The write-ahead log: capture answers 200 only once a request's events are here.

Records are appended to segment files and fsync'd in groups: while one fsync runs,
the requests that arrive meanwhile queue up and share the next one (group commit),
so durability costs one fsync per burst, not per request. Each record carries a
sequence number and a CRC; a torn record at the end of the last segment (the
process died mid-write, before acknowledging it) is cut off when the log opens.
The background writer tells the log which sequence numbers the store holds, and
whole segments below that are deleted.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Final

HEADER: Final = struct.Struct("<IQI")  # payload length, sequence number, crc32
SEGMENT_BYTES: Final = 64 * 1024 * 1024  # start a new segment past this size


class WriteAheadLog:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._segments: list[tuple[Path, int]] = []  # (path, last sequence in it)
        self.last_seq = 0
        for path in sorted(directory.glob("wal-*.log")):
            last = self._recover(path)
            self._segments.append((path, last))
            self.last_seq = max(self.last_seq, last)
        self._file = self._new_segment()
        self._pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-fsync")
        self.fsyncs = 0

    # -- writing -----------------------------------------------------------------

    async def append(self, payload: bytes) -> int:
        """Make `payload` durable; returns its sequence number once fsync'd."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._pending.append((payload, future))
        if not self._flushing:
            self._flushing = True
            self._flusher = loop.create_task(self._flush_pending())
        return await future

    async def _flush_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                group, self._pending = self._pending, []
                try:
                    first = await loop.run_in_executor(
                        self._executor, self.write_group, [payload for payload, _ in group]
                    )
                except OSError as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for offset, (_, future) in enumerate(group):
                    if not future.done():
                        future.set_result(first + offset)
        finally:
            self._flushing = False

    def write_group(self, payloads: list[bytes]) -> int:
        """Append and fsync several records at once; returns the first one's sequence."""
        with self._lock:
            first = self.last_seq + 1
            chunks = []
            for offset, payload in enumerate(payloads):
                chunks.append(HEADER.pack(len(payload), first + offset, zlib.crc32(payload)))
                chunks.append(payload)
            self._file.write(b"".join(chunks))
            self._file.flush()
            os.fdatasync(self._file.fileno())
            self.fsyncs += 1
            self.last_seq = first + len(payloads) - 1
            path, _ = self._segments[-1]
            self._segments[-1] = (path, self.last_seq)
            if self._file.tell() >= self.segment_bytes:
                self._file.close()
                self._file = self._new_segment()
            return first

    # -- reading and trimming ----------------------------------------------------

    def replay(self, after_seq: int) -> Iterator[tuple[int, bytes]]:
        """Every durable record with a sequence number above `after_seq`, in order."""
        with self._lock:
            segments = [path for path, last in self._segments if last > after_seq]
        for path in segments:
            for seq, payload in _records(path):
                if seq > after_seq:
                    yield seq, payload

    def reader(self) -> LogReader:
        return LogReader(self)

    def segment_of(self, seq: int) -> Path:
        """The segment that holds record `seq`."""
        with self._lock:
            for path, last in self._segments:
                if last >= seq:
                    return path
        raise LookupError(f"no log segment holds record {seq}")

    def release_through(self, seq: int) -> None:
        """The store holds everything up to `seq`: delete the segments it covers."""
        with self._lock:
            keep = []
            for index, (path, last) in enumerate(self._segments):
                is_current = index == len(self._segments) - 1
                if last <= seq and not is_current:
                    path.unlink(missing_ok=True)
                else:
                    keep.append((path, last))
            self._segments = keep

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._file.close()

    # -- internals ---------------------------------------------------------------

    def _new_segment(self) -> IO[bytes]:
        number = len(list(self.directory.glob("wal-*.log")))
        existing = {p.name for p in self.directory.glob("wal-*.log")}
        while f"wal-{number:08d}.log" in existing:
            number += 1
        path = self.directory / f"wal-{number:08d}.log"
        handle = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the log
        fsync_directory(self.directory)
        self._segments.append((path, self.last_seq))
        return handle

    def _recover(self, path: Path) -> int:
        """The last good sequence in a segment; a torn tail is truncated away."""
        last = 0
        good_end = 0
        for seq, _payload, end in _scan(path):
            last, good_end = seq, end
        if path.stat().st_size != good_end:
            with open(path, "r+b") as handle:
                handle.truncate(good_end)
                os.fsync(handle.fileno())
        return last


class LogReader:
    """Reads durable records back by sequence number, going forward from where the
    last read stopped, so a run of records costs one pass over the file (mostly from
    the page cache). Reading the last record again is free."""

    def __init__(self, wal: WriteAheadLog) -> None:
        self._wal = wal
        self._handle: IO[bytes] | None = None
        self._last: tuple[int, bytes] = (0, b"")

    def read(self, seq: int) -> bytes:
        if self._last[0] == seq:
            return self._last[1]
        for _attempt in range(3):  # this segment, then the one that holds it, from its start
            if self._handle is None:
                self._handle = open(self._wal.segment_of(seq), "rb")  # noqa: SIM115
            while header := self._handle.read(HEADER.size):
                if len(header) < HEADER.size:
                    break
                length, found, crc = HEADER.unpack(header)
                if found > seq:
                    break
                payload = self._handle.read(length)
                if found == seq:
                    if len(payload) != length or zlib.crc32(payload) != crc:
                        raise OSError(f"log record {seq} is damaged")
                    self._last = (seq, payload)
                    return payload
            self.close()
        raise LookupError(f"log record {seq} was not found")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _scan(path: Path) -> Iterator[tuple[int, bytes, int]]:
    data = path.read_bytes()
    position = 0
    while position + HEADER.size <= len(data):
        length, seq, crc = HEADER.unpack_from(data, position)
        start = position + HEADER.size
        payload = data[start : start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        position = start + length
        yield seq, payload, position


def _records(path: Path) -> Iterator[tuple[int, bytes]]:
    for seq, payload, _ in _scan(path):
        yield seq, payload


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
