"""Shares the worker pool between log batches and prime-job segments, log batches first."""
# Work enters the `ProcessPoolExecutor` only through `PoolScheduler.run`. Prime segments (JOB)
# take at most `slots` places in the pool; log batches (INGEST) may also queue `ahead` more
# there, so a worker that finishes a batch starts the next one at once instead of idling for a
# round trip through the main process (result back, merge, next batch pickled and sent).
# Whenever a place frees it goes to the waiting task of the highest priority (lowest number).
# Prime segments are short, so a log batch waits at most one segment before it runs.
from __future__ import annotations

import asyncio
import collections
import multiprocessing
import multiprocessing.context
from concurrent.futures import Executor
from typing import Any, Callable

INGEST = 0
JOB = 1


class PoolScheduler:
    def __init__(self, executor: Executor, slots: int, ahead: int | None = None) -> None:
        self.executor = executor
        self.slots = slots
        self.ahead = slots if ahead is None else ahead  # log batches queued behind running ones
        self.in_pool = 0  # tasks handed to the executor (running or queued there)
        self.busy_by_priority: collections.Counter[int] = collections.Counter()
        self.completed: collections.Counter[int] = collections.Counter()
        self._waiters: dict[int, collections.deque[asyncio.Future[None]]] = {
            INGEST: collections.deque(),
            JOB: collections.deque(),
        }

    @property
    def busy(self) -> int:
        """Workers running a task now (tasks queued ahead in the pool are not counted)."""
        return min(self.in_pool, self.slots)

    def waiting(self, priority: int | None = None) -> int:
        if priority is None:
            return sum(len(q) for q in self._waiters.values())
        return len(self._waiters[priority])

    def _limit(self, priority: int) -> int:
        return self.slots + self.ahead if priority == INGEST else self.slots

    async def run(self, priority: int, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in the pool once a place is free and no higher priority waits."""
        await self._acquire(priority)
        self.busy_by_priority[priority] += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.executor, fn, *args)
        finally:
            self.busy_by_priority[priority] -= 1
            self.completed[priority] += 1
            self._release()

    async def _acquire(self, priority: int) -> None:
        if self.in_pool < self._limit(priority) and not any(
            self._waiters[p] for p in self._waiters if p <= priority
        ):
            self.in_pool += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[priority].append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # the place was handed to us as we were cancelled: pass it on
            else:
                self._waiters[priority].remove(fut)
            raise

    def _release(self) -> None:
        self.in_pool -= 1
        for priority in sorted(self._waiters):
            queue = self._waiters[priority]
            while queue and self.in_pool < self._limit(priority):
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # the place passes straight to this waiter
                    self.in_pool += 1
            if queue:
                return  # a higher priority still waits: lower ones wait behind it


def worker_context() -> multiprocessing.context.BaseContext:
    """The workers' start method: a forkserver (no fork of a threaded event loop), whose children
    are born ignoring SIGINT (`logtallyd.pool.quiet`)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["logtallyd.pool.quiet"])
    return context
