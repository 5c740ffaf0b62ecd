"""The node's NATS shell: publishes its sealed seconds to the JetStream stream and consumes every
node's into the cluster view; publishes the fleet events its view finds to the events stream
(once each, by id) and reads that stream back for the answers. All in its own task, so that
nothing here ever waits in the ingest path."""
from __future__ import annotations

import asyncio
import secrets
import time
from typing import TYPE_CHECKING, Any, Callable

import msgspec
import structlog

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.connect import connect
from logtallyd.cluster.detect import FleetDetect
from logtallyd.cluster.ledger import EventLedger
from logtallyd.cluster.outbox import Outbox
from logtallyd.cluster.view import ClusterView
from logtallyd.cluster.wire import EVENTS_STREAM, EVENTS_SUBJECT, STREAM, SUBJECT_PREFIX, decode, subject
from logtallyd.detect.events import Event
from logtallyd.ratelog import RateLimitedLog, RateLimiter

if TYPE_CHECKING:
    from nats.aio.client import Client

    from logtallyd.detect.config import DetectConfig
    from logtallyd.detect.driver import Driver
    from logtallyd.stats.config import StatsConfig
    from logtallyd.stats.windows import Stats

__all__ = ["ClusterNode"]

log = structlog.get_logger()
_PUBLISH_TIMEOUT_S = 2.0
_CATCH_UP_S = 10.0  # the events stream read to its end before the view judges (then it goes on anyway)
_CATCH_UP_STEP_S = 0.5  # of it, waited per step: the node's own seconds go out meanwhile


class ClusterNode:
    """One per daemon with `[cluster] nats` set: `start()` spawns the task, `close()` ends it."""

    def __init__(self, config: ClusterConfig, name: str, stats_config: StatsConfig, detect_config: DetectConfig,
                 local: Stats, driver: Driver, clock: Callable[[], float],
                 on_event: Callable[[Event], None] = lambda event: None,
                 restored: list[bytes] | None = None) -> None:
        self.config = config
        self.name = name
        self.clock = clock
        self.local = local
        self.driver = driver  # its watermark goes out with each second (the daemon tees its feeds)
        self.on_event = on_event  # a fleet event read from the events stream, live (not replayed)
        self.horizon_s = max(stats_config.windows.values())
        self.outbox = Outbox(name, secrets.token_hex(4), config.buffer_seconds, config.max_message_bytes,
                             durable=config.publish == "durable", restored=restored)
        self.detect = FleetDetect(detect_config) if config.view else None
        self.view = ClusterView(stats_config, config.down_after_s, clock(), self.detect)
        self.ledger = EventLedger(detect_config.keep_events, config.max_events, config.events_queue)
        local.tee = self.outbox.add
        self.client: Client | None = None
        self._sub: Any = None
        self._events_sub: Any = None
        self._reconnects = -1  # nats-py's count when the subscription was made
        self._last_stream_seq = 0  # of the last message applied to the view
        self._last_event_seq = 0  # of the last message read from the events stream
        self._events_end: int | None = None  # the events stream's last sequence when it was (re)subscribed
        self._history_end: int | None = None  # ... when it was first subscribed: older ones are not news
        self._caught_up = asyncio.Event()  # read up to `_events_end`: publishing may start
        self._view_due: float | None = None  # monotonic time by which the view subscribes anyway
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
        try:
            self._seal()
        except Exception as exc:
            log.error("cluster_seal_failed", error=repr(exc))
        client = self.client
        if client is not None and client.is_connected:
            try:
                await asyncio.wait_for(self._flush(client), _PUBLISH_TIMEOUT_S * 2)
                await asyncio.wait_for(self._flush_events(client), _PUBLISH_TIMEOUT_S * 2)
            except Exception:
                pass
        if client is not None:
            try:
                await client.close()
            except Exception:
                pass

    def figures(self) -> dict[str, Any]:
        connected = self.client is not None and self.client.is_connected
        figures = {"node": self.name, "connected": connected, **msgspec.to_builtins(self.outbox.figures()),
                   "applied": self.applied, "decode_errors": self.decode_errors}
        if self.detect is not None:
            figures["events"] = msgspec.to_builtins(self.ledger.figures())
            figures["detect"] = self.detect.figures()
        return figures

    def checkpoint(self) -> tuple[list[bytes], int]:
        """For the snapshot being taken: the open second sealed now, so that what the totals hold
        and what the outbox holds part at the same line; then `Outbox.checkpoint`."""
        try:
            self._seal()
        except Exception as exc:  # a bug here must not fail the snapshot: the open second waits
            log.error("cluster_seal_failed", error=repr(exc))
        return self.outbox.checkpoint()

    def reconfigure(self, detect_config: DetectConfig) -> None:
        """SIGHUP: the fleet detectors take the new `[detect]` as the local ones do."""
        if self.detect is not None:
            self.detect.reconfigure(detect_config)
        self.ledger.reconfigure(detect_config.keep_events)

    # -- answers (`logtallyd.publish.commands.ClusterAnswers`) -------------------------------

    @property
    def stats(self) -> Stats:
        return self.view.stats

    def report(self, window: str, now: float) -> dict[str, Any]:
        return self.view.report(window, now)

    def table(self, now: float) -> dict[str, Any]:
        return self.view.table(now)

    def events(self, n: int, now: float) -> dict[str, Any]:
        """EVENTS cluster: the last `n` events of the events stream (each once, whichever view
        published it), plus the nodes and the detector watermark, as STATS cluster adds them."""
        return {"events": self.ledger.recent(n), "nodes": self.view.contributors(),
                "watermark": None if self.detect is None else self.detect.watermark}

    # -- the task ----------------------------------------------------------------------------

    async def _run(self) -> None:
        # nats-py retries until NATS answers; meanwhile seconds are sealed (and the buffer bounded)
        # as they are while connected, so an outage at start costs no more memory than a later one.
        connecting = asyncio.get_running_loop().create_task(connect(self.config, self.name))
        try:
            while True:
                try:
                    self._seal()
                    if self.client is None and connecting.done():
                        self.client = connecting.result()
                    if self.client is not None:
                        await self._step(self.client)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS away or slow: keep buffering, try again next second
                    self._outage.log("warning", "cluster_publish_failed", key="publish", error=repr(exc),
                                     buffered=len(self.outbox.queue))
                await asyncio.sleep(1.0)
        finally:
            connecting.cancel()

    async def _step(self, client: Client) -> None:
        if not client.is_connected:
            return
        js = client.jetstream(timeout=_PUBLISH_TIMEOUT_S)
        if client.stats["reconnects"] != self._reconnects:  # a new connection (or the first)
            # A message past the server's max_payload (headers and envelope included) closes the
            # connection: split seconds below what this server takes, whatever the config says.
            self.outbox.max_message_bytes = max(16384, min(self.config.max_message_bytes, client.max_payload - 8192))
            await self._ensure_stream(js)
            if self.config.view:
                await self._subscribe_events(js)
                self._view_due = time.monotonic() + _CATCH_UP_S
            self._reconnects = client.stats["reconnects"]
        if self._view_due is not None:
            await self._subscribe_when_caught_up(js)
        await self._flush(client)
        if self.config.view:
            await self._flush_events(client)

    async def _subscribe_when_caught_up(self, js: Any) -> None:
        """The aggregate stream once the events stream is read to its end, so that the view knows
        the ids stored before it finds events again (past `_CATCH_UP_S` it goes on; publishing
        still waits for the end)."""
        try:
            await asyncio.wait_for(self._caught_up.wait(), _CATCH_UP_STEP_S)
        except asyncio.TimeoutError:
            if self._view_due is not None and time.monotonic() < self._view_due:
                return
        await self._subscribe(js)
        self._view_due = None

    def _seal(self) -> None:
        self.outbox.seal(self.clock(), self.local.newest, self.driver.watermark(time.monotonic()))

    async def _flush(self, client: Client) -> None:
        from nats.errors import MaxPayloadError

        js = client.jetstream(timeout=_PUBLISH_TIMEOUT_S)
        while (head := self.outbox.head()) is not None:
            message, data = head
            try:
                await js.publish(subject(self.name), data, headers={"Nats-Msg-Id": message.msg_id})
            except MaxPayloadError:
                self.outbox.too_large(message)
                self._outage.log("warning", "cluster_message_too_large", key="too_large", bytes=len(data),
                                 max_payload=client.max_payload, hint="lower [cluster] max_message_bytes")
                continue
            self.outbox.confirmed(message)

    async def _flush_events(self, client: Client) -> None:
        """Publish the events found, once the events stream has been read to its end (an id it
        holds is then known, and not sent); JetStream's duplicate window stores the id once when
        two views send it together."""
        if not self._caught_up.is_set():
            return
        js = client.jetstream(timeout=_PUBLISH_TIMEOUT_S)
        while (outgoing := self.ledger.head()) is not None:
            ack = await js.publish(EVENTS_SUBJECT, outgoing.data, headers={"Nats-Msg-Id": outgoing.id})
            self.ledger.sent(outgoing, bool(ack.duplicate))
            if not ack.duplicate:
                log.info("cluster_anomaly", id=outgoing.id, **msgspec.to_builtins(outgoing.event))

    async def _ensure_stream(self, js: Any) -> None:
        """Both streams made (or kept), with retention of the longest window."""
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError

        duplicate_window = float(min(120, self.horizon_s))
        configs = [
            StreamConfig(name=STREAM, subjects=[f"{SUBJECT_PREFIX}.*"], max_age=float(self.horizon_s),
                         storage=StorageType.FILE, duplicate_window=duplicate_window),
            StreamConfig(name=EVENTS_STREAM, subjects=[EVENTS_SUBJECT], max_age=float(self.horizon_s),
                         max_msgs=self.config.max_events, storage=StorageType.FILE,
                         duplicate_window=duplicate_window),
        ]
        for config in configs:
            try:
                await js.add_stream(config)
            except BadRequestError:  # made by a node with other windows: the longest wins
                info = await js.stream_info(config.name)
                if (info.config.max_age or 0) < self.horizon_s:
                    await js.update_stream(config)

    async def _subscribe_events(self, js: Any) -> None:
        """A fresh ordered consumer of the events stream from the message after the last one read
        (the whole stream at start); `_caught_up` once it has read what the stream held."""
        from nats.js.api import DeliverPolicy

        if self._events_sub is not None:
            try:
                await self._events_sub.unsubscribe()
            except Exception:
                pass
        self._caught_up.clear()
        self._events_end = None
        if self._last_event_seq:
            self._events_sub = await js.subscribe(EVENTS_SUBJECT, cb=self._event_received, ordered_consumer=True,
                                                  deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                                  config=_start_at(self._last_event_seq + 1))
        else:
            self._events_sub = await js.subscribe(EVENTS_SUBJECT, cb=self._event_received, ordered_consumer=True,
                                                  deliver_policy=DeliverPolicy.ALL)
        state = (await js.stream_info(EVENTS_STREAM)).state
        self._events_end = state.last_seq
        if self._history_end is None:
            self._history_end = state.last_seq
        if not state.messages or self._last_event_seq >= self._events_end:
            self._caught_up.set()

    async def _event_received(self, msg: Any) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._last_event_seq:
            return  # redelivered after a resubscribe
        self._last_event_seq = seq
        event = self.ledger.stored((msg.headers or {}).get("Nats-Msg-Id"), msg.data)
        # Events stored before this view first subscribed are history: answers, not news.
        if event is not None and self._history_end is not None and seq > self._history_end:
            self.on_event(event)
        if self._events_end is not None and seq >= self._events_end:
            self._caught_up.set()

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
        events = self.view.apply(message, self.clock())
        self.applied += 1
        if events:
            self.ledger.found(events)


def _start_at(seq: int) -> Any:
    from nats.js.api import ConsumerConfig, DeliverPolicy

    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq)
