"""Shares the worker pool between log batches and prime-job segments, log batches first.

Work enters the `ProcessPoolExecutor` only through `PoolScheduler.run`, which keeps at most
`slots` tasks in the pool and, whenever a slot frees, hands it to the waiting task of the
highest priority (lowest number). Prime segments are short, so a log batch waits at most one
segment before it runs.
"""
from __future__ import annotations

import asyncio
import collections
from concurrent.futures import Executor
from typing import Any, Callable

INGEST = 0
JOB = 1


class PoolScheduler:
    def __init__(self, executor: Executor, slots: int) -> None:
        self.executor = executor
        self.slots = slots
        self.busy = 0
        self.busy_by_priority: collections.Counter[int] = collections.Counter()
        self.completed: collections.Counter[int] = collections.Counter()
        self._waiters: dict[int, collections.deque[asyncio.Future[None]]] = {
            INGEST: collections.deque(),
            JOB: collections.deque(),
        }

    def waiting(self, priority: int | None = None) -> int:
        if priority is None:
            return sum(len(q) for q in self._waiters.values())
        return len(self._waiters[priority])

    async def run(self, priority: int, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(*args)` in the pool once a slot is free and no higher priority waits."""
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
        if self.busy < self.slots and not any(
            self._waiters[p] for p in sorted(self._waiters) if p <= priority
        ):
            self.busy += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[priority].append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # the slot was handed to us as we were cancelled: pass it on
            else:
                self._waiters[priority].remove(fut)
            raise

    def _release(self) -> None:
        for priority in sorted(self._waiters):
            queue = self._waiters[priority]
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # the slot passes straight to this waiter
                    return
        self.busy -= 1
