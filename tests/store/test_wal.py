"""The write-ahead log: group commit, replay after a crash, a torn tail cut off, a full
disk refused without a trace, damage moved aside."""

from __future__ import annotations

import asyncio
import errno
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from eventplan.store.wal import DAMAGED, HEADER, LogFull, Recovery, WriteAheadLog
from tests.conftest import SmallDisk


def test_concurrent_appends_share_fsyncs_and_replay_in_order(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "log")

    async def append_many() -> list[int]:
        return await asyncio.gather(*(wal.append(f"record {i}".encode()) for i in range(200)))

    seqs = asyncio.run(append_many())
    assert sorted(seqs) == list(range(1, 201))
    assert wal.fsyncs < 200  # group commit: one fsync covered many records
    wal.close()
    reopened = WriteAheadLog(tmp_path / "log")
    replayed = list(reopened.replay(after_seq=150))
    assert [seq for seq, _ in replayed] == list(range(151, 201))
    assert replayed[0][1] == b"record 150"
    reopened.close()


def test_a_torn_record_at_the_end_is_cut_off(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "log")
    wal.write_group([b"first", b"second"])
    wal.close()
    (segment,) = sorted((tmp_path / "log").glob("wal-*.log"))[-1:]
    with open(segment, "ab") as handle:
        handle.write(b"\x40\x00\x00\x00garbage-from-a-crash")
    reopened = WriteAheadLog(tmp_path / "log")
    assert reopened.last_seq == 2
    assert [payload for _, payload in reopened.replay(0)] == [b"first", b"second"]
    assert reopened.write_group([b"third"]) == 3
    reopened.close()


def test_released_segments_are_deleted(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "log", segment_bytes=64)
    for index in range(10):
        wal.write_group([b"x" * 100 + str(index).encode()])
    before = len(list((tmp_path / "log").glob("wal-*.log")))
    wal.release_through(8)
    after = len(list((tmp_path / "log").glob("wal-*.log")))
    assert after < before
    assert [seq for seq, _ in wal.replay(8)] == [9, 10]
    wal.close()


def test_the_reader_reads_records_back_across_segments_forward_and_back(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "log", segment_bytes=64)  # a new segment every record
    for index in range(1, 7):
        wal.write_group([b"record %d" % index * 10])
    assert len(list((tmp_path / "log").glob("wal-*.log"))) > 3
    reader = wal.reader()
    assert [reader.read(seq) for seq in (2, 3, 5)] == [b"record %d" % n * 10 for n in (2, 3, 5)]
    assert reader.read(5) == b"record 5" * 10  # the same one again
    assert reader.read(1) == b"record 1" * 10  # and back
    with pytest.raises(LookupError, match="record 7"):
        reader.read(7)  # never written
    reader.close()
    wal.close()


def test_a_full_disk_refuses_the_append_and_leaves_no_part_of_it(
    small_disk: Callable[[str, int], SmallDisk],
) -> None:
    disk = small_disk("log", 4)
    wal = WriteAheadLog(disk.path, reserve_bytes=0)  # no reserve: the write itself runs out
    assert wal.write_group([b"kept"]) == 1
    disk.fill(leave=64 * 1024)
    big = os.urandom(256 * 1024)  # more than is left: written in part, then ENOSPC
    with pytest.raises(OSError) as refused:
        wal.write_group([big])
    assert refused.value.errno == errno.ENOSPC
    assert wal.last_error is not None and wal.last_seq == 1
    segment = sorted(disk.path.glob("wal-*.log"))[-1]
    assert segment.stat().st_size == HEADER.size + len(b"kept")  # the part written is gone
    disk.release()
    assert wal.write_group([b"after"]) == 2  # space is back: the next append follows record 1
    assert wal.last_error is None
    wal.close()
    reopened = WriteAheadLog(disk.path, reserve_bytes=0)
    assert [payload for _, payload in reopened.replay(0)] == [b"kept", b"after"]
    assert reopened.recovery == Recovery()
    reopened.close()


def test_the_reserve_refuses_before_the_disk_is_at_zero(
    small_disk: Callable[[str, int], SmallDisk],
) -> None:
    disk = small_disk("log", 4)
    wal = WriteAheadLog(disk.path, reserve_bytes=1024 * 1024)
    disk.fill(leave=1024 * 1024 + 4096)
    with pytest.raises(LogFull, match="in reserve"):
        wal.write_group([os.urandom(16 * 1024)])
    assert disk.free() > 1024 * 1024  # nothing was written
    assert not wal.below_reserve(wal.free_bytes())
    disk.fill(leave=0)
    assert wal.below_reserve(wal.free_bytes())
    disk.release()
    assert wal.write_group([b"x"]) == 1
    wal.close()


def test_a_damaged_record_in_the_middle_is_moved_aside_and_the_records_after_it_kept(
    tmp_path: Path,
) -> None:
    wal = WriteAheadLog(tmp_path / "log")
    for index in range(1, 6):
        wal.write_group([b"record %d " % index * 20])
    wal.close()
    segment = sorted((tmp_path / "log").glob("wal-*.log"))[-1]
    data = bytearray(segment.read_bytes())
    third = data.index(b"record 3")
    data[third + 5] ^= 0xFF  # bit rot inside record 3
    segment.write_bytes(bytes(data))
    reopened = WriteAheadLog(tmp_path / "log")
    assert [seq for seq, _ in reopened.replay(0)] == [1, 2, 4, 5]
    assert reopened.recovery.damaged_parts == 1 and reopened.damaged_parts() == 1
    (aside,) = (tmp_path / "log" / DAMAGED).glob("*.bin")
    assert b"record" in aside.read_bytes() and len(aside.read_bytes()) == HEADER.size + 180
    assert reopened.write_group([b"next"]) == 6
    reopened.close()


def test_a_torn_tail_is_trimmed_not_counted_as_damage(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "log")
    wal.write_group([b"one", b"two"])
    wal.close()
    segment = sorted((tmp_path / "log").glob("wal-*.log"))[-1]
    whole = segment.read_bytes()
    with open(segment, "ab") as handle:  # a record the process died writing
        handle.write(HEADER.pack(1000, 3, 0) + b"x" * 300)
    reopened = WriteAheadLog(tmp_path / "log")
    assert reopened.recovery.trimmed_bytes == HEADER.size + 300
    assert reopened.recovery.damaged_parts == 0
    assert segment.read_bytes() == whole
    reopened.close()


def test_through_any_run_of_full_disks_every_acknowledged_record_is_read_back_in_order(
    small_disk: Callable[[str, int], SmallDisk],
) -> None:
    """No acknowledged record is lost, and none follows a torn one: 300 appends of
    random sizes into small segments while the disk fills up, is filled and is freed
    at random, the writer releasing what the store holds now and then."""
    disk = small_disk("log", 2)
    rng = random.Random(25)
    wal = WriteAheadLog(disk.path, segment_bytes=128 * 1024, reserve_bytes=0)
    acknowledged: list[tuple[int, bytes]] = []
    refused = released = 0
    for step in range(300):
        if rng.random() < 0.1:
            disk.fill(leave=rng.randrange(0, 48 * 1024))
        elif rng.random() < 0.15:
            disk.release()
        if step % 25 == 24 and acknowledged:
            released = acknowledged[-1][0]
            wal.release_through(released)
        payloads = [rng.randbytes(rng.randrange(1, 30_000)) for _ in range(rng.randrange(1, 4))]
        try:
            first = wal.write_group(payloads)
        except OSError:
            refused += 1
            continue
        acknowledged += list(zip(range(first, first + len(payloads)), payloads, strict=True))
    wal.close()
    disk.release()
    assert refused > 10 and len(acknowledged) > 100  # both happened, many times
    reopened = WriteAheadLog(disk.path, reserve_bytes=0)
    expected = [(seq, payload) for seq, payload in acknowledged if seq > released]
    assert list(reopened.replay(released)) == expected
    assert reopened.recovery.damaged_parts == 0
    reopened.close()


def test_segments_are_read_in_the_order_of_their_records_whatever_their_names(
    tmp_path: Path,
) -> None:
    """An older version reused the numbers of deleted segments, so a newer segment
    could sort before an older one: none of their records may be taken for damage."""
    folder = tmp_path / "log"
    wal = WriteAheadLog(folder, segment_bytes=64)  # a new segment every record
    for index in range(1, 7):
        wal.write_group([b"record %d " % index * 10])
    wal.release_through(2)
    wal.close()
    names = sorted(folder.glob("wal-*.log"))
    newest, oldest = names[-1], names[0]
    swap = folder / "swap"
    newest.rename(swap)
    oldest.rename(newest)
    swap.rename(oldest)  # the newest records now sit in the lowest-numbered file
    reopened = WriteAheadLog(folder, segment_bytes=64)
    assert [seq for seq, _ in reopened.replay(2)] == [3, 4, 5, 6]
    assert reopened.recovery == Recovery()
    assert reopened.write_group([b"next"]) == 7
    numbers = sorted(int(p.stem.removeprefix("wal-")) for p in folder.glob("wal-*.log"))
    assert numbers[-1] > int(names[-1].stem.removeprefix("wal-"))  # never a number reused
    reopened.close()


def test_a_segment_wholly_stored_is_deleted_and_numbering_continues_after_the_store(
    tmp_path: Path,
) -> None:
    """The log holds events as received (before the privacy policy) only until they
    are stored: once every record is, the current segment is closed and deleted too.
    Reopened empty, the log numbers on from the store's position, never reusing one."""
    wal = WriteAheadLog(tmp_path)
    first = wal.write_group([b"secret-1", b"secret-2"])
    wal.release_through(first + 1)
    assert not any(b"secret" in p.read_bytes() for p in tmp_path.glob("wal-*.log"))
    assert list(wal.replay(0)) == []
    wal.close()
    reopened = WriteAheadLog(tmp_path)
    assert reopened.last_seq == 0  # nothing left to say where it was
    reopened.continue_after(first + 1)
    assert reopened.write_group([b"next"]) == first + 2
    assert list(reopened.replay(first + 1)) == [(first + 2, b"next")]
    reopened.close()
