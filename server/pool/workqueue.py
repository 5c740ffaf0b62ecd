"""`analyze --nats` on the nodes: batches of files arrive through a JetStream work-queue stream,
run on the node's pool through the same `process_batch` as its own lines, and each encoded
`BatchResult` goes back on the subject the batch names. The wire Structs live here, for both ends.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.connect import connect
from logtallyd.pool.scheduler import JOB, PoolScheduler
from logtallyd.pool.worker import WorkerOptions, process_batch
from logtallyd.ratelog import RateLimitedLog, RateLimiter

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["STREAM", "SUBJECT", "WorkItem", "WorkQueueNode", "ensure_stream"]

log = structlog.get_logger()
STREAM = "LOGTALLY_ANALYZE"
SUBJECT = "logtally.analyze.work"
DURABLE = "logtally-analyze"  # one consumer shared by every node: each batch goes to one of them


class WorkItem(msgspec.Struct, frozen=True, array_like=True):
    """One batch of an `analyze` run: `process_batch(frames, arrival, options, seq)`, answered on `reply`."""

    reply: str
    seq: int
    arrival: float
    options: WorkerOptions
    frames: list[bytes]


WORK_ENCODER = msgspec.msgpack.Encoder()
WORK_DECODER = msgspec.msgpack.Decoder(WorkItem)


async def ensure_stream(js: Any, max_age_s: float) -> None:
    """The work-queue stream, created if absent (by a node or by `analyze`, whichever comes first),
    keeping untaken batches `[cluster] analyze_max_age_s`."""
    from nats.js.api import RetentionPolicy
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(name=STREAM, subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE,
                            max_age=max_age_s)


class WorkQueueNode:
    """A node's share of `analyze --nats` runs: at most `slots` batches at a time on its pool."""

    def __init__(self, cluster: ClusterConfig, node: str, scheduler: PoolScheduler, slots: int) -> None:
        self.cluster = cluster
        self.node = node
        self.scheduler = scheduler
        self.slots = max(1, slots)
        self.batches = 0
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._log = RateLimitedLog(RateLimiter(1, 60.0))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        # Batches still running are not acknowledged: JetStream gives them to another node.
        for task in list(self._running):
            task.cancel()

    async def _run(self) -> None:
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig

        client = await connect(self.cluster, f"{self.node}-analyze")
        sub = None
        try:
            while True:
                try:
                    if sub is None:
                        js = client.jetstream()
                        await ensure_stream(js, self.cluster.analyze_max_age_s)
                        await js.add_consumer(STREAM, ConsumerConfig(
                            durable_name=DURABLE, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.cluster.analyze_ack_wait_s))
                        sub = await js.pull_subscribe_bind(DURABLE, STREAM)
                        log.info("analyze_queue_ready", stream=STREAM, slots=self.slots)
                    free = self.slots - len(self._running)
                    if free <= 0:
                        await asyncio.sleep(0.02)
                        continue
                    messages = await sub.fetch(free, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS down: keep trying, the node's own ingest goes on
                    self.errors += 1
                    self._log.log("warning", "analyze_queue_error", key="pull", error=repr(exc))
                    sub = None
                    await asyncio.sleep(self.cluster.reconnect_wait_s)
                    continue
                for message in messages:
                    task = asyncio.get_running_loop().create_task(self._serve(client, message))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
        finally:
            try:
                await client.close()
            except Exception:
                pass

    async def _serve(self, client: Any, message: Msg) -> None:
        try:
            item = WORK_DECODER.decode(message.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.errors += 1
            self._log.log("warning", "analyze_item_invalid", key="decode", error=str(exc))
            await message.term()  # never valid: not redelivered
            return
        try:
            data = await self.scheduler.run(JOB, process_batch, item.frames, item.arrival, item.options, item.seq)
            await client.publish(item.reply, data, headers={"seq": str(item.seq), "node": self.node})
            await client.flush()
            await message.ack()  # after the answer is out: a node dying before it leaves the batch to another
            self.batches += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errors += 1
            self._log.log("warning", "analyze_item_failed", key="run", error=repr(exc))
            await message.nak()
