"""Optional raw archive and write-ahead log: every accepted line appended to `current.log`, rotated
into numbered segments, so a position (segment number, byte offset) names a line across rotations.

Rotation is decided by the pure `should_rotate` (size and age, time handed in); closed segments
are gzipped in a thread and the oldest deleted past `keep_segments`, all off the ingest path.
One frame is one archive line: LF and NUL inside a frame (octet-counted frames may carry them)
become a space, so `logtallyd analyze` over the archive sees the same number of lines.
"""
from __future__ import annotations

import asyncio
import gzip
import os
import re
import shutil
import time
from pathlib import Path

import aiofiles
import msgspec
import structlog

from logtallyd.persist.config import ArchiveConfig
from logtallyd.persist.snapshot import fsync_directory

log = structlog.get_logger()

CURRENT = "current.log"
SEGMENT_RE = re.compile(r"^segment-(\d{8}T\d{6}\.\d{6}Z)-(\d{4,})\.log(\.gz)?$")


class ArchivePosition(msgspec.Struct, frozen=True, array_like=True):
    """A place in the archive: byte `offset` into segment number `generation` (`current.log` is the
    newest number). Recorded in the snapshot: the counted state holds every line before it."""

    directory: str
    generation: int
    offset: int


class ArchiveFigures(msgspec.Struct):
    """STATS `archive`."""

    lines_written: int
    bytes_written: int
    write_errors: int
    fsyncs: int
    replayed_lines: int


def should_rotate(size: int, opened_ts: float, now: float, config: ArchiveConfig, incoming: int = 0) -> bool:
    """Rotate before writing `incoming` bytes to a segment of `size` bytes opened at `opened_ts`? Pure.

    An empty segment is never rotated, so one batch larger than `max_bytes` still lands whole.
    """
    if size <= 0:
        return False
    if size + incoming > config.max_bytes:
        return True
    return config.max_age_s > 0 and now - opened_ts >= config.max_age_s


def archive_line(frame: bytes) -> bytes:
    """One frame as one newline-terminated archive line (embedded LF/NUL -> space, a trailing CR kept)."""
    # LF and NUL are the two non-transparent terminators of RFC 6587 §3.4.2; neither may survive
    # inside a line, or re-reading the archive would split the frame in two.
    return frame.replace(b"\n", b" ").replace(b"\0", b" ") + b"\n"


def archive_lines(frames: list[bytes]) -> bytes:
    """`archive_line` over a batch, with a fast path for the usual batch without LF or NUL."""
    data = b"\n".join([*frames, b""])  # the empty tail gives the final newline without a copy
    if data.count(b"\n") == len(frames) and b"\0" not in data:
        return data
    return b"".join(map(archive_line, frames))


def segment_name(closed_ts: float, seq: int) -> str:
    """`segment-<UTC closing time, µs>-<generation>.log`: names sort in closing order."""
    whole = int(closed_ts)
    micros = int(round((closed_ts - whole) * 1_000_000))
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    return f"segment-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(whole))}.{micros:06d}Z-{seq:04d}.log"


def closed_segments(directory: Path) -> list[Path]:
    """Closed segments (plain or gzipped), oldest first."""
    found = [p for p in directory.iterdir() if SEGMENT_RE.match(p.name)]
    # A kill between compression's rename and its unlink leaves a segment twice, plain and
    # gzipped: the plain file is the one kept (housekeeping compresses it again), or a replay
    # would count its lines twice.
    plain = {p.name for p in found if p.name.endswith(".log")}
    found = [p for p in found if not (p.name.endswith(".gz") and p.name[:-3] in plain)]
    return sorted(found, key=lambda p: (SEGMENT_RE.match(p.name).group(1), generation_of(p)))  # type: ignore[union-attr]


def generation_of(path: Path) -> int:
    """The generation number in a closed segment's name."""
    match = SEGMENT_RE.match(path.name)
    assert match is not None
    return int(match.group(2))


def current_generation(segments: list[Path]) -> int:
    """`current.log`'s number: one past the newest closed segment, so numbers never repeat. Pure."""
    return max(map(generation_of, segments), default=-1) + 1


def expired_segments(segments: list[Path], keep: int) -> list[Path]:
    """The oldest segments beyond the newest `keep` (0 = keep all). Pure."""
    if keep <= 0 or len(segments) <= keep:
        return []
    return segments[: len(segments) - keep]


def last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def compress_segment(path: Path) -> Path:
    """gzip `path` to `path.gz` (via a temp name, so a crash never leaves a half .gz) and delete it."""
    target = path.with_name(path.name + ".gz")
    tmp = path.with_name("." + path.name + ".gz.tmp")
    with open(path, "rb") as src, gzip.open(tmp, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)
    os.replace(tmp, target)
    path.unlink()
    return target


class Archive:
    """The I/O shell: appends batches in order, rotates, syncs per the `fsync` policy, and runs
    compression/retention in the background."""

    def __init__(self, config: ArchiveConfig) -> None:
        self.config = config
        self.directory = Path(config.directory)
        self.file: aiofiles.threadpool.binary.AsyncBufferedIOBase | None = None
        self.generation = 0  # current.log's number, set by `open`
        self.size = 0
        self.opened_ts = 0.0
        self.lock = asyncio.Lock()  # batches are written whole and in call order
        self.housekeeping: asyncio.Task[None] | None = None
        self.lines_written = 0
        self.bytes_written = 0
        self.write_errors = 0
        self.fsyncs = 0
        self.replayed_lines = 0  # counted at start from the archive (see `logtallyd.persist.recovery`)
        self.unsynced = False  # bytes written since the last fsync

    @property
    def position(self) -> ArchivePosition:
        """The end of what has been written."""
        return ArchivePosition(str(self.directory), self.generation, self.size)

    def figures(self) -> ArchiveFigures:
        return ArchiveFigures(self.lines_written, self.bytes_written, self.write_errors, self.fsyncs,
                              self.replayed_lines)

    async def open(self, now: float | None = None, housekeep: bool = True) -> None:
        """Create the directory and open (append to) `current.log`.

        A `current.log` left by an earlier run is continued; its age counts from this open. A last
        line a kill cut short gets its newline, so the next line does not glue onto it. Segments
        left uncompressed by a crash are compressed and retention applied, unless `housekeep` is
        False (a replay must read the segments first; call `schedule_housekeeping` after it).
        """
        now = time.time() if now is None else now
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        self.generation = current_generation(await asyncio.to_thread(closed_segments, self.directory))
        self.file = await aiofiles.open(self.directory / CURRENT, "ab")
        self.size = await self.file.tell()
        if self.size > 0 and await asyncio.to_thread(last_byte, self.directory / CURRENT) != b"\n":
            log.warning("archive_torn_line_terminated", path=str(self.directory / CURRENT), offset=self.size)
            await self.file.write(b"\n")
            await self.file.flush()
            self.size += 1
        self.opened_ts = now
        if housekeep:
            self.schedule_housekeeping()

    async def append(self, frames: list[bytes], now: float | None = None) -> ArchivePosition | None:
        """Archive `frames` (one line each): the position after them, or None (logged and counted)
        when the disk refuses."""
        if not frames:
            return self.position
        data = archive_lines(frames)
        now = time.time() if now is None else now
        async with self.lock:
            try:
                if self.file is None:
                    await self.open(now)
                if should_rotate(self.size, self.opened_ts, now, self.config, len(data)):
                    await self.rotate_locked(now)
                assert self.file is not None
                await self.file.write(data)
                await self.file.flush()  # into the kernel: a crash of the daemon loses nothing written
            except OSError as exc:
                self.write_errors += 1
                log.error("archive_write_failed", directory=str(self.directory), lines=len(frames), error=str(exc))
                await self._cut_back()
                return None
            self.size += len(data)
            self.lines_written += len(frames)
            self.bytes_written += len(data)
            self.unsynced = True
            if self.config.fsync == "batch":
                await self.sync_checked()
            return self.position

    async def _cut_back(self) -> None:
        """After a failed write, drop whatever part of it reached the file: positions are byte
        offsets, and a torn batch left in place would shift every later one (a replay would then
        read lines twice). If even that fails, reopen at the next append (from the file's size)."""
        if self.file is None:
            return
        try:
            await self.file.truncate(self.size)
        except OSError:
            file, self.file = self.file, None
            try:
                await file.close()
            except OSError:
                pass

    async def sync(self) -> None:
        """fsync what has been written (the periodic job of `fsync = "interval"`, and before a snapshot)."""
        async with self.lock:
            await self.sync_checked()

    async def sync_checked(self) -> None:
        try:
            await self.sync_locked()
        except OSError as exc:  # the lines are still in the kernel: a crash of the daemon loses none
            self.write_errors += 1
            log.error("archive_fsync_failed", directory=str(self.directory), error=str(exc))

    async def sync_locked(self) -> None:
        if self.file is not None and self.unsynced:
            await asyncio.to_thread(os.fsync, self.file.fileno())
            self.unsynced = False
            self.fsyncs += 1

    async def tick(self, now: float | None = None) -> None:
        """Rotate an aged segment even when no lines arrive; call it periodically (e.g. each minute)."""
        now = time.time() if now is None else now
        async with self.lock:
            if self.file is not None and should_rotate(self.size, self.opened_ts, now, self.config):
                await self.rotate_locked(now)

    async def rotate(self, now: float | None = None) -> None:
        """Close the current segment now (if it holds anything), e.g. on operator request."""
        now = time.time() if now is None else now
        async with self.lock:
            if self.file is not None and self.size > 0:
                await self.rotate_locked(now)

    async def rotate_locked(self, now: float) -> None:
        assert self.file is not None
        if self.config.fsync != "never":
            await self.sync_locked()  # a segment is closed only once it is on disk
        file, self.file = self.file, None  # if the rename fails, the next append reopens current.log
        await file.close()
        current = self.directory / CURRENT
        target = self.directory / segment_name(now, self.generation)
        await asyncio.to_thread(os.rename, current, target)
        self.generation += 1
        self.file = await aiofiles.open(current, "ab")
        if self.config.fsync != "never":
            await asyncio.to_thread(fsync_directory, self.directory)  # the rename survives a power cut
        self.size = 0
        self.opened_ts = now
        log.info("archive_rotated", segment=target.name)
        self.schedule_housekeeping()

    def schedule_housekeeping(self) -> None:
        previous = self.housekeeping
        self.housekeeping = asyncio.get_running_loop().create_task(self.housekeep(previous))

    async def housekeep(self, previous: asyncio.Task[None] | None) -> None:
        """Compress plain segments, then delete the oldest; one pass at a time, in order."""
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            segments = await asyncio.to_thread(closed_segments, self.directory)
            if self.config.gzip:
                for path in segments:
                    if not path.name.endswith(".gz"):
                        await asyncio.to_thread(compress_segment, path)
                segments = await asyncio.to_thread(closed_segments, self.directory)
            for path in expired_segments(segments, self.config.keep_segments):
                await asyncio.to_thread(path.unlink, True)
                log.info("archive_segment_deleted", segment=path.name)
        except OSError as exc:
            log.error("archive_housekeeping_failed", directory=str(self.directory), error=str(exc))

    async def close(self) -> None:
        """Flush, sync (unless `fsync = "never"`) and close `current.log` (not rotated), and wait for
        background compression."""
        async with self.lock:
            if self.file is not None:
                if self.config.fsync != "never":
                    await self.sync_locked()
                await self.file.close()
                self.file = None
        if self.housekeeping is not None:
            await asyncio.gather(self.housekeeping, return_exceptions=True)
