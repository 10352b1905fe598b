"""The write-ahead log: group commit, replay after a crash, a torn tail cut off."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
