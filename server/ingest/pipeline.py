"""Batching, the worker pool hand-off, backpressure and merging: the middle of the flow.

Listeners hand frames to `Pipeline.submit`; frames are cut into batches by size and by a short
deadline, parsed in the pool (`server.pool.worker.process_batch`) and the partial aggregates merged
into `Stats`. Past `max_in_flight` batches or `max_buffered_bytes`, every ingest transport is
paused until the pool catches up: overload slows TCP senders down, it does not drop lines.
"""
from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Callable

import structlog

from server.stats.aggregate import Partial
from server.ingest.config import PipelineConfig
from server.persist.archive import Archive
from server.ingest.framing import FrameError
from server.ratelog import RateLimitedLog, RateLimiter
from server.persist.rejects import RejectsFile
from server.pool.scheduler import INGEST, PoolScheduler
from server.stats.windows import Stats
from server.pool.worker import BatchResult, WorkerOptions, decode_result, process_batch

log = structlog.get_logger()


class Batch:
    __slots__ = ("frames", "peers", "listeners", "nbytes", "arrival", "seq")

    def __init__(self, arrival: float) -> None:
        self.seq = -1  # numbered when cut, in stream order
        self.frames: list[bytes] = []
        self.peers: list[tuple[str, int]] = []  # run-length: (peer, number of frames)
        self.listeners: list[tuple[str, int]] = []  # run-length: (listener name, number of frames)
        self.nbytes = 0
        self.arrival = arrival

    def add(self, frames: list[bytes], peer: str, listener: str) -> None:
        self.frames.extend(frames)
        self.nbytes += sum(map(len, frames))
        _extend_run(self.peers, peer, len(frames))
        _extend_run(self.listeners, listener, len(frames))

    def peer_of(self, index: int) -> str:
        for peer, count in self.peers:
            if index < count:
                return peer
            index -= count
        return "?"


def _extend_run(runs: list[tuple[str, int]], name: str, count: int) -> None:
    if runs and runs[-1][0] == name:
        runs[-1] = (name, runs[-1][1] + count)
    else:
        runs.append((name, count))


class Pipeline:
    def __init__(
        self,
        config: PipelineConfig,
        options: WorkerOptions,
        scheduler: PoolScheduler,
        stats: Stats,
        rejects: RejectsFile | None,
        pause: Callable[[], None],
        resume: Callable[[], None],
        clock: Callable[[], float] = time.time,
        log_limiter: RateLimiter | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.scheduler = scheduler
        self.stats = stats
        self.rejects = rejects
        self._pause = pause
        self._resume = resume
        self.clock = clock
        self.current: Batch | None = None
        self.ready: collections.deque[Batch] = collections.deque()
        self.in_flight = 0
        self.buffered_bytes = 0
        self.paused = False
        self.pauses = 0
        self.batches = 0
        self.batch_seconds_sum = 0.0
        self.batch_errors = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_tail: Callable[[list[dict[str, Any]]], None] | None = None
        # Called with (batch number, result or None if the batch failed, now) in completion order.
        self.on_result: Callable[[int, BatchResult | None, float], None] | None = None
        self.archive: Archive | None = None
        self.reject_log = RateLimitedLog(log_limiter or RateLimiter())  # `line_rejected` per reason
        self.tail_skipped = 0
        self.next_seq = 0
        # Finished batches waiting for an earlier one before they are merged.
        self._done: dict[int, tuple[Batch, Partial, BatchResult | None]] = {}
        self._next_merge = 0
        self._merging = False

    # -- input -------------------------------------------------------------------------------

    def submit(self, frames: list[bytes], peer: str, listener: str = "tcp") -> None:
        while frames:
            batch = self.current
            if batch is None:
                batch = self.current = Batch(self.clock())
                self._timer = asyncio.get_running_loop().call_later(
                    self.config.batch_delay_ms / 1000, self._cut
                )
            # One read can bring many lines: a batch never takes more than batch_lines.
            room = self.config.batch_lines - len(batch.frames)
            taken, frames = frames[:room], frames[room:]
            before = batch.nbytes
            batch.add(taken, peer, listener)
            self.buffered_bytes += batch.nbytes - before
            self._idle.clear()
            if len(batch.frames) >= self.config.batch_lines or batch.nbytes >= self.config.batch_bytes:
                self._cut()
        self._check_pressure()

    def reject_frames(self, errors: list[FrameError], peer: str) -> None:
        """Frames the framer refused (oversize, truncated): counted here, they never reach a worker."""
        partial = Partial()
        now = self.clock()
        for error in errors:
            partial.reject(error.reason, error.size)
            self._rejected(now, error.reason, peer, error.sample)
        self.stats.merge(partial, now)

    def _rejected(self, now: float, reason: str, peer: str, line: bytes) -> None:
        if self.rejects is not None:
            self.rejects.write(now, reason, peer, line)
        self.reject_log.log("warning", "line_rejected", key=reason, reason=reason, peer=peer,
                            line=line[:120].decode("utf-8", "replace"))

    # -- batches -----------------------------------------------------------------------------

    def _cut(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self.current = self.current, None
        if batch is not None and batch.frames:
            batch.seq = self.next_seq
            self.next_seq += 1
            self.ready.append(batch)
            self._pump()

    def _pump(self) -> None:
        while self.ready and self.in_flight < self.config.max_in_flight:
            batch = self.ready.popleft()
            self.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: Batch) -> None:
        started = time.monotonic()
        try:
            data = await self.scheduler.run(
                INGEST, process_batch, batch.frames, batch.arrival, self.options, batch.seq,
                batch.listeners if self.options.listener_parse else None,
            )
            result: BatchResult | None = decode_result(data)
            assert result is not None
            partial = Partial.from_bytes(result.partial)
        except Exception as exc:  # a worker crash must not lose the batch's count
            self.batch_errors += 1
            log.error("batch_failed", error=repr(exc), lines=len(batch.frames))
            partial = Partial()
            for frame in batch.frames:
                partial.reject("internal_error", len(frame))
            result = None
        self.batches += 1
        self.batch_seconds_sum += time.monotonic() - started
        self._done[batch.seq] = (batch, partial, result)
        await self._merge_in_order()

    async def _merge_in_order(self) -> None:
        """Merge finished batches in stream order: the windows' `late`, the archive's line order
        and the detectors then see a stream as it was sent, as `analyze` sees a file."""
        if self._merging:
            return  # the task already merging picks this batch up when its turn comes
        self._merging = True
        try:
            while self._next_merge in self._done:
                batch, partial, result = self._done.pop(self._next_merge)
                self._next_merge += 1
                if self.archive is not None:
                    await self.archive.append(batch.frames)  # a slow disk slows ingest, it loses nothing
                now = self.clock()
                self.stats.merge(partial, now)
                if self.on_result is not None:
                    self.on_result(batch.seq, result, now)
                if result is not None:
                    for index, reason in result.rejected:
                        self._rejected(now, reason, batch.peer_of(index), batch.frames[index])
                    if result.tail and self.on_tail is not None:
                        self.on_tail(result.tail)
                    self.tail_skipped += result.tail_skipped
                self.in_flight -= 1
                self.buffered_bytes -= batch.nbytes
                self._pump()
                self._check_pressure()
        finally:
            self._merging = False
        if self.in_flight == 0 and not self.ready and self.current is None:
            self._idle.set()

    # -- backpressure ------------------------------------------------------------------------

    def _check_pressure(self) -> None:
        limit = self.config.max_buffered_bytes
        over = self.buffered_bytes >= limit or len(self.ready) >= self.config.max_in_flight
        if over and not self.paused:
            self.paused = True
            self.pauses += 1
            self._pause()
        elif self.paused and self.buffered_bytes < limit // 2 and not self.ready:
            self.paused = False
            self._resume()

    # -- shutdown ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Send the open batch and wait until every batch has been merged."""
        self._cut()
        await self._idle.wait()

    @property
    def queued_batches(self) -> int:
        return len(self.ready) + (1 if self.current is not None else 0)
