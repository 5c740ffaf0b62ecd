"""Pool scheduler (logtallyd.pool.scheduler): log batches queue ahead in the pool, prime segments take
at most `slots` places, and a freed place goes to the highest priority waiting."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from logtallyd.pool.scheduler import INGEST, JOB, PoolScheduler


class Gates:
    """Tasks that block in the pool until released, recording the order they started in."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.events: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def task(self, name: str) -> str:
        with self.lock:
            self.started.append(name)
        self.events.setdefault(name, threading.Event()).wait(10)
        return name

    def release(self, name: str) -> None:
        self.events.setdefault(name, threading.Event()).set()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_ingest_queues_ahead_jobs_do_not_and_priority_wins() -> None:
    gates = Gates()
    with ThreadPoolExecutor(max_workers=8) as pool:  # more threads than places: the scheduler limits
        s = PoolScheduler(pool, slots=2)  # ahead defaults to slots: 4 log batches in the pool
        jobs = [asyncio.create_task(s.run(JOB, gates.task, f"j{i}")) for i in range(3)]
        await settle()
        assert sorted(gates.started) == ["j0", "j1"] and s.in_pool == 2 and s.busy == 2
        logs = [asyncio.create_task(s.run(INGEST, gates.task, f"i{i}")) for i in range(4)]
        await settle()
        # two log batches join the two running segments; the rest wait, ahead of job j2
        assert sorted(gates.started[2:]) == ["i0", "i1"] and s.in_pool == 4 and s.busy == 2
        assert s.waiting(INGEST) == 2 and s.waiting(JOB) == 1
        gates.release("j0")
        await settle()
        assert gates.started[4] == "i2" and s.waiting(JOB) == 1  # the freed place goes to a log batch
        for name in ("j1", "i0", "i1", "i2"):
            gates.release(name)
        await settle()
        # j1's place went to i3; j2 started once fewer than `slots` tasks were left in the pool
        assert gates.started[5:] == ["i3", "j2"] and s.in_pool == 2
        gates.release("i3")
        gates.release("j2")
        assert [await t for t in logs] == ["i0", "i1", "i2", "i3"]
        assert [await t for t in jobs] == ["j0", "j1", "j2"]
        assert s.in_pool == 0 and s.busy == 0 and s.waiting() == 0
        assert (s.completed[INGEST], s.completed[JOB]) == (4, 3)


async def test_cancelled_waiter_passes_its_place_on() -> None:
    gates = Gates()
    with ThreadPoolExecutor(max_workers=4) as pool:
        s = PoolScheduler(pool, slots=1, ahead=0)
        first = asyncio.create_task(s.run(INGEST, gates.task, "a"))
        await settle()
        second = asyncio.create_task(s.run(INGEST, gates.task, "b"))
        third = asyncio.create_task(s.run(INGEST, gates.task, "c"))
        await settle()
        second.cancel()
        gates.release("a")
        gates.release("c")
        assert await first == "a" and await third == "c"
        assert second.cancelled() and gates.started == ["a", "c"] and s.in_pool == 0


def _sigint_disposition() -> str:
    import signal

    return "ignored" if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else "default"


def test_workers_are_born_ignoring_sigint() -> None:
    # No initializer: what is checked is the disposition a worker has while it still imports its
    # modules, before any initializer could run (a Ctrl-C there used to print a traceback).
    from concurrent.futures import ProcessPoolExecutor

    from logtallyd.pool.scheduler import worker_context

    with ProcessPoolExecutor(max_workers=1, mp_context=worker_context()) as pool:
        assert pool.submit(_sigint_disposition).result(timeout=60) == "ignored"
