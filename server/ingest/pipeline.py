"""The middle of the flow, live: frames from the listeners to batches, the pool, and `Stats`.

Listeners hand frames to `Pipeline.submit`; the batcher cuts them by size and a short deadline,
the pool parses them (`logtallyd.pool.worker.process_batch`), and results merge in stream order. Past
`max_in_flight` batches or `max_buffered_bytes` every ingest transport pauses: overload slows TCP
senders down, it does not drop lines. With the archive on, a batch is archived as it is cut and
counted only once archived; `archived` is the archive position the counted totals cover.
"""
from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Callable, Iterable

import msgspec
import structlog

from logtallyd.stats.aggregate import Partial
from logtallyd.ingest.config import PipelineConfig
from logtallyd.persist.archive import Archive, ArchivePosition
from logtallyd.ingest.framing import FrameError
from logtallyd.ratelog import RateLimitedLog, RateLimiter
from logtallyd.records import ListenerRejectReason
from logtallyd.persist.rejects import RejectsFile
from logtallyd.pool.scheduler import INGEST, PoolScheduler
from logtallyd.stats.windows import Stats
from logtallyd.pool.worker import BatchResult, WorkerOptions, decode_result, process_batch
from logtallyd.ingest.batching import Batch, Batcher
from logtallyd.ingest.peers import Peers, host_of
from logtallyd.ingest.pressure import InFlight, Pressure, Transition
from logtallyd.ingest.reorder import Reorder

log = structlog.get_logger()


class PipelineFigures(msgspec.Struct):
    """STATS `pipeline`."""

    in_flight: int
    queued_batches: int
    buffered_bytes: int
    paused: bool
    pauses: int
    batches: int


class Pipeline:
    """The asyncio shell around the batching, in-flight, reorder and pressure cores: it owns the
    deadline timer, the tasks that wait on the pool, and the merge of each result in order."""

    def __init__(
        self,
        config: PipelineConfig,
        options: WorkerOptions,
        scheduler: PoolScheduler,
        stats: Stats,
        rejects: RejectsFile | None,
        *,
        pause: Callable[[], None],
        resume: Callable[[], None],
        archive: Archive | None = None,
        on_tail: Callable[[list[dict[str, Any]]], None] | None = None,
        on_result: Callable[[int, BatchResult | None, float], None] | None = None,
        clock: Callable[[], float] = time.time,
        log_limiter: RateLimiter | None = None,
        peers: Peers | None = None,
    ) -> None:
        self.peers = peers  # the sender table: its rejects and the host fields its records claim
        self.options = options
        self.scheduler = scheduler
        self.stats = stats
        self.rejects = rejects
        self.archive = archive
        self.on_tail = on_tail
        # Called with (batch number, result or None if the batch failed, now) in stream order.
        self.on_result = on_result
        self._pause = pause
        self._resume = resume
        self.clock = clock
        self.config = config
        self.batcher = Batcher(config.batch_lines, config.batch_bytes, config.batch_delay_ms / 1000)
        self.flight: InFlight[Batch] = InFlight(config.max_in_flight)
        self.reorder: Reorder[tuple[Batch, Partial, BatchResult | None]] = Reorder()
        self.pressure = Pressure(config.max_buffered_bytes, config.max_in_flight)
        self.buffered_bytes = 0
        self.batches = 0
        self.batch_seconds_sum = 0.0
        self.batch_errors = 0
        self.reject_log = RateLimitedLog(log_limiter or RateLimiter())  # `line_rejected` per reason
        self.tail_skipped = 0
        self._refused: Partial | None = None  # `reject_line`s not merged yet
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None  # the deadline `_timer` was set for
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Released by the reorder buffer, not merged yet: one task merges at a time, since the
        # archive write between two merges awaits and the next release must wait its turn.
        self._to_merge: collections.deque[tuple[Batch, Partial, BatchResult | None]] = collections.deque()
        self._merging = False
        # Archive writes of cut batches, by batch number: started in stream order, so the archive
        # holds lines in the order they are merged, and awaited before each batch is counted.
        self._archiving: dict[int, asyncio.Task[ArchivePosition | None]] = {}
        self.archived: ArchivePosition | None = archive.position if archive is not None else None
        self.merged_batch = -1  # batches merge in number order: every one up to this is counted

    def figures(self) -> PipelineFigures:
        return PipelineFigures(self.in_flight, self.queued_batches, self.buffered_bytes, self.paused,
                               self.pauses, self.batches)

    def reconfigure(self, config: PipelineConfig, options: WorkerOptions | None = None) -> None:
        """New limits and parse options (SIGHUP): the open batch and the batches in flight keep going."""
        self.config = config
        if options is not None:
            self.options = options
        self.batcher.batch_lines = config.batch_lines
        self.batcher.batch_bytes = config.batch_bytes
        self.batcher.batch_delay_s = config.batch_delay_ms / 1000
        self.flight.limit = config.max_in_flight
        self.pressure.reconfigure(config.max_buffered_bytes, config.max_in_flight)
        self._start()
        self._arm_timer()
        self._check_pressure()

    @property
    def in_flight(self) -> int:
        return self.flight.in_flight

    @property
    def paused(self) -> bool:
        return self.pressure.paused

    @property
    def pauses(self) -> int:
        return self.pressure.pauses

    @property
    def queued_batches(self) -> int:
        return len(self.flight.ready) + (1 if self.batcher.open is not None else 0)

    def last_batch(self) -> int:
        """The number of the batch that holds the last frames submitted (open or already cut)."""
        next_seq = self.batcher.next_seq
        return next_seq if self.batcher.open is not None else next_seq - 1

    # -- input -------------------------------------------------------------------------------

    def submit(self, frames: list[bytes], peer: str, listener: str = "tcp") -> None:
        if not frames:
            return
        self.buffered_bytes += sum(map(len, frames))
        self._idle.clear()
        self._send(self.batcher.add(frames, peer, listener, self.clock()))

    def reject_frames(self, errors: list[FrameError], peer: str) -> None:
        """Frames the framer refused (oversize, truncated): counted here, they never reach a worker."""
        partial = Partial()
        now = self.clock()
        for error in errors:
            partial.reject(error.reason, error.size)
            self._rejected(now, error.reason, peer, error.sample)
        self.stats.merge(partial, now)

    def reject_line(self, reason: ListenerRejectReason, size: int, sample: bytes, peer: str) -> None:
        """A line a listener refused (a datagram past its peer's rate): received, and rejected.

        Such lines come in floods, so those of one loop iteration are merged into the windows once.
        """
        if self._refused is None:
            self._refused = Partial()
            asyncio.get_running_loop().call_soon(self._merge_refused)
        self._refused.reject(reason, size)
        self._rejected(self.clock(), reason, peer, sample)

    def _merge_refused(self) -> None:
        partial, self._refused = self._refused, None
        if partial is not None:
            self.stats.merge(partial, self.clock())

    def _rejected(self, now: float, reason: str, peer: str, line: bytes) -> None:
        if self.peers is not None:
            self.peers.rejected(host_of(peer), reason)
        if self.rejects is not None:
            self.rejects.write(now, reason, peer, line)
        self.reject_log.log("warning", "line_rejected", key=reason, reason=reason, peer=peer,
                            line=line[:120].decode("utf-8", "replace"))

    # -- batches -----------------------------------------------------------------------------

    def _send(self, batches: list[Batch]) -> None:
        """Archive cut batches, queue them for the pool, start what the in-flight bound allows,
        re-arm the timer."""
        if self.archive is not None and batches:
            loop = asyncio.get_running_loop()
            for batch in batches:  # tasks take the archive's lock in the order they are made
                frames = _archived_frames(batch)
                if frames:  # none: the archive position this batch leaves is the one before it
                    self._archiving[batch.seq] = loop.create_task(self.archive.append(frames))
        self.flight.queue(batches)
        self._start()
        self._arm_timer()
        self._check_pressure()

    def _arm_timer(self) -> None:
        deadline = self.batcher.deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._deadline)

    def _deadline(self) -> None:
        # The loop's timer is this shell's clock: when it fires, the open batch's time is up.
        self._timer = self._timer_at = None
        self._send(self.batcher.flush())

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        for batch in self.flight.start():
            task = loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: Batch) -> None:
        started = time.monotonic()
        try:
            data = await self.scheduler.run(
                INGEST, process_batch, batch.frames, batch.arrival, self.options, batch.seq,
                batch.listeners if self.options.listener_parse else None,
                _senders(batch.peers),
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
        self._to_merge.extend(self.reorder.put(batch.seq, (batch, partial, result)))
        await self._merge_released()

    async def _merge_released(self) -> None:
        """Merge finished batches in stream order: the windows' `late`, the archive's line order
        and the detectors then see a stream as it was sent, as `analyze` sees a file."""
        if self._merging:
            return  # the task already merging picks these up when their turn comes
        self._merging = True
        try:
            while self._to_merge:
                batch, partial, result = self._to_merge.popleft()
                archiving = self._archiving.pop(batch.seq, None)
                if archiving is not None:
                    # Archived before counted: a slow disk slows ingest, it loses nothing.
                    position = await archiving
                    if position is not None:
                        self.archived = position
                now = self.clock()
                self.stats.merge(partial, now)
                self.merged_batch = batch.seq
                if self.on_result is not None:
                    self.on_result(batch.seq, result, now)
                if result is not None:
                    for index, reason in result.rejected:
                        self._rejected(now, reason, batch.peer_of(index), batch.frames[index])
                    if result.claims and self.peers is not None:
                        for host, names in result.claims.items():
                            self.peers.claimed(host, names)
                    if result.tail and self.on_tail is not None:
                        self.on_tail(result.tail)
                    self.tail_skipped += result.tail_skipped
                self.flight.finish()
                self.buffered_bytes -= batch.nbytes
                self._start()
                self._check_pressure()
        finally:
            self._merging = False
        if self.flight.idle and self.batcher.open is None:
            self._idle.set()

    # -- backpressure ------------------------------------------------------------------------

    def _check_pressure(self) -> None:
        match self.pressure.update(self.buffered_bytes, len(self.flight.ready)):
            case Transition.PAUSE:
                self._pause()
            case Transition.RESUME:
                self._resume()
            case None:
                pass

    # -- shutdown ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Send the open batch and wait until every batch has been merged."""
        self._merge_refused()
        self._send(self.batcher.flush())
        await self._idle.wait()

    async def replay(self, chunks: Iterable[list[bytes]]) -> int:
        """Count archived frames again, through the same batches, pool and merge as live ones, but
        not archived twice; before any listener opens. Returns the number of frames."""
        archive, self.archive = self.archive, None
        iterator = iter(chunks)
        replayed = 0
        try:
            while (chunk := await asyncio.to_thread(next, iterator, None)) is not None:
                self.submit(chunk, "archive", "archive")
                replayed += len(chunk)
                await self.drain()  # one chunk in memory at a time
        finally:
            self.archive = archive
        if archive is not None:
            self.archived = archive.position
        return replayed


def _archived_frames(batch: Batch) -> list[bytes]:
    """A batch's frames but those of the `nats` source: its stream keeps them until the snapshot
    that counts them is written, so an archive replay after a crash would count them twice."""
    if all(listener != "nats" for listener, _ in batch.listeners):
        return batch.frames
    kept: list[bytes] = []
    start = 0
    for listener, count in batch.listeners:
        if listener != "nats":
            kept.extend(batch.frames[start:start + count])
        start += count
    return kept


def _senders(peers: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A batch's peer runs by sender address; archive replays carry none ("")."""
    return [("" if peer == "archive" else host_of(peer), count) for peer, count in peers]
