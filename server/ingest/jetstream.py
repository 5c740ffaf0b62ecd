"""`[sources.nats]`: a durable JetStream pull consumer whose messages are parsed like TCP lines.

The I/O shell around `logtallyd.ingest.sequences.SequenceBook`: it fetches only while the pipeline
takes lines (a saturated pipeline stops the pulls, JetStream keeps the rest), hands lines to the
pipeline as the listener `nats`, and acknowledges a message only once the snapshot counting it is
written (`acknowledge`), so a `kill -9` neither loses nor double-counts a message.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.connect import connect
from logtallyd.ingest.config import NatsSourceConfig
from logtallyd.ingest.framing import FrameError
from logtallyd.ingest.pipeline import Pipeline
from logtallyd.ingest.sequences import NatsPosition, SequenceBook, split_lines
from logtallyd.ratelog import RateLimitedLog, RateLimiter

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg

__all__ = ["NatsSource", "NatsSourceFigures"]

log = structlog.get_logger()
LISTENER = "nats"
PEER = "nats"


class NatsSourceFigures(msgspec.Struct):
    """STATS `nats_source`."""

    connected: bool
    messages: int  # deliveries taken, duplicates included
    lines: int  # lines handed to the pipeline or rejected
    duplicates: int  # deliveries of a message already counted, skipped
    applied_seq: int  # the highest stream sequence counted
    floor_seq: int  # every message of the consumer up to this sequence is counted
    above_floor: int  # messages counted above `floor_seq` (a gap below them awaits a redelivery)
    acked_seq: int  # the highest sequence acknowledged
    unacked: int
    pull_pauses: int  # pulls held back because the pipeline was saturated
    errors: int


class NatsSource:
    def __init__(self, config: NatsSourceConfig, cluster: ClusterConfig, node: str, pipeline: Pipeline,
                 max_line_bytes: int, sample_bytes: int, restored: NatsPosition | None) -> None:
        self.config = config
        self.cluster = cluster
        self.node = node
        self.pipeline = pipeline
        self.max_line_bytes = max_line_bytes
        self.sample_bytes = sample_bytes
        self.book = SequenceBook(config.stream, restored)
        self.durable = config.durable or f"logtallyd-{node}"
        self.client: Client | None = None
        self._unacked: list[tuple[int, Msg]] = []
        self._js: Any = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._log = RateLimitedLog(RateLimiter(1, 60.0))
        self.messages = self.lines = self.pull_pauses = self.errors = 0

    def figures(self) -> NatsSourceFigures:
        book = self.book
        return NatsSourceFigures(self.client is not None and self.client.is_connected, self.messages, self.lines,
                                 book.duplicates, book.applied, book.floor, book.counted_above_floor,
                                 book.acked, len(self._unacked), self.pull_pauses,
                                 self.errors)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def position(self) -> NatsPosition:
        """What the totals hold now; take it in the same step as the totals a snapshot stores."""
        return self.book.position(self.pipeline.merged_batch)

    async def acknowledge(self, position: NatsPosition) -> None:
        """`position` is durable: acknowledge each delivery it covers, one by one (the policy is
        `explicit`: a cumulative ack would also ack a message the client lost before we saw it)."""
        durable = self.book.made_durable(position)
        keep: list[tuple[int, Msg]] = []
        done: list[tuple[int, Msg]] = []
        for item in self._unacked:
            (done if durable.covers(item[0]) else keep).append(item)
        self._unacked = keep
        for seq, message in done:
            try:
                await message.ack()
                self.book.acknowledged(seq)
            except Exception as exc:  # not acknowledged: redelivered later, and skipped as counted
                self.errors += 1
                self._log.log("warning", "nats_ack_failed", key="ack", error=repr(exc))
        if done and self.book.counted_above_floor and self._js is not None:
            await self._learn_ack_floor()

    async def _learn_ack_floor(self) -> None:
        """The server's ack floor bounds the per-sequence record (gaps of other subjects included)."""
        try:
            info = await self._js.consumer_info(self.config.stream, self.durable)
            floor = info.ack_floor.stream_seq if info.ack_floor is not None else None
        except Exception as exc:  # the record just stays larger until the next try
            self._log.log("warning", "nats_ack_floor_failed", key="floor", error=repr(exc))
            return
        if floor:
            self.book.ack_floor(floor)

    async def stop(self) -> None:
        """Stop pulling; what was taken is in the pipeline (drain it, snapshot, `acknowledge`, `close`)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def close(self) -> None:
        if self.client is not None:
            try:
                await self.client.drain()
            except Exception:  # the connection may be gone already
                pass

    # -- the pull loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        import nats.errors

        self.client = await connect(self.cluster, self.node)
        sub = None
        while not self._stopping.is_set():
            try:
                if sub is None:
                    sub = await self._subscribe()
                    log.info("nats_source_ready", stream=self.config.stream, durable=self.durable,
                             subjects=self.config.subjects, resume_after=self.book.applied)
                if self.pipeline.paused or len(self._unacked) >= self.config.max_ack_pending:
                    self.pull_pauses += 1
                    await asyncio.sleep(0.05)
                    continue
                room = min(self.config.fetch_batch, self.config.max_ack_pending - len(self._unacked))
                messages = await sub.fetch(room, timeout=1.0)
            except nats.errors.TimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down or the stream gone: keep trying, never crash
                self.errors += 1
                self._log.log("warning", "nats_source_error", key="pull", error=repr(exc))
                await asyncio.sleep(self.cluster.reconnect_wait_s)
                continue
            for message in messages:
                await self._take(message)

    async def _subscribe(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import NotFoundError

        assert self.client is not None
        js = self.client.jetstream()
        try:
            await js.stream_info(self.config.stream)
        except NotFoundError:
            await js.add_stream(name=self.config.stream, subjects=list(self.config.subjects))
        subjects = self.config.subjects
        # One subject: this node's share of a wider stream; several: the whole stream (nats-server
        # 2.9 filters a consumer by one subject only).
        wanted = ConsumerConfig(
            durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.config.ack_wait_s, max_ack_pending=self.config.max_ack_pending,
            filter_subject=subjects[0] if len(subjects) == 1 else None)
        try:
            current = (await js.consumer_info(self.config.stream, self.durable)).config
        except NotFoundError:
            current = None
        if current is not None and _differs(current, wanted):
            # Ack policy and filter cannot be changed in place; a new consumer resumes after what
            # the snapshot counted (redeliveries of counted messages are skipped by the book).
            await js.delete_consumer(self.config.stream, self.durable)
            current = None
            log.info("nats_consumer_recreated", durable=self.durable, resume_after=self.book.floor)
            if self.book.floor > 0:
                wanted.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                wanted.opt_start_seq = self.book.floor + 1
        if current is None:
            await js.add_consumer(self.config.stream, wanted)
        self._js = js
        return await js.pull_subscribe_bind(self.durable, self.config.stream)

    async def _take(self, message: Msg) -> None:
        seq = message.metadata.sequence.stream
        self.messages += 1
        self._unacked.append((seq, message))
        if not self.book.accept(seq):
            return
        lines = split_lines(message.data)
        self.lines += len(lines)
        good = [line for line in lines if len(line) <= self.max_line_bytes]
        if len(good) < len(lines):
            # Rejections merge at once, batches later: wait until the batches before this message
            # are counted, so the position a snapshot records never lags the totals it holds.
            await self.pipeline.drain()
            self.pipeline.reject_frames([FrameError("oversize", len(line), line[:self.sample_bytes])
                                         for line in lines if len(line) > self.max_line_bytes], PEER)
        if good:
            self.pipeline.submit(good, PEER, LISTENER)
        self.book.submitted(seq, self.pipeline.last_batch())


def _differs(current: Any, wanted: Any) -> bool:
    return (current.ack_policy != wanted.ack_policy or current.filter_subject != wanted.filter_subject
            or current.max_ack_pending != wanted.max_ack_pending
            or abs((current.ack_wait or 0) - wanted.ack_wait) > 1e-3)
