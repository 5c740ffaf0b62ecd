"""Snapshots: atomic write, checked read, corrupt or incompatible files set aside with a warning."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from logtallyd.persist import snapshot
from logtallyd.persist.snapshot import MAGIC, Snapshot, load_snapshot, read_snapshot, write_snapshot

PAYLOAD = b"\x00state:" + bytes(range(256)) * 4
NOW = 1_764_018_000.0  # 2025-11-24T21:00:00Z
STAMP = "20251124T210000Z"


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.snap"
    write_snapshot(path, PAYLOAD, version=3, created_ts=1234.5)
    assert read_snapshot(path, 3) == PAYLOAD
    assert load_snapshot(path, 3) == Snapshot(MAGIC, 3, 1234.5, snapshot.zlib.crc32(PAYLOAD), PAYLOAD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap"]  # no temp file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_overwrite_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "state.snap"
    write_snapshot(path, b"x" * 10_000, version=1)
    write_snapshot(path, b"short", version=1)
    assert read_snapshot(path, 1) == b"short"


def test_missing_is_none_and_silent(tmp_path: Path) -> None:
    with capture_logs() as logs:
        assert read_snapshot(tmp_path / "absent.snap", 1) is None
    assert logs == []
    assert list(tmp_path.iterdir()) == []


def assert_set_aside(tmp_path: Path, raw: bytes, version: int, reason: str) -> None:
    path = tmp_path / "state.snap"
    path.write_bytes(raw)
    with capture_logs() as logs:
        assert load_snapshot(path, version, now=NOW) is None
    moved = tmp_path / f"state.snap.corrupt-{STAMP}"
    assert not path.exists()
    assert moved.read_bytes() == raw
    assert logs == [
        {"event": "snapshot_discarded", "log_level": "warning", "path": str(path), "reason": reason, "moved_to": str(moved)}
    ]


def good(version: int = 1) -> bytes:
    """A valid encoded envelope, as write_snapshot makes it."""
    return snapshot.ENCODER.encode(Snapshot(MAGIC, version, NOW, snapshot.zlib.crc32(PAYLOAD), PAYLOAD))


def test_truncated_is_corrupt(tmp_path: Path) -> None:
    raw = good()
    assert_set_aside(tmp_path, raw[: len(raw) // 2], 1, "corrupt")


def test_garbage_is_corrupt(tmp_path: Path) -> None:
    assert_set_aside(tmp_path, b"not a snapshot at all\n", 1, "corrupt")


def test_empty_file_is_corrupt(tmp_path: Path) -> None:
    assert_set_aside(tmp_path, b"", 1, "corrupt")


def test_other_msgpack_shape_is_corrupt(tmp_path: Path) -> None:
    assert_set_aside(tmp_path, msgspec.msgpack.encode({"totals": 5}), 1, "corrupt")


def test_wrong_magic_is_corrupt(tmp_path: Path) -> None:
    raw = snapshot.ENCODER.encode(Snapshot("other-tool", 1, NOW, snapshot.zlib.crc32(PAYLOAD), PAYLOAD))
    assert_set_aside(tmp_path, raw, 1, "corrupt")


def test_other_version_is_incompatible(tmp_path: Path) -> None:
    assert_set_aside(tmp_path, good(version=1), 2, "incompatible_version_1")


def test_flipped_payload_byte_fails_checksum(tmp_path: Path) -> None:
    raw = bytearray(good())
    at = bytes(raw).index(b"state:") + 2
    raw[at] ^= 0x01
    assert_set_aside(tmp_path, bytes(raw), 1, "checksum_mismatch")


def test_set_aside_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "state.snap"
    for content in (b"first", b"second"):
        path.write_bytes(content)
        with capture_logs():
            assert load_snapshot(path, 1, now=NOW) is None
    assert (tmp_path / f"state.snap.corrupt-{STAMP}").read_bytes() == b"first"
    assert (tmp_path / f"state.snap.corrupt-{STAMP}-1").read_bytes() == b"second"


def test_file_then_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(snapshot.os, "fsync", spy)
    write_snapshot(tmp_path / "state.snap", PAYLOAD, version=1)
    assert synced == ["file", "dir"]


def test_failed_write_keeps_old_snapshot_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.snap"
    write_snapshot(path, b"old", version=1)

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot.os, "fsync", broken)
    with pytest.raises(OSError, match="No space"):
        write_snapshot(path, b"new", version=1)
    monkeypatch.undo()
    assert read_snapshot(path, 1) == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap"]


def test_unreadable_path_is_none(tmp_path: Path) -> None:
    directory = tmp_path / "state.snap"
    directory.mkdir()  # reading a directory fails with IsADirectoryError, not FileNotFoundError
    with capture_logs() as logs:
        assert read_snapshot(directory, 1) is None
    assert [entry["event"] for entry in logs] == ["snapshot_unreadable"]
    assert directory.is_dir()


def test_load_removes_temp_files_of_a_killed_writer(tmp_path: Path) -> None:
    path = tmp_path / "state.snap"
    write_snapshot(path, b"kept", version=1)
    (tmp_path / ".state.snap.tmp-999-0").write_bytes(b"half a snapshot")
    (tmp_path / "other.file").write_bytes(b"not ours")
    assert read_snapshot(path, 1) == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.file", "state.snap"]


def test_concurrent_writers_never_share_a_temp_file(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "state.snap"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(write_snapshot, path, p, 1) for p in payloads]:
            future.result()  # a shared temp name shows up here as a failed rename or a torn file
    assert read_snapshot(path, 1) in payloads  # one whole payload, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap"]
