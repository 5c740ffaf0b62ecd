"""The rejects file: every refused line with its reason and peer, one JSON object per line.

Writes go through one background task with aiofiles, so the event loop never blocks on the disk.
The file is rotated once (`PATH.1`) at `max_bytes`; if the disk cannot keep up, entries beyond
the queue bound are counted as `dropped` (the line itself is still counted in STATS).
"""
from __future__ import annotations

import asyncio
import os

import aiofiles
import msgspec
import structlog

log = structlog.get_logger()

_QUEUE_BOUND = 50_000


class RejectEntry(msgspec.Struct, frozen=True):
    ts: float
    reason: str
    peer: str
    line: str


_encoder = msgspec.json.Encoder()


def plan_writes(size: int, entries: list[bytes], max_bytes: int) -> list[tuple[bool, list[bytes]]]:
    """Cut queued entries into appends that keep the file within `max_bytes`: each item is
    (rotate to PATH.1 first, entries to append). `size` is the file's current size."""
    plan: list[tuple[bool, list[bytes]]] = []
    rotate, run = False, []
    for entry in entries:
        if size + len(entry) > max_bytes and size > 0:
            if run:
                plan.append((rotate, run))
            rotate, run, size = True, [], 0
        run.append(entry)
        size += len(entry)
    if run:
        plan.append((rotate, run))
    return plan


class RejectsFigures(msgspec.Struct):
    """STATS `rejects_file`."""

    written: int
    dropped: int


class RejectsFile:
    def figures(self) -> RejectsFigures:
        return RejectsFigures(self.written, self.dropped)

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.written = 0
        self.dropped = 0
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._writer())

    def write(self, ts: float, reason: str, peer: str, line: bytes) -> None:
        if len(self._pending) >= _QUEUE_BOUND:
            self.dropped += 1
            return
        # One entry never outgrows the file's bound: its line excerpt is cut to half of it.
        text = line[: self.max_bytes // 2].decode("utf-8", "replace")
        entry = RejectEntry(ts, reason, peer, text)
        self._pending.append(_encoder.encode(entry) + b"\n")
        self._wake.set()

    async def _writer(self) -> None:
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            chunk, self._pending = self._pending, []
            for rotate, pieces in plan_writes(size, chunk, self.max_bytes):
                data = b"".join(pieces)
                try:
                    if rotate:
                        await asyncio.to_thread(os.replace, self.path, self.path + ".1")
                        size = 0
                    async with aiofiles.open(self.path, "ab") as f:
                        await f.write(data)
                    size += len(data)
                    self.written += len(pieces)
                except OSError as exc:
                    self.dropped += len(pieces)
                    log.error("rejects_write_failed", path=self.path, error=str(exc))
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
