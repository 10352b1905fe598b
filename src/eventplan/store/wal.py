"""The write-ahead log: capture answers 200 only once a request's events are here.

Records are appended to segment files and fsync'd in groups: while one fsync runs,
the requests that arrive meanwhile queue up and share the next one (group commit),
so durability costs one fsync per burst, not per request. Each record carries a
sequence number and a CRC. The background writer tells the log which sequence
numbers the store holds, and whole segments below that are deleted; a segment whose
every record is stored is closed and deleted too, since records hold events as
capture received them, before the plan's privacy policy.

A group is acknowledged only once every byte of it is written and fsync'd. A write
that fails (a full disk writes part of its bytes, then refuses; an I/O error; a
failed fsync) is cut off again, so the next group follows the last good record;
when even that fails the segment is sealed and the next group starts a new one.
So a torn record only ever ends a segment, and no acknowledged record follows one
in the same segment. Before writing, the log checks the disk's free space against
a reserve and refuses cleanly (`LogFull`) rather than run the disk to zero.

On open, each segment is read through: a torn record at its end (never
acknowledged, by the above) is trimmed and logged; damage with good records after
it (the disk's doing, not ours) is moved aside whole into `damaged/`, logged and
counted, and the records after it are kept.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

HEADER: Final = struct.Struct("<IQI")  # payload length, sequence number, crc32
SEQ: Final = struct.Struct("<Q")
SEGMENT_BYTES: Final = 64 * 1024 * 1024  # start a new segment past this size
RESERVE_BYTES: Final = 64 * 1024 * 1024  # free space below which appends are refused
DAMAGED: Final = "damaged"  # the folder damaged parts of segments are moved to
# How far past the last good sequence number a record found after damage may be.
RESYNC_SEQS: Final = 1 << 16

log = logging.getLogger("eventplan.wal")


class LogFull(OSError):
    """Refused before writing: the disk's free space is below the reserve."""


@dataclass
class Recovery:
    """What opening the log found: torn tails trimmed, damaged parts moved aside."""

    trimmed_bytes: int = 0
    damaged_parts: int = 0


class WriteAheadLog:
    def __init__(
        self,
        directory: Path,
        segment_bytes: int = SEGMENT_BYTES,
        reserve_bytes: int = RESERVE_BYTES,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.reserve_bytes = reserve_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._segments: list[tuple[Path, int]] = []  # (path, last sequence in it)
        self.last_seq = 0
        self.recovery = Recovery()
        self._recover_segments()
        self._file = self._new_segment()
        self._end = 0  # where the current segment's last good record ends
        self._sealed = False  # a failed write could not be cut off: start a new segment
        self.last_error: str | None = None  # the last append's failure, until one succeeds
        self._pending: list[tuple[bytes, asyncio.Future[int]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wal-fsync")
        self.fsyncs = 0

    def _recover_segments(self) -> None:
        # In the order of their records, not of their names: an older version reused
        # the numbers of deleted segments, so a newer segment could sort first.
        recovered = sorted(
            (self._recover(path), path) for path in sorted(self.directory.glob("wal-*.log"))
        )
        for (_first, last), path in recovered:
            self._segments.append((path, last))
            self.last_seq = max(self.last_seq, last)

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
        """Append and fsync several records at once; returns the first one's sequence.
        Raises OSError, having written nothing that will be read back, when the group
        is not wholly on disk."""
        with self._lock:
            try:
                if self._sealed or self._end >= self.segment_bytes:
                    self._roll()
                first = self.last_seq + 1
                chunks = []
                for offset, payload in enumerate(payloads):
                    chunks.append(HEADER.pack(len(payload), first + offset, zlib.crc32(payload)))
                    chunks.append(payload)
                data = b"".join(chunks)
                self._check_room(len(data))
                self._write_durably(data)
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            self.last_error = None
            self.fsyncs += 1
            self._end += len(data)
            self.last_seq = first + len(payloads) - 1
            path, _ = self._segments[-1]
            self._segments[-1] = (path, self.last_seq)
            return first

    def _roll(self) -> None:
        """Go on in a new segment. When none can be made (a full disk) a full one grows
        on; a sealed one cannot, and the append fails."""
        try:
            handle = self._new_segment()
        except OSError:
            if self._sealed:
                raise
            return
        self._file.close()
        self._file, self._end, self._sealed = handle, 0, False

    def free_bytes(self) -> int:
        """Free space on the log's disk, for an unprivileged writer."""
        stats = os.statvfs(self.directory)
        return stats.f_bavail * stats.f_frsize

    def below_reserve(self, free: int) -> bool:
        """Whether `free` bytes (from `free_bytes`) are under the reserve kept free."""
        return self.reserve_bytes > 0 and free < self.reserve_bytes

    def _check_room(self, size: int) -> None:
        if self.reserve_bytes <= 0:
            return
        free = self.free_bytes()
        if free - size < self.reserve_bytes:
            raise LogFull(
                errno.ENOSPC,
                f"the log's disk has {free:,} bytes free; {self.reserve_bytes:,} are kept "
                "in reserve",
            )

    def _write_durably(self, data: bytes) -> None:
        """Every byte written and fsync'd, or the segment cut back to its last good
        record and the error raised. The segment is sealed when the cut fails, or
        when fsync failed: after that the page cache cannot be trusted either."""
        fd = self._file.fileno()
        view = memoryview(data)
        fsyncing = False
        try:
            written = 0
            while written < len(data):
                count = os.write(fd, view[written:])
                if count <= 0:
                    raise OSError(errno.ENOSPC, "the disk took none of the bytes written")
                written += count
            fsyncing = True
            os.fdatasync(fd)
        except OSError as exc:
            log.error("write-ahead log append failed, not acknowledged: %s", exc)
            self._sealed = fsyncing
            try:
                os.ftruncate(fd, self._end)
                os.fsync(fd)
            except OSError as undo:
                log.error("cannot cut the failed append off (%s); sealing the segment", undo)
                self._sealed = True
            raise

    # -- reading and trimming ----------------------------------------------------

    def replay(self, after_seq: int) -> Iterator[tuple[int, bytes]]:
        """Every durable record with a sequence number above `after_seq`, in order."""
        with self._lock:
            segments = [path for path, last in self._segments if last > after_seq]
        for path in segments:
            for seq, payload in _records(path):
                if seq > after_seq:
                    yield seq, payload

    def continue_after(self, seq: int) -> None:
        """Number the next record past `seq` (the store's position): a log whose every
        segment was deleted once stored starts empty, and must not reuse numbers the
        store has recorded."""
        with self._lock:
            if seq > self.last_seq:
                self.last_seq = seq
                path, _ = self._segments[-1]
                self._segments[-1] = (path, seq)

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
        """The store holds everything up to `seq`: delete the segments it covers. The
        current one too, once all of it is stored (a new one is started), so the log
        holds only what the store does not yet."""
        with self._lock:
            if self._end > 0 and self._segments[-1][1] <= seq:
                self._roll()  # on a full disk it may not: the segment is kept
            keep = []
            for index, (path, last) in enumerate(self._segments):
                is_current = index == len(self._segments) - 1
                if last <= seq and not is_current:
                    path.unlink(missing_ok=True)
                else:
                    keep.append((path, last))
            self._segments = keep

    def damaged_parts(self) -> int:
        """Parts of segments moved aside as damaged, ever (until someone removes them)."""
        folder = self.directory / DAMAGED
        return len(list(folder.glob("*.bin"))) if folder.is_dir() else 0

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._file.close()

    # -- internals ---------------------------------------------------------------

    def _new_segment(self) -> IO[bytes]:
        """A new segment, numbered past every one there is (numbers are never reused)."""
        names = (p.stem.removeprefix("wal-") for p in self.directory.glob("wal-*.log"))
        numbers = [int(name) for name in names if name.isascii() and name.isdigit()]
        path = self.directory / f"wal-{max(numbers, default=-1) + 1:08d}.log"
        handle = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the log
        try:
            fsync_directory(self.directory)
        except OSError:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        self._segments.append((path, self.last_seq))
        return handle

    def _recover(self, path: Path) -> tuple[int, int]:
        """The first and last good sequence numbers in a segment (0, 0 when it holds
        none). A torn tail is trimmed; damage with good records after it is moved aside
        whole and the segment rewritten without it."""
        data = path.read_bytes()
        records, damaged, tail = _survey(data, 0)
        first, last = (records[0][2], records[-1][2]) if records else (0, 0)
        if damaged:
            folder = self.directory / DAMAGED
            folder.mkdir(exist_ok=True)
            for start, end in damaged:
                aside = folder / f"{path.stem}-{start:012d}.bin"
                _write_file(aside, data[start:end])
                log.error(
                    "log segment %s: %d damaged bytes at offset %d moved aside to %s; "
                    "the records after them are kept",
                    path.name,
                    end - start,
                    start,
                    aside,
                )
            fsync_directory(folder)
            self.recovery.damaged_parts += len(damaged)
            rewritten = path.with_suffix(".repaired")
            _write_file(rewritten, b"".join(data[start:end] for start, end, _ in records))
            rewritten.replace(path)
            fsync_directory(self.directory)
        elif tail is not None:
            log.warning(
                "log segment %s: trimmed a torn record of %d bytes at its end "
                "(written when a write failed or the process died; never acknowledged)",
                path.name,
                len(data) - tail,
            )
            self.recovery.trimmed_bytes += len(data) - tail
            with open(path, "r+b") as handle:
                handle.truncate(tail)
                os.fsync(handle.fileno())
        return first, last


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


def _record_at(data: bytes, position: int) -> tuple[int, int] | None:
    """(sequence, end) of a whole record with a good CRC at `position`, else None."""
    if position + HEADER.size > len(data):
        return None
    length, seq, crc = HEADER.unpack_from(data, position)
    start = position + HEADER.size
    if start + length > len(data) or zlib.crc32(data[start : start + length]) != crc:
        return None
    return seq, start + length


def _next_record(data: bytes, position: int, after_seq: int) -> int | None:
    """Where the first good record past damage at `position` starts: one whose
    sequence number follows `after_seq` closely and whose CRC holds. Found by its
    sequence number's high bytes, which are shared by every nearby number."""
    found: int | None = None
    for low in (after_seq + 1, after_seq + RESYNC_SEQS):
        high = SEQ.pack(low)[2:]
        at = data.find(high, position + 6)
        while at != -1 and (found is None or at - 6 < found):
            candidate = at - 6  # the seq's two low bytes and the length before them
            if candidate >= position:
                record = _record_at(data, candidate)
                if record is not None and after_seq < record[0] <= after_seq + RESYNC_SEQS:
                    found = candidate if found is None else min(found, candidate)
                    break
            at = data.find(high, at + 1)
    return found


def _survey(
    data: bytes, after_seq: int
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]], int | None]:
    """A segment's good records (start, end, seq), its damaged parts (start, end)
    with good records after them, and where a torn tail starts (None: no tail)."""
    records: list[tuple[int, int, int]] = []
    damaged: list[tuple[int, int]] = []
    position = 0
    last = after_seq
    while position < len(data):
        record = _record_at(data, position)
        if record is not None and record[0] > last:
            records.append((position, record[1], record[0]))
            last, position = record[0], record[1]
            continue
        resume = _next_record(data, position + 1, last)
        if resume is None:
            return records, damaged, position
        damaged.append((position, resume))
        position = resume
    return records, damaged, None


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


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
