"""The write-ahead log: group commit, replay after a crash, a torn tail cut off."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from eventplan.store.wal import WriteAheadLog


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
