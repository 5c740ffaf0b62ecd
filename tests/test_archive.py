"""Raw archive: lines in order, size/time rotation, gzip of closed segments, retention."""
from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import pytest

from logtallyd.persist.archive import (
    CURRENT,
    Archive,
    ArchiveConfig,
    archive_line,
    archive_lines,
    closed_segments,
    expired_segments,
    segment_name,
    should_rotate,
)

T0 = 1_764_018_000.0  # 2025-11-24T21:00:00Z


def config(tmp_path: Path, **overrides: object) -> ArchiveConfig:
    return msgspec.convert({"enabled": True, "directory": str(tmp_path / "archive"), **overrides}, ArchiveConfig)


def read_all(directory: Path) -> bytes:
    """Everything archived, oldest first: closed segments (gunzipped) then current.log."""
    out = b""
    for path in closed_segments(directory):
        out += gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return out + (directory / CURRENT).read_bytes()


@pytest.mark.parametrize(
    ("size", "opened", "now", "incoming", "expected"),
    [
        (0, T0, T0 + 10_000, 500, False),  # empty segment: never, even if old or the batch is big
        (1, T0, T0, 99, False),  # exactly max_bytes after the write: fits
        (1, T0, T0, 100, True),  # one byte over
        (50, T0, T0 + 59.999, 0, False),
        (50, T0, T0 + 60, 0, True),  # exactly max_age_s
    ],
)
def test_should_rotate(size: int, opened: float, now: float, incoming: int, expected: bool, tmp_path: Path) -> None:
    cfg = config(tmp_path, max_bytes=100, max_age_s=60)
    assert should_rotate(size, opened, now, cfg, incoming) is expected


def test_age_zero_disables_time_rotation(tmp_path: Path) -> None:
    assert should_rotate(10, T0, T0 + 1e9, config(tmp_path, max_age_s=0)) is False


def test_archive_line_keeps_one_frame_one_line() -> None:
    assert archive_line(b"plain") == b"plain\n"
    assert archive_line(b"java.lang.Error: x\n\tat Foo\n\tat Bar") == b"java.lang.Error: x \tat Foo \tat Bar\n"
    assert archive_line(b"nul\0inside") == b"nul inside\n"
    assert archive_line(b"") == b"\n"


def test_segment_names_sort_in_closing_order() -> None:
    assert segment_name(T0 + 0.25, 0) == "segment-20251124T210000.250000Z-0000.log"
    names = [segment_name(T0 + dt, seq) for dt, seq in [(0, 0), (0, 1), (0.000001, 0), (1, 0), (86400 * 400, 0)]]
    assert sorted(names) == names


def test_expired_segments() -> None:
    paths = [Path(f"s{i}") for i in range(5)]
    assert expired_segments(paths, 2) == paths[:3]
    assert expired_segments(paths, 5) == []
    assert expired_segments(paths, 0) == []


def test_config_rejects_unknown_and_bad_values() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_bytez"):
        msgspec.convert({"max_bytez": 1}, ArchiveConfig)
    with pytest.raises(msgspec.ValidationError, match="max_bytes"):
        msgspec.convert({"max_bytes": 0}, ArchiveConfig)
    assert ArchiveConfig().enabled is False


async def test_lines_are_appended_in_order(tmp_path: Path) -> None:
    archive = Archive(config(tmp_path))
    assert await archive.append([b"one", b"two\nhalf"], now=T0)
    assert await archive.append([b"three"], now=T0 + 1)
    await archive.close()
    assert (tmp_path / "archive" / CURRENT).read_bytes() == b"one\ntwo half\nthree\n"
    assert (archive.lines_written, archive.bytes_written) == (3, 4 + 9 + 6)


async def test_size_rotation_keeps_segments_bounded_and_lossless(tmp_path: Path) -> None:
    cfg = config(tmp_path, max_bytes=100, gzip=True, keep_segments=0)
    archive = Archive(cfg)
    frames = [f"line {i:04d} ".encode() * 2 for i in range(60)]  # 21 bytes each with the newline
    for i in range(0, 60, 3):
        await archive.append(frames[i : i + 3], now=T0 + i)
    await archive.close()
    directory = tmp_path / "archive"
    segments = closed_segments(directory)
    assert all(p.name.endswith(".gz") for p in segments)
    assert [p.name for p in directory.glob("*.log")] == [CURRENT]  # every closed segment was gzipped
    sizes = [len(gzip.decompress(p.read_bytes())) for p in segments]
    # 63-byte batches: one per segment fits under 100, two do not.
    assert sizes == [63] * 19
    assert read_all(directory) == b"".join(archive_line(f) for f in frames)


async def test_time_rotation_on_append_and_on_tick(tmp_path: Path) -> None:
    archive = Archive(config(tmp_path, max_age_s=60, gzip=False))
    await archive.append([b"a"], now=T0)
    await archive.append([b"b"], now=T0 + 59)
    await archive.append([b"c"], now=T0 + 60)  # segment opened at T0 is 60 s old: rotate first
    await archive.tick(now=T0 + 100)  # opened at T0+60: 40 s, stays
    await archive.tick(now=T0 + 120)  # 60 s: rotates although nothing arrives
    await archive.tick(now=T0 + 500)  # empty segment: never rotated
    await archive.close()
    directory = tmp_path / "archive"
    segments = closed_segments(directory)
    assert [p.name for p in segments] == [segment_name(T0 + 60, 0), segment_name(T0 + 120, 1)]
    assert [p.read_bytes() for p in segments] == [b"a\nb\n", b"c\n"]
    assert (directory / CURRENT).read_bytes() == b""


async def test_retention_deletes_the_oldest(tmp_path: Path) -> None:
    archive = Archive(config(tmp_path, keep_segments=2, gzip=True))
    for i in range(5):
        await archive.append([f"batch {i}".encode()], now=T0 + i)
        await archive.rotate(now=T0 + i + 0.5)
    await archive.close()
    segments = closed_segments(tmp_path / "archive")
    assert [p.name for p in segments] == [segment_name(T0 + 3.5, 3) + ".gz", segment_name(T0 + 4.5, 4) + ".gz"]
    assert [gzip.decompress(p.read_bytes()) for p in segments] == [b"batch 3\n", b"batch 4\n"]


async def test_rotations_in_the_same_microsecond_get_distinct_numbered_names(tmp_path: Path) -> None:
    archive = Archive(config(tmp_path, gzip=False, keep_segments=0))
    for batch in (b"x", b"y"):
        await archive.append([batch], now=T0)
        await archive.rotate(now=T0)
    await archive.close()
    names = [p.name for p in closed_segments(tmp_path / "archive")]
    assert names == [segment_name(T0, 0), segment_name(T0, 1)]


async def test_restart_continues_current_and_finishes_crashed_housekeeping(tmp_path: Path) -> None:
    directory = tmp_path / "archive"
    directory.mkdir()
    (directory / CURRENT).write_bytes(b"before restart\n")
    leftover = directory / segment_name(T0 - 10, 0)
    leftover.write_bytes(b"closed but never gzipped\n")
    archive = Archive(config(tmp_path, max_bytes=20))
    await archive.open(now=T0)
    assert archive.size == len(b"before restart\n")
    await archive.append([b"after"], now=T0 + 1)  # 15 + 6 > 20: rotates the old content out first
    await archive.close()
    segments = closed_segments(directory)
    assert [p.name for p in segments] == [leftover.name + ".gz", segment_name(T0 + 1, 1) + ".gz"]
    assert read_all(directory) == b"closed but never gzipped\nbefore restart\nafter\n"


async def test_write_error_is_counted_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = Archive(config(tmp_path))
    await archive.open(now=T0)
    assert archive.file is not None

    async def full(data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive.file, "write", full)
    assert await archive.append([b"lost"], now=T0) is None
    assert (archive.write_errors, archive.lines_written) == (1, 0)
    await archive.close()


async def test_a_write_that_fails_half_way_leaves_no_torn_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Positions are byte offsets: the part of a failed batch that reached the file is cut off."""
    archive = Archive(config(tmp_path, gzip=False))
    assert await archive.append([b"first"], now=T0)
    assert archive.file is not None
    write = archive.file.write

    async def half(data: bytes) -> int:
        await write(data[: len(data) // 2])
        await archive.file.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive.file, "write", half)
    assert await archive.append([b"second line", b"third line"], now=T0) is None
    monkeypatch.undo()
    position = await archive.append([b"fourth"], now=T0)
    await archive.close()
    assert read_all(tmp_path / "archive") == b"first\nfourth\n"
    assert position is not None and position.offset == len(b"first\nfourth\n")


def test_batch_fast_path_equals_per_frame_rule() -> None:
    clean = [b"a", b"", b"ccc"]
    dirty = [b"a", b"b\nc", b"d\0", b"e\r"]
    for frames in (clean, dirty, [b""], [b"\n"]):
        assert archive_lines(frames) == b"".join(archive_line(f) for f in frames)


async def test_failed_rotation_keeps_archiving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import logtallyd.persist.archive as archive_module

    archive = Archive(config(tmp_path, max_bytes=10, gzip=False))
    await archive.append([b"first line"], now=T0)

    def refuse(src: object, dst: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(archive_module.os, "rename", refuse)
    assert await archive.append([b"second"], now=T0 + 1) is None
    monkeypatch.undo()
    assert await archive.append([b"third"], now=T0 + 2)  # reopened, rotated, written
    await archive.close()
    assert read_all(tmp_path / "archive") == b"first line\nthird\n"
    assert archive.write_errors == 1
