"""The archive read back as a write-ahead log: which files and offsets a snapshot position names
(a table over rotations, deletions and resets), and the frames read from them."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from logtallyd.persist.archive import CURRENT, ArchivePosition, archive_lines, closed_segments
from logtallyd.persist.config import state_directory
from logtallyd.persist.recovery import Plan, plan, read_frames

D = "/a"
SEGS = [("segment-20250101T000000.000000Z-0004.log.gz", 4), ("segment-20250101T000100.000000Z-0005.log", 5)]


@pytest.mark.parametrize(
    ("position", "segments", "current", "expected"),
    [
        # position in current.log, nothing rotated since
        (ArchivePosition(D, 6, 100), SEGS, (6, 250), Plan([(CURRENT, 100)])),
        # current.log at the snapshot has since been rotated into segment 5
        (ArchivePosition(D, 5, 70), SEGS, (6, 250), Plan([(SEGS[1][0], 70), (CURRENT, 0)])),
        (ArchivePosition(D, 4, 0), SEGS, (6, 0), Plan([(SEGS[0][0], 0), (SEGS[1][0], 0), (CURRENT, 0)])),
        # segment 3 was deleted by retention: replay what is left, and say so
        (ArchivePosition(D, 3, 9), SEGS, (6, 5), Plan([(SEGS[0][0], 0), (SEGS[1][0], 0), (CURRENT, 0)], "segment_deleted")),
        # fewer bytes than the snapshot counted (power loss with fsync = "never"): nothing to replay
        (ArchivePosition(D, 6, 300), SEGS, (6, 250), Plan([], "archive_shorter")),
        (ArchivePosition(D, 9, 0), SEGS, (6, 250), Plan([], "archive_reset")),
        (ArchivePosition("/elsewhere", 6, 0), SEGS, (6, 250), Plan([], "other_directory")),
        # the snapshot is at the very end: current.log from there, which is nothing
        (ArchivePosition(D, 6, 250), SEGS, (6, 250), Plan([(CURRENT, 250)])),
    ],
)
def test_plan(position: ArchivePosition, segments: list[tuple[str, int]], current: tuple[int, int],
              expected: Plan) -> None:
    assert plan(position, D, segments, current) == expected


def test_read_frames_across_gzip_and_plain_up_to_the_end(tmp_path: Path) -> None:
    frames = [f"line {i}".encode() for i in range(10)]
    (tmp_path / "segment-20250101T000000.000000Z-0000.log.gz").write_bytes(gzip.compress(archive_lines(frames[:4])))
    (tmp_path / CURRENT).write_bytes(archive_lines(frames[4:]) + b"written after the archive was opened\n")
    end = len(archive_lines(frames[4:]))
    files = [("segment-20250101T000000.000000Z-0000.log.gz", len(b"line 0\n")), (CURRENT, 0)]
    chunks = list(read_frames(tmp_path, files, end, chunk_lines=4))
    assert [len(c) for c in chunks] == [4, 4, 1]
    assert [f for c in chunks for f in c] == frames[1:]


def test_a_damaged_segment_is_a_gap_not_a_failed_start(tmp_path: Path) -> None:
    """A corrupt .gz (bad CRC) yields what it held before the damage, and the files after it are
    still read: replay never raises (a start that fails would recount on every restart)."""
    frames = [f"line {i}".encode() for i in range(6)]
    bad = bytearray(gzip.compress(archive_lines(frames[:3])))
    bad[-8] ^= 0xFF  # the CRC32 in the trailer
    damaged = "segment-20250101T000000.000000Z-0000.log.gz"
    (tmp_path / damaged).write_bytes(bytes(bad))
    (tmp_path / CURRENT).write_bytes(archive_lines(frames[3:]))
    read = [f for c in read_frames(tmp_path, [(damaged, 0), (CURRENT, 0)], len(archive_lines(frames[3:])), 100) for f in c]
    assert read[-3:] == frames[3:] and set(read) <= set(frames)


def test_a_segment_left_plain_and_gzipped_by_a_kill_is_read_once(tmp_path: Path) -> None:
    """A kill between compression's rename and its unlink leaves both files: one is listed."""
    name = "segment-20250101T000000.000000Z-0003.log"
    (tmp_path / name).write_bytes(archive_lines([b"a", b"b"]))
    (tmp_path / (name + ".gz")).write_bytes(gzip.compress(archive_lines([b"a", b"b"])))
    (tmp_path / "segment-20250101T000100.000000Z-0004.log.gz").write_bytes(gzip.compress(archive_lines([b"c"])))
    assert [p.name for p in closed_segments(tmp_path)] == [name, "segment-20250101T000100.000000Z-0004.log.gz"]


@pytest.mark.parametrize(
    ("configured", "env", "expected"),
    [
        ("/srv/state", {"STATE_DIRECTORY": "/var/lib/logtally"}, "/srv/state"),
        ("", {"XDG_STATE_HOME": "/x"}, ""),
        ("auto", {"STATE_DIRECTORY": "/var/lib/logtally:/var/lib/other", "XDG_STATE_HOME": "/x"}, "/var/lib/logtally"),
        ("auto", {"XDG_STATE_HOME": "/x", "HOME": "/home/u"}, "/x/logtally"),
        ("auto", {"HOME": "/home/u"}, "/home/u/.local/state/logtally"),
        ("auto", {}, "logtally-state"),
    ],
)
def test_state_directory(configured: str, env: dict[str, str], expected: str) -> None:
    assert state_directory(configured, env) == expected
