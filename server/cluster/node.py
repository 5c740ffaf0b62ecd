"""The node's NATS shell: publishes its sealed seconds to the JetStream stream and consumes every
node's into the cluster view, in its own task so that nothing here ever waits in the ingest path."""
from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any, Callable

import msgspec
import structlog

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.connect import connect
from logtallyd.cluster.outbox import Outbox
from logtallyd.cluster.view import ClusterView
from logtallyd.cluster.wire import STREAM, SUBJECT_PREFIX, decode, subject
from logtallyd.ratelog import RateLimitedLog, RateLimiter

if TYPE_CHECKING:
    from nats.aio.client import Client

    from logtallyd.stats.config import StatsConfig
    from logtallyd.stats.windows import Stats

__all__ = ["ClusterNode"]

log = structlog.get_logger()
_PUBLISH_TIMEOUT_S = 2.0


class ClusterNode:
    """One per daemon with `[cluster] nats` set: `start()` spawns the task, `close()` ends it."""

    def __init__(self, config: ClusterConfig, name: str, stats_config: StatsConfig, local: Stats,
                 clock: Callable[[], float]) -> None:
        self.config = config
        self.name = name
        self.clock = clock
        self.local = local
        self.horizon_s = max(stats_config.windows.values())
        self.outbox = Outbox(name, secrets.token_hex(4), config.buffer_seconds)
        self.view = ClusterView(stats_config, config.down_after_s, clock())
        local.tee = self.outbox.add
        self.client: Client | None = None
        self._sub: Any = None
        self._reconnects = -1  # nats-py's count when the subscription was made
        self._last_stream_seq = 0  # of the last message applied to the view
        self.applied = 0  # messages merged into the view
        self.decode_errors = 0
        self._outage = RateLimitedLog(RateLimiter(1, 60.0))
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Seal and try to send what is left (one try each), then disconnect."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self.outbox.seal(self.clock(), self.local.newest)
        client = self.client
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(self._flush(client), _PUBLISH_TIMEOUT_S * 2)
            except Exception:
                pass
        if client is not None:
            try:
                await client.close()
            except Exception:
                pass

    def figures(self) -> dict[str, Any]:
        connected = self.client is not None and self.client.is_connected
        return {"node": self.name, "connected": connected, **msgspec.to_builtins(self.outbox.figures()),
                "applied": self.applied, "decode_errors": self.decode_errors}

    # -- the task ----------------------------------------------------------------------------

    async def _run(self) -> None:
        self.client = await connect(self.config, self.name)  # retries until NATS answers
        while True:
            self.outbox.seal(self.clock(), self.local.newest)
            try:
                await self._step(self.client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away or slow: keep buffering, try again next second
                self._outage.log("warning", "cluster_publish_failed", key="publish", error=repr(exc),
                                 buffered=len(self.outbox.queue))
            await asyncio.sleep(1.0)

    async def _step(self, client: Client) -> None:
        if not client.is_connected:
            return
        js = client.jetstream(timeout=_PUBLISH_TIMEOUT_S)
        if client.stats["reconnects"] != self._reconnects:  # a new connection (or the first)
            await self._ensure_stream(js)
            if self.config.view:
                await self._subscribe(js)
            self._reconnects = client.stats["reconnects"]
        await self._flush(client)

    async def _flush(self, client: Client) -> None:
        js = client.jetstream(timeout=_PUBLISH_TIMEOUT_S)
        while (head := self.outbox.head()) is not None:
            message, data = head
            await js.publish(subject(self.name), data, headers={"Nats-Msg-Id": message.msg_id})
            self.outbox.confirmed(message)

    async def _ensure_stream(self, js: Any) -> None:
        """The stream made (or kept), with retention of the longest window."""
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        config = StreamConfig(name=STREAM, subjects=[f"{SUBJECT_PREFIX}.*"], max_age=float(self.horizon_s),
                              storage=StorageType.FILE,
                              duplicate_window=float(min(120, self.horizon_s)))
        try:
            await js.add_stream(config)
        except BadRequestError:  # made by a node with other windows: the longest wins
            info = await js.stream_info(STREAM)
            if (info.config.max_age or 0) < self.horizon_s:
                await js.update_stream(config)

    async def _subscribe(self, js: Any) -> None:
        """A fresh ordered consumer from the message after the last one applied: the whole
        stream at start, the rest of it after a reconnect."""
        from nats.js.api import DeliverPolicy

        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
        if self._last_stream_seq:
            self._sub = await js.subscribe(f"{SUBJECT_PREFIX}.*", cb=self._received, ordered_consumer=True,
                                           deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                           config=_start_at(self._last_stream_seq + 1))
        else:
            self._sub = await js.subscribe(f"{SUBJECT_PREFIX}.*", cb=self._received, ordered_consumer=True,
                                           deliver_policy=DeliverPolicy.ALL)

    async def _received(self, msg: Any) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._last_stream_seq:
            return  # redelivered after a resubscribe
        self._last_stream_seq = seq
        try:
            message = decode(msg.data)
        except msgspec.DecodeError:
            self.decode_errors += 1
            return
        self.view.apply(message, self.clock())
        self.applied += 1


def _start_at(seq: int) -> Any:
    from nats.js.api import ConsumerConfig, DeliverPolicy

    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq)
