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
        entry = RejectEntry(ts, reason, peer, line.decode("utf-8", "replace"))
        self._pending.append(_encoder.encode(entry) + b"\n")
        self._wake.set()

    async def _writer(self) -> None:
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            chunk, self._pending = self._pending, []
            if chunk:
                data = b"".join(chunk)
                if size + len(data) > self.max_bytes and size > 0:
                    await asyncio.to_thread(os.replace, self.path, self.path + ".1")
                    size = 0
                try:
                    async with aiofiles.open(self.path, "ab") as f:
                        await f.write(data)
                    size += len(data)
                    self.written += len(chunk)
                except OSError as exc:
                    self.dropped += len(chunk)
                    log.error("rejects_write_failed", path=self.path, error=str(exc))
            if self._closing and not self._pending:
                return

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
