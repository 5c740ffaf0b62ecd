"""Durable state snapshots: an atomic write and a checked read of one file in the state directory.

The server encodes its state (totals, windows, sketches, detector state) to bytes; this module
wraps them in a small versioned envelope, writes it crash-safely (temp file, fsync, rename,
fsync of the directory) and, on read, sets aside anything corrupt or of another version so the
daemon still starts. Both calls block: run them with `asyncio.to_thread`.
"""
from __future__ import annotations

import itertools
import os
import time
import zlib
from pathlib import Path

import msgspec
import structlog

log = structlog.get_logger()

MAGIC = "logtally-snapshot"


class Snapshot(msgspec.Struct, frozen=True, array_like=True):
    """The envelope on disk (msgpack). `crc32` guards the payload against torn or flipped bytes."""

    magic: str
    version: int
    created_ts: float
    crc32: int
    payload: bytes


ENCODER = msgspec.msgpack.Encoder()
DECODER = msgspec.msgpack.Decoder(Snapshot)
TMP_SEQ = itertools.count()  # two writes in flight (periodic and shutdown) never share a temp file


def temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def write_snapshot(path: str | os.PathLike[str], data: bytes, version: int, created_ts: float | None = None) -> None:
    """Atomically replace `path` with an envelope holding `data`: readers see the old or the new file."""
    path = Path(path)
    envelope = Snapshot(MAGIC, version, time.time() if created_ts is None else created_ts, zlib.crc32(data), data)
    encoded = ENCODER.encode(envelope)
    # Same directory as the target: rename(2) is atomic only within one filesystem.
    tmp = path.with_name(f"{temp_prefix(path)}{os.getpid()}-{next(TMP_SEQ)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(encoded)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)  # ...and the rename itself survives a power cut


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_snapshot(path: str | os.PathLike[str], expected_version: int, now: float | None = None) -> Snapshot | None:
    """The checked envelope at `path`; None when absent, or when corrupt/incompatible (then set aside).

    Call it at start: it also removes temp files a killed writer left behind.
    """
    path = Path(path)
    remove_stale_temps(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("snapshot_unreadable", path=str(path), error=str(exc))
        return None
    reason, snapshot = check(raw, expected_version)
    if snapshot is not None:
        return snapshot
    moved = set_aside(path, time.time() if now is None else now)
    log.warning("snapshot_discarded", path=str(path), reason=reason, moved_to=moved and str(moved))
    return None


def read_snapshot(path: str | os.PathLike[str], expected_version: int) -> bytes | None:
    """The payload stored at `path` by `write_snapshot`, or None (absent, corrupt or incompatible)."""
    snapshot = load_snapshot(path, expected_version)
    return None if snapshot is None else snapshot.payload


def remove_stale_temps(path: Path) -> None:
    try:
        for stale in path.parent.glob(temp_prefix(path) + "*"):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("snapshot_temp_cleanup_failed", path=str(path), error=str(exc))


def check(raw: bytes, expected_version: int) -> tuple[str, Snapshot | None]:
    """Decode and verify an envelope: `("ok", snapshot)` or `(reason, None)`. Pure."""
    try:
        snapshot = DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return "corrupt", None
    if snapshot.magic != MAGIC:
        return "corrupt", None
    if snapshot.version != expected_version:
        return f"incompatible_version_{snapshot.version}", None
    if zlib.crc32(snapshot.payload) != snapshot.crc32:
        return "checksum_mismatch", None
    return "ok", snapshot


def set_aside(path: Path, now: float) -> Path | None:
    """Rename `path` to `path.corrupt-<ts>` (never overwriting an earlier one); None if it fails."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    try:
        os.rename(path, target)
    except OSError as exc:
        log.error("snapshot_set_aside_failed", path=str(path), error=str(exc))
        return None
    return target
