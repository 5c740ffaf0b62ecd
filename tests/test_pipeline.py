"""The asyncio pipeline shell, with a pool whose batches finish when the test says so."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from logtallyd.daemon.config import PipelineConfig
from logtallyd.ingest.pipeline import Pipeline
from logtallyd.pool.worker import BatchResult, WorkerOptions
from logtallyd.stats.windows import Stats, StatsConfig

NOW = 1_700_000_000.0


class GatedPool:
    """Runs the worker function in this process once the test opens the batch's gate."""

    def __init__(self, failing: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.gates: dict[int, asyncio.Event] = {}
        self.started: list[int] = []
        self.failing = failing

    def gate(self, seq: int) -> asyncio.Event:
        return self.gates.setdefault(seq, asyncio.Event())

    async def run(self, priority: int, fn: Callable[..., Any], *args: Any) -> Any:
        seq = args[3]
        self.started.append(seq)
        await self.gate(seq).wait()
        if seq in self.failing:
            raise RuntimeError("worker died")
        return fn(*args)


class Shell:
    def __init__(self, pool: GatedPool, **config: Any) -> None:
        self.calls: list[str] = []
        self.results: list[tuple[int, bool]] = []  # (batch number, worker result present)
        self.stats = Stats(StatsConfig(), NOW)
        self.pipeline = Pipeline(
            PipelineConfig(**{"batch_delay_ms": 3_600_000.0, **config}), WorkerOptions(), pool,  # type: ignore[arg-type]
            self.stats, None, pause=lambda: self.calls.append("pause"),
            resume=lambda: self.calls.append("resume"), on_result=self.on_result, clock=lambda: NOW,
        )

    def on_result(self, seq: int, result: BatchResult | None, now: float) -> None:
        self.results.append((seq, result is not None))


def lines(n: int, start: int = 0) -> list[bytes]:
    return [json.dumps({"ts": NOW + i, "msg": f"line {i}"}).encode() for i in range(start, start + n)]


async def settle() -> None:
    """Let every runnable task run (the gated pool never sleeps, so a few rounds suffice)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_batches_finishing_out_of_order_merge_in_stream_order() -> None:
    pool = GatedPool()
    shell = Shell(pool, batch_lines=2, max_in_flight=2)
    shell.pipeline.submit(lines(6), "10.0.0.1:5000")
    await settle()
    assert pool.started == [0, 1] and shell.pipeline.queued_batches == 1
    pool.gate(1).set()
    await settle()
    assert shell.results == [] and shell.pipeline.in_flight == 2  # held for batch 0: still in flight
    pool.gate(0).set()
    await settle()
    assert shell.results == [(0, True), (1, True)] and pool.started == [0, 1, 2]
    pool.gate(2).set()
    await shell.pipeline.drain()
    assert shell.results == [(0, True), (1, True), (2, True)]
    assert (shell.stats.received, shell.pipeline.batches, shell.pipeline.buffered_bytes) == (6, 3, 0)


async def test_backpressure_pauses_once_and_resumes_once() -> None:
    pool = GatedPool()
    shell = Shell(pool, batch_lines=1, max_in_flight=1, max_buffered_bytes=1 << 20)
    shell.pipeline.submit(lines(3), "p")
    await settle()
    assert shell.calls == ["pause"] and shell.pipeline.paused  # two batches wait for one place
    pool.gate(0).set()
    await settle()
    assert shell.calls == ["pause"]  # one still waits
    pool.gate(1).set()
    await settle()
    assert shell.calls == ["pause", "resume"] and not shell.pipeline.paused
    pool.gate(2).set()
    await shell.pipeline.drain()
    assert (shell.calls, shell.pipeline.pauses, shell.stats.received) == (["pause", "resume"], 1, 3)


async def test_buffered_bytes_pause_at_the_high_mark() -> None:
    pool = GatedPool()
    frames = lines(4)
    high = sum(map(len, frames))
    shell = Shell(pool, batch_lines=1, max_in_flight=8, max_buffered_bytes=high)
    shell.pipeline.submit(frames[:3], "p")
    assert shell.calls == []
    shell.pipeline.submit(frames[3:], "p")
    assert shell.calls == ["pause"] and shell.pipeline.buffered_bytes == high
    for seq in range(4):
        pool.gate(seq).set()
    await shell.pipeline.drain()
    assert shell.calls == ["pause", "resume"] and shell.pipeline.buffered_bytes == 0


async def test_a_failed_batch_is_counted_and_keeps_its_place() -> None:
    pool = GatedPool(failing={1})
    shell = Shell(pool, batch_lines=2, max_in_flight=4)
    shell.pipeline.submit(lines(5), "p")
    for seq in (2, 1, 0):
        pool.gate(seq).set()
    await shell.pipeline.drain()
    assert shell.results == [(0, True), (1, False), (2, True)]
    report = shell.stats.report("all", NOW)
    assert (report["received"], report["parsed"], report["rejected"]) == (5, 3, {"internal_error": 2})
    assert shell.pipeline.batch_errors == 1


async def test_the_deadline_sends_a_quiet_senders_batch() -> None:
    pool = GatedPool()
    shell = Shell(pool, batch_lines=100, batch_delay_ms=1.0)
    pool.gate(0).set()
    shell.pipeline.submit(lines(1), "p")
    for _ in range(30_000):  # no drain: only the timer can cut this batch
        if shell.results:
            break
        await asyncio.sleep(0.001)
    assert shell.results == [(0, True)] and shell.pipeline.queued_batches == 0


async def test_drain_with_nothing_submitted_returns() -> None:
    shell = Shell(GatedPool())
    await shell.pipeline.drain()
    assert shell.results == [] and shell.calls == []
