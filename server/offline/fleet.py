"""`analyze --nats URL`: an `Executor` whose batches run on the cluster's nodes.

`analyze_paths` drives it exactly as it drives its local pool (same batches, same numbering, same
in-order merge), so the report is the one a local `analyze` prints. Batches go to a JetStream
work-queue stream; each node answers on this run's own results subject. A batch answered twice (a
node died after answering, before its acknowledgement) counts once: its future is already done.
"""
from __future__ import annotations

import asyncio
import concurrent.futures as cf
import secrets
import threading
import time
from typing import Any, Callable

from logtallyd.cluster.config import ClusterConfig
from logtallyd.cluster.connect import connect
from logtallyd.pool.workqueue import SUBJECT, WORK_ENCODER, WorkItem, ensure_stream

__all__ = ["FleetExecutor", "NoNodeAnswered"]


class NoNodeAnswered(Exception):
    """No batch came back for `timeout_s`: no node serves the work queue (or all are stuck)."""


class FleetExecutor(cf.Executor):
    """Runs `process_batch(frames, arrival, options, seq)` calls on whichever node takes them."""

    def __init__(self, cluster: ClusterConfig, timeout_s: float) -> None:
        self.cluster = cluster
        self.timeout_s = timeout_s
        self.reply = f"logtally.analyze.results.{secrets.token_hex(8)}"
        self._pending: dict[int, cf.Future[bytes]] = {}
        self._last_answer = time.monotonic()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="analyze-nats", daemon=True)
        self._thread.start()
        self._client: Any = None
        self._js: Any = None
        self._call(self._open())
        self.nodes: set[str] = set()  # who answered

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _open(self) -> None:
        self._client = await connect(self.cluster, "analyze", retry=False)
        self._js = self._client.jetstream()
        await ensure_stream(self._js, self.cluster.analyze_max_age_s)
        await self._client.subscribe(self.reply, cb=self._answered)
        self._loop.create_task(self._watch())

    async def _answered(self, message: Any) -> None:
        seq = int(message.headers.get("seq", "-1")) if message.headers else -1
        future = self._pending.pop(seq, None)
        self._last_answer = time.monotonic()
        if message.headers and "node" in message.headers:
            self.nodes.add(message.headers["node"])
        if future is not None and not future.done():
            future.set_result(message.data)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if self._pending and time.monotonic() - self._last_answer > self.timeout_s:
                error = NoNodeAnswered(f"no node answered for {self.timeout_s:g} s ({len(self._pending)} batches "
                                       f"waiting): are nodes running with [cluster] nats = {self.cluster.nats!r}?")
                for future in self._pending.values():
                    if not future.done():
                        future.set_exception(error)
                self._pending.clear()

    async def _publish(self, item: WorkItem, future: cf.Future[bytes]) -> None:
        if not self._pending:
            self._last_answer = time.monotonic()  # the clock runs from the first batch waiting
        self._pending[item.seq] = future
        try:
            await self._js.publish(SUBJECT, WORK_ENCODER.encode(item), stream=None)
        except Exception as exc:
            self._pending.pop(item.seq, None)
            future.set_exception(exc)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """`fn` is the worker function `analyze` would run; only its arguments travel."""
        frames, arrival, options, seq = args
        future: cf.Future[bytes] = cf.Future()
        item = WorkItem(self.reply, seq, arrival, options, frames)
        asyncio.run_coroutine_threadsafe(self._publish(item, future), self._loop)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        async def close() -> None:
            try:
                await self._client.close()
            except Exception:
                pass

        if self._client is not None:
            self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
